import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoSessionStore } from '../lib/checkpoint/dynamo-store';
import { FunctionEnv, readEnv } from '../lib/config/env';
import { loadDialogueMap, type DialogueMap } from '../lib/flow/map';
import { llmPortsFactory } from '../lib/llm/configure';
import { SentenceSegmenter } from '../lib/llm/segmenter';
import { loadOrTrain } from '../lib/nlu/model-file';
import { PROTOCOL_VERSION, type ServerEvent, type ServerEventOf } from '../lib/protocol/v1';
import type { SpeechDeps } from '../lib/session/dispatch';
import { cacheKey, type AudioCache, type CachedAudio } from '../lib/speech/audio-cache';
import type { AudioFormat } from '../lib/speech/format';
import { estimateSpeechMs, type PlayerTiming } from '../lib/speech/player';
import { staticTexts } from '../lib/speech/static-texts';
import type { SynthesisRequest, Synthesizer, Voice } from '../lib/speech/tts/port';
import { voiceFor } from '../lib/speech/tts/voice';
import { startLocalRuntime } from '../local/runtime';
import { startFakeOpenAI } from '../tests/support/openai-server';
import { toneBytes } from '../tests/support/pcm';
import { BenchClient } from './client';
import { progress, round3, summarize } from './stats';
import { Invocations, sleep, sleepUntil } from './timing';

/*
 * Speech latency (seed 004), through the real local runtime: dynalite, the local WebSocket gateway
 * and the @connections posts, a real `ws` client, the fake OpenAI streaming server with injected
 * latency, an in-memory audio cache holding every static prompt of the map and a fake synthesizer
 * with an injected first-byte delay. Everything runs in this process, so the client, the fake LLM
 * and the fake synthesizer share one performance.now() clock.
 */

const PCM16K: AudioFormat = { format: 'pcm', sampleRate: 16000 };
const CHAT = '/v1/chat/completions';

/** A walk through dialogue_map.json whose every reply is a cached prompt (cache:menu, cache:welcome). */
export const CACHED_SCRIPT: ReadonlyArray<{ text: string; to: string }> = [
  { text: "what's on the menu?", to: 'menu' },
  { text: 'start over', to: 'welcome' },
  { text: 'can I see the menu', to: 'menu' },
  { text: "let's start from the beginning", to: 'welcome' },
];
/** Off-script in the welcome state: the LLM answers (no FAQ entry, no intent). */
const LLM_QUESTION = 'who painted the mural on your wall?';
const ANSWER = 'We roast our beans on Tuesdays. Come by!';

export interface SpeechBenchOptions {
  cachedTurns?: number;
  cachedWarmup?: number;
  llmTurns?: number;
  llmWarmup?: number;
  slowTurns?: number;
  orderTurns?: number;
  /** Injected LLM time to first token on the overhead figure. */
  firstTokenMs?: number;
  /** Injected LLM time to first token on the slow (filler) turns. */
  slowFirstTokenMs?: number;
  tokensPerSecond?: number;
  chunkChars?: number;
  /** Injected synthesizer time to first audio chunk. */
  ttsFirstByteMs?: number;
  /** The neutral filler's wait on the slow turns (SpeechDeps.timing.neutralAfterMs). */
  neutralAfterMs?: number;
  /** Injected delay of the demo kitchen webhook (place_order). */
  kitchenDelayMs?: number;
}

/**
 * The audio cache with every static text of the map (staticTexts: prompts, fillers, messages, slot
 * prompts) rendered for each language's voice, in memory; looked up by the same content key as the
 * file cache (a sha256 per get). Durations are what a voice takes (~70 ms a character).
 */
function memoryAudioCache(map: DialogueMap, voiceOf: (language: string) => Voice, format: AudioFormat) {
  const entries = new Map<string, CachedAudio>();
  for (const t of staticTexts(map)) {
    const durationMs = estimateSpeechMs(t.text);
    entries.set(cacheKey(t.text, voiceOf(t.language), format), { audio: toneBytes(durationMs, format.sampleRate), durationMs, marks: [] });
  }
  const stats = { hits: 0, misses: 0, entries: entries.size };
  const cache: AudioCache = {
    async get(text, voice, f) {
      const hit = entries.get(cacheKey(text, voice, f));
      if (hit) stats.hits++;
      else stats.misses++;
      return hit;
    },
  };
  return { cache, stats };
}

interface SynthCall {
  text: string;
  /** performance.now() when the player started reading the synthesis. */
  calledAt: number;
  /** performance.now() just before the first chunk was handed to the player. */
  firstChunkAt?: number;
}

/**
 * A synthesizer with an injected first-byte delay, then the rest of the audio streamed (8 KB
 * every 5 ms, faster than real time, as Polly streams). Every call is recorded with its times.
 */
class BenchSynthesizer implements Synthesizer {
  readonly provider = 'bench';
  readonly calls: SynthCall[] = [];
  /** Every synthesize() call since the start (calls is emptied per turn). */
  total = 0;
  constructor(
    public firstByteMs: number,
    private readonly chunkBytes = 8192,
    private readonly intervalMs = 5,
  ) {}

  supports(format: AudioFormat): boolean {
    return format.format === 'pcm';
  }

  async *synthesize(request: SynthesisRequest): AsyncIterable<Uint8Array> {
    const call: SynthCall = { text: request.text, calledAt: performance.now() };
    this.calls.push(call);
    this.total++;
    const bytes = toneBytes(estimateSpeechMs(request.text), request.format.sampleRate);
    const firstAt = call.calledAt + this.firstByteMs;
    for (let offset = 0, i = 0; offset < bytes.length; offset += this.chunkBytes, i++) {
      await sleepUntil(firstAt + i * this.intervalMs);
      if (request.signal?.aborted) return;
      if (i === 0) call.firstChunkAt = performance.now();
      yield bytes.subarray(offset, offset + this.chunkBytes);
    }
  }
}

interface TurnResult {
  sentAt: number;
  /** When the gateway invoked the turn handler (from onInvoke: its end minus its duration). */
  invokedAt: number;
  events: ServerEvent[];
  at: number[];
  completed: ServerEventOf<'turn.completed'>;
}

/** The first index of an event matching `match`, or -1. */
const indexOf = (r: TurnResult, match: (e: ServerEvent) => boolean): number => r.events.findIndex(match);

/** The chunk index at which the streaming segmenter first emits a complete sentence, and that sentence. */
function firstSentenceAt(text: string, chunkChars: number, language: string): { chunk: number; sentence: string } {
  const seg = new SentenceSegmenter(language);
  for (let i = 0, at = 0; at < text.length; i++, at += chunkChars) {
    const [first] = seg.push(text.slice(at, at + chunkChars));
    if (first !== undefined) return { chunk: i, sentence: first.trim() };
  }
  return { chunk: Math.ceil(text.length / chunkChars) - 1, sentence: text.trim() };
}

const figure = (values: readonly number[]) => {
  const s = summarize(values.map(round3));
  return { p50: s.p50, p99: s.p99, n: s.count, max: s.max };
};

export async function benchSpeech(repoRoot: string, options: SpeechBenchOptions = {}) {
  const o = {
    cachedTurns: 300,
    cachedWarmup: 40,
    llmTurns: 30,
    llmWarmup: 4,
    slowTurns: 10,
    orderTurns: 15,
    firstTokenMs: 200,
    slowFirstTokenMs: 1000,
    tokensPerSecond: 100,
    chunkChars: 4,
    ttsFirstByteMs: 100,
    neutralAfterMs: 300,
    kitchenDelayMs: 150,
    ...options,
  };
  const startedAt = performance.now();
  const mapPath = join(repoRoot, 'dialogue_map.json');
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const { model } = await loadOrTrain(map, mapPath);
  const neutralKey = map.fillers.neutral;
  if (!neutralKey) throw new Error('the sample map names no neutral filler');
  const voiceOf = (language: string) => voiceFor(map, language, 'polly');
  const { cache, stats: cacheStats } = memoryAudioCache(map, voiceOf, PCM16K);
  const synth = new BenchSynthesizer(o.ttsFirstByteMs);
  // Read by the player at the start of every turn: each phase sets its own neutral filler wait.
  const timing: Partial<PlayerTiming> = {};
  const speech: SpeechDeps = { synthesizer: synth, cache, voiceFor: voiceOf, timing };
  let kitchenDelayMs = 0;
  const slowFetch: typeof fetch = async (input, init) => {
    if (kitchenDelayMs > 0) await sleep(kitchenDelayMs);
    return fetch(input, init);
  };
  // Unscripted requests are the context folds (a summary every window/2 messages, at the end of a
  // turn): answered at once, so they neither fail into the SDK's retries nor eat a scripted answer.
  const openai = await startFakeOpenAI({ fallback: { text: 'The customer looked at the menu and asked about the cafe.' } });
  const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'bench-model', PARLEY_SAFETY: 'local' });
  const invocations = new Invocations();
  const runtime = await startLocalRuntime({
    map,
    nluModel: model,
    port: 0,
    dynamoPort: 0,
    llm: llmPortsFactory(env)('bench-key'),
    speech,
    fetch: slowFetch,
    gateway: { onInvoke: invocations.onInvoke },
  });
  const store = new DynamoSessionStore({ client: runtime.dynamo.client, tableName: runtime.tableName, ttlSeconds: 3600 });
  const clients: BenchClient[] = [];

  const openSession = async (audio = true): Promise<{ client: BenchClient; sessionId: string }> => {
    const client = await BenchClient.open(runtime.wsUrl);
    clients.push(client);
    const acked = client.waitFor((e) => e.type === 'hello.ack');
    let target = invocations.finished + 1;
    client.send({ type: 'hello', version: PROTOCOL_VERSION });
    await acked;
    await invocations.until(target);
    const greeted = client.waitFor((e) => e.type === 'turn.completed');
    target = invocations.finished + 1;
    client.send(audio ? { type: 'session.start', audio: PCM16K } : { type: 'session.start' });
    await greeted;
    await invocations.until(target);
    const started = client.seen.find((e) => e.type === 'session.started');
    if (started?.type !== 'session.started' || (started.audio?.format === 'pcm') !== audio) throw new Error(`not the session asked for: ${JSON.stringify(started)}`);
    return { client, sessionId: started.sessionId };
  };

  /** One input.text; resolves once its invocation has finished, so turns never overlap. */
  const runTurn = async (client: BenchClient, text: string, to?: string): Promise<TurnResult> => {
    const turnId = randomUUID();
    const target = invocations.finished + 1;
    client.clearSeen();
    const done = client.waitFor((e) => e.type === 'turn.completed' && e.turnId === turnId, 15_000);
    const sentAt = performance.now();
    client.send({ type: 'input.text', turnId, text });
    const completed = (await done) as ServerEventOf<'turn.completed'>;
    await invocations.until(target);
    const result = { sentAt, invokedAt: invocations.lastStartedAt, events: [...client.seen], at: [...client.seenAt], completed };
    if (to !== undefined) {
      const moved = result.events.find((e) => e.type === 'node.transition');
      if (moved?.type !== 'node.transition' || moved.to !== to) {
        throw new Error(`'${text}' did not move to '${to}': ${JSON.stringify(result.events.filter((e) => e.type !== 'response.audio.delta'))}`);
      }
    }
    return result;
  };

  const firstDelta = (r: TurnResult, match: (e: ServerEventOf<'response.audio.delta'>) => boolean = () => true) =>
    indexOf(r, (e) => e.type === 'response.audio.delta' && match(e));

  try {
    progress(`speech: runtime up at ${runtime.wsUrl}; ${cacheStats.entries} static texts cached`);

    // 1. Cached prompts: every reply of the walk is in the cache; the synthesizer must not be called.
    timing.neutralAfterMs = 60_000;
    const { client: cachedClient } = await openSession();
    const synthBefore = synth.total;
    const cacheBefore = { ...cacheStats };
    const toFirstAudio: number[] = [];
    const serverT6: number[] = [];
    const serverT3: number[] = [];
    const toCompleted: number[] = [];
    const inputPath: number[] = [];
    const outputPath: number[] = [];
    const replyAudioMs: number[] = [];
    for (let i = 0; i < o.cachedWarmup + o.cachedTurns; i++) {
      const step = CACHED_SCRIPT[i % CACHED_SCRIPT.length]!;
      const r = await runTurn(cachedClient, step.text, step.to);
      const first = firstDelta(r);
      if (first < 0) throw new Error(`no audio for '${step.text}'`);
      if (i < o.cachedWarmup) continue;
      toFirstAudio.push(r.at[first]! - r.sentAt);
      toCompleted.push(r.at[r.at.length - 1]! - r.sentAt);
      if (r.completed.metrics.t6 !== undefined) {
        serverT6.push(r.completed.metrics.t6);
        inputPath.push(r.invokedAt - r.sentAt);
        outputPath.push(r.at[first]! - r.invokedAt - r.completed.metrics.t6);
      }
      if (r.completed.metrics.t3 !== undefined) serverT3.push(r.completed.metrics.t3);
      const done = r.events.find((e) => e.type === 'response.audio.done');
      if (done?.type === 'response.audio.done') replyAudioMs.push(done.durationMs);
    }
    await cachedClient.close();
    const cachedSynthCalls = synth.total - synthBefore;
    const cachedHits = cacheStats.hits - cacheBefore.hits;
    const cachedMisses = cacheStats.misses - cacheBefore.misses;
    progress(`speech: cached prompts done (${o.cachedTurns} turns, ${cachedSynthCalls} synthesizer calls)`);

    // 2. LLM + TTS: injected time to first token, token pacing, synthesizer first byte; no filler.
    const interval = 1000 / o.tokensPerSecond;
    const first = firstSentenceAt(ANSWER, o.chunkChars, map.language);
    const toFirstSentenceMs = first.chunk * interval;
    const injectedMs = o.firstTokenMs + toFirstSentenceMs + o.ttsFirstByteMs;
    timing.neutralAfterMs = 60_000;
    const { client: llmClient } = await openSession();
    // Control, turn for turn: the same LLM turn in a text-only session (no audio), same injected latency.
    const { client: textClient } = await openSession(false);
    const overhead: number[] = [];
    const serverOverhead: number[] = [];
    const parts = { inputToLlmRequest: [] as number[], handlerToLlmCue: [] as number[], llmCueToRequest: [] as number[], sentenceDueToSynthesis: [] as number[], synthTimerLate: [] as number[], synthChunkToClient: [] as number[] };
    const textInputToLlmRequest: number[] = [];
    let fillersSeen = 0;
    const script = () => {
      openai.reset();
      openai.script({ text: ANSWER, chunkChars: o.chunkChars, firstTokenDelayMs: o.firstTokenMs, tokensPerSecond: o.tokensPerSecond });
    };
    for (let i = 0; i < o.llmWarmup + o.llmTurns; i++) {
      script();
      synth.calls.length = 0;
      const r = await runTurn(llmClient, LLM_QUESTION);
      const request = openai.requestsTo(CHAT)[0];
      const call = synth.calls.find((c) => c.text === first.sentence);
      const speechAt = firstDelta(r, (d) => d.kind === 'speech');
      if (!request || !call?.firstChunkAt || speechAt < 0) {
        throw new Error(`LLM turn without an LLM request, a synthesis of '${first.sentence}' or speech audio: ${JSON.stringify(r.events.filter((e) => e.type !== 'response.audio.delta'))}`);
      }
      if (r.events.some((e) => e.type === 'response.filler')) fillersSeen++;

      script();
      const t = await runTurn(textClient, LLM_QUESTION);
      const textRequest = openai.requestsTo(CHAT)[0];
      if (!textRequest) throw new Error('text-only LLM turn without an LLM request');

      if (i < o.llmWarmup) continue;
      textInputToLlmRequest.push(textRequest.receivedAt - t.sentAt);
      const arrived = r.at[speechAt]!;
      overhead.push(arrived - r.sentAt - injectedMs);
      const sentenceDue = request.receivedAt + o.firstTokenMs + toFirstSentenceMs;
      parts.inputToLlmRequest.push(request.receivedAt - r.sentAt);
      parts.sentenceDueToSynthesis.push(call.calledAt - sentenceDue);
      parts.synthTimerLate.push(call.firstChunkAt - call.calledAt - o.ttsFirstByteMs);
      parts.synthChunkToClient.push(arrived - call.firstChunkAt);
      const m = r.completed.metrics;
      if (m.t4 !== undefined && m.t6 !== undefined) serverOverhead.push(m.t6 - m.t4 - injectedMs);
      if (m.t4 !== undefined) {
        parts.handlerToLlmCue.push(m.t4);
        parts.llmCueToRequest.push(request.receivedAt - (r.invokedAt + m.t4));
      }
    }
    await llmClient.close();
    await textClient.close();
    progress(`speech: LLM + TTS done (${o.llmTurns} turns, and as many text-only)`);

    // 3 and 4. A slow LLM: the neutral filler starts neutralAfterMs after the wait began; the answer cuts it.
    timing.neutralAfterMs = o.neutralAfterMs;
    const { client: slowClient, sessionId: slowSession } = await openSession();
    const neutralLate: number[] = [];
    const neutralLateServer: number[] = [];
    const answerToClear: number[] = [];
    const answerToAudio: number[] = [];
    let clearsMissing = 0;
    for (let i = 0; i < 1 + o.slowTurns; i++) {
      openai.reset();
      synth.calls.length = 0;
      openai.script({ text: ANSWER, chunkChars: o.chunkChars, firstTokenDelayMs: o.slowFirstTokenMs, tokensPerSecond: o.tokensPerSecond });
      const r = await runTurn(slowClient, LLM_QUESTION);
      const typing = indexOf(r, (e) => e.type === 'response.status' && e.status === 'typing');
      const filler = r.events.find((e) => e.type === 'response.filler' && e.key === neutralKey);
      const fillerItem = filler?.type === 'response.filler' ? filler.itemId : undefined;
      const fillerAudio = firstDelta(r, (d) => d.itemId === fillerItem);
      const clear = indexOf(r, (e) => e.type === 'response.audio.clear' && e.itemId === fillerItem);
      const answer = firstDelta(r, (d) => d.kind === 'speech');
      const call = synth.calls.find((c) => c.text === first.sentence);
      if (typing < 0 || fillerAudio < 0 || answer < 0 || !call?.firstChunkAt) {
        throw new Error(`slow LLM turn without typing, neutral filler audio or answer audio: ${JSON.stringify(r.events.filter((e) => e.type !== 'response.audio.delta'))}`);
      }
      if (i < 1) continue;
      neutralLate.push(r.at[fillerAudio]! - (r.at[typing]! + o.neutralAfterMs));
      // The server's own view: the stored record's neutral filler event against t4 (the LLM wait cue, when the wait began).
      const head = await store.loadHead(slowSession);
      const neutral = head?.events.find((e) => e.type === 'filler' && e.neutral);
      const t4 = r.completed.metrics.t4;
      if (head?.turnId === r.completed.turnId && neutral && t4 !== undefined) neutralLateServer.push(neutral.atMs - t4 - o.neutralAfterMs);
      answerToAudio.push(r.at[answer]! - call.firstChunkAt);
      if (clear >= 0 && clear < answer) answerToClear.push(r.at[clear]! - call.firstChunkAt);
      else clearsMissing++;
    }
    await slowClient.close();
    progress(`speech: slow LLM done (${o.slowTurns} turns)`);

    // 3b. The state filler: confirm -yes-> place_order runs the (slowed) kitchen webhook with filler:one_moment.
    timing.neutralAfterMs = 60_000;
    kitchenDelayMs = o.kitchenDelayMs;
    const { client: orderClient } = await openSession();
    const stateFromTyping: number[] = [];
    const stateFromSent: number[] = [];
    const stateFromStarted: number[] = [];
    for (let i = 0; i < 2 + o.orderTurns; i++) {
      await runTurn(orderClient, 'a large latte with oat milk please', 'confirm');
      const r = await runTurn(orderClient, 'yes', 'place_order');
      const typing = indexOf(r, (e) => e.type === 'response.status' && e.status === 'typing');
      const filler = r.events.find((e) => e.type === 'response.filler' && e.key === 'filler:one_moment');
      const fillerItem = filler?.type === 'response.filler' ? filler.itemId : undefined;
      const fillerAudio = firstDelta(r, (d) => d.itemId === fillerItem);
      if (typing < 0 || fillerAudio < 0) {
        throw new Error(`place_order without typing or filler audio: ${JSON.stringify(r.events.filter((e) => e.type !== 'response.audio.delta'))}`);
      }
      if (i < 2) continue;
      stateFromTyping.push(r.at[fillerAudio]! - r.at[typing]!);
      stateFromSent.push(r.at[fillerAudio]! - r.sentAt);
      stateFromStarted.push(r.at[fillerAudio]! - r.at[indexOf(r, (e) => e.type === 'turn.started')]!);
    }
    await orderClient.close();
    kitchenDelayMs = 0;
    progress(`speech: state filler done (${o.orderTurns} turns)`);

    return {
      cachedPromptFirstAudio: {
        ...figure(toFirstAudio),
        how:
          `client wall time from ws.send(input.text) to the arrival of the message carrying the first response.audio.delta (before the client parses it), ` +
          `through the local gateway and @connections posts; ${o.cachedTurns} turns after ${o.cachedWarmup} warm-up, walking ${CACHED_SCRIPT.map((s) => `'${s.text}'->${s.to}`).join(', ')} ` +
          `(replies cache:menu / cache:welcome, ~${Math.round(summarize(replyAudioMs).p50)} ms of 16 kHz PCM each, all in an in-memory cache of the map's static texts)`,
        serverT6: { ...figure(serverT6), how: 'turn.completed metrics.t6: handler receipt -> first audio delta handed to the outbox' },
        serverT3: figure(serverT3),
        inputPath: { ...figure(inputPath), how: 'ws.send -> the gateway invokes the turn handler (onInvoke end minus duration)' },
        outputPath: {
          ...figure(outputPath),
          how: 'the rest: handler invoked -> client got the first delta, minus t6 (outbox setImmediate, packing the batch, the @connections post, the gateway, ws)',
        },
        toTurnCompleted: figure(toCompleted),
        synthesizerCalls: cachedSynthCalls,
        cacheHits: cachedHits,
        cacheMisses: cachedMisses,
      },
      llmTtsOverhead: {
        ...figure(overhead),
        how:
          `client wall time from ws.send(input.text) to the first speech response.audio.delta, minus the injected ${injectedMs} ms ` +
          `(LLM first token ${o.firstTokenMs} ms + first sentence complete at chunk ${first.chunk} x ${interval} ms = ${toFirstSentenceMs} ms, ` +
          `${o.chunkChars}-char chunks at ${o.tokensPerSecond}/s, + synthesizer first chunk ${o.ttsFirstByteMs} ms); ${o.llmTurns} turns after ${o.llmWarmup}; neutral filler wait 60 s (no filler)`,
        injected: { firstTokenMs: o.firstTokenMs, toFirstSentenceMs, ttsFirstByteMs: o.ttsFirstByteMs, firstSentence: first.sentence },
        breakdownP50: {
          inputToLlmRequest: figure(parts.inputToLlmRequest).p50,
          ofWhichHandlerToLlmCue: figure(parts.handlerToLlmCue).p50,
          ofWhichLlmCueToRequest: figure(parts.llmCueToRequest).p50,
          sentenceDueToSynthesisStart: figure(parts.sentenceDueToSynthesis).p50,
          synthTimerLate: figure(parts.synthTimerLate).p50,
          synthFirstChunkToClient: figure(parts.synthChunkToClient).p50,
          how:
            'same clock: ws.send -> fake LLM request received (of which: handler receipt -> t4, the LLM wait cue (connection + head reads, NLU, FAQ); ' +
            't4 -> the request received by the fake server (OpenAI SDK, HTTP)); scheduled send of the sentence-completing chunk -> synthesize() of that sentence started; ' +
            'the fake synthesizer\'s own timer lateness; its first chunk yielded -> client got the first speech delta (player, outbox, @connections post, gateway, ws)',
        },
        breakdownP99: {
          inputToLlmRequest: figure(parts.inputToLlmRequest).p99,
          ofWhichHandlerToLlmCue: figure(parts.handlerToLlmCue).p99,
          ofWhichLlmCueToRequest: figure(parts.llmCueToRequest).p99,
          sentenceDueToSynthesisStart: figure(parts.sentenceDueToSynthesis).p99,
          synthTimerLate: figure(parts.synthTimerLate).p99,
          synthFirstChunkToClient: figure(parts.synthChunkToClient).p99,
        },
        textOnlyInputToLlmRequest: {
          ...figure(textInputToLlmRequest),
          how: 'control, alternating turn for turn with the figure: the same question and injected latency in a text-only session: ws.send -> fake LLM request received (the runner path before the model, without speech)',
        },
        serverT6MinusT4MinusInjected: { ...figure(serverOverhead), how: 'turn.completed metrics t6 - t4 - injected (t4 = the LLM wait cue, just before the request)' },
        turnsWithFillers: fillersSeen,
      },
      fillerStart: {
        ...figure(neutralLate),
        how:
          `slow LLM (first token ${o.slowFirstTokenMs} ms), SpeechDeps.timing.neutralAfterMs ${o.neutralAfterMs}: arrival of the neutral filler's (${neutralKey}) first response.audio.delta ` +
          `- (arrival of response.status typing + ${o.neutralAfterMs} ms), both at the client; ${o.slowTurns} turns after 1`,
        server: {
          ...figure(neutralLateServer),
          how: `the stored record's neutral filler event (atMs, just before its audio is sent) - t4 (the LLM wait cue: when the player's wait began) - ${o.neutralAfterMs} ms`,
        },
      },
      stateFillerStart: {
        ...figure(stateFromTyping),
        how:
          `confirm -'yes'-> place_order (webhook slowed by ${o.kitchenDelayMs} ms, state filler filler:one_moment from the cache): arrival of the filler's first response.audio.delta ` +
          `- arrival of response.status typing; negative: the filler's audio came first (the player renders the cached filler and emits its deltas ` +
          `before the runner yields the wait cue that emits typing, so typing travels after the filler's last delta); ${o.orderTurns} turns after 2`,
        fromTurnStarted: figure(stateFromStarted),
        fromInputSent: figure(stateFromSent),
      },
      answerStart: {
        ...figure(answerToAudio),
        how:
          'slow LLM turns above: the fake synthesizer records performance.now() as it yields the answer\'s first chunk (same process); ' +
          'figure = arrival at the client of the answer\'s first speech response.audio.delta - that time',
        toClear: { ...figure(answerToClear), how: 'same, to the arrival of the response.audio.clear of the playing neutral filler' },
        clearsMissing,
      },
      synthesizerCallsTotal: synth.total,
      wallSeconds: round3((performance.now() - startedAt) / 1000),
    };
  } finally {
    for (const c of clients) await c.close();
    await runtime.close();
    await openai.close();
  }
}
