import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DynamoSessionStore } from '../lib/checkpoint/dynamo-store';
import { loadDialogueMap } from '../lib/flow/map';
import { loadOrTrain } from '../lib/nlu/model-file';
import { PROTOCOL_VERSION, type ServerEventOf } from '../lib/protocol/v1';
import type { SpeechDeps } from '../lib/session/dispatch';
import { fileAudioCache, type AudioCache } from '../lib/speech/audio-cache';
import { buildAudioCache, voicesFor } from '../lib/speech/build-cache';
import type { AudioFormat } from '../lib/speech/format';
import type { Transcriber } from '../lib/speech/stt/port';
import type { SynthesisRequest, Synthesizer } from '../lib/speech/tts/port';
import { createEspeakSynthesizer } from '../local/speech/espeak';
import { startLocalRuntime } from '../local/runtime';
import { BenchClient } from './client';
import { progress, round3, summarize } from './stats';
import { Invocations, sleep, sleepUntil } from './timing';

/*
 * Early work on partial transcripts (issue 9, point 2; lib/session/early-work.ts): how much of the
 * first audio's latency it saves on the sample bot, through the real local runtime (dynalite, the
 * local WebSocket gateway, the @connections posts, a real `ws` client) with the local eSpeak NG
 * synthesizer and the static audio cache as `npm start` builds it (static prompts cached, the
 * templated confirm sentence synthesized live). Everything runs in this process: the client's
 * figures are one performance.now() clock.
 *
 * Each measured turn runs in a fresh session (hello, session.start with audio and speechInput, the
 * cached greeting), so every variant starts on the same checkpoint (welcome, no order yet).
 */

const PCM16K: AudioFormat = { format: 'pcm', sampleRate: 16000 };
const FINAL = "I'd like a large cappuccino with oat milk";
/** What the confirm state says for FINAL: the templated sentence, synthesized live (not in the static cache). */
const CONFIRM_SENTENCE = "So that's 1 × large cappuccino with oat milk.";
/** The user's utterance as the client reports it (input.text speech.sinceFirstAudioMs): the same in every variant. */
const UTTERANCE_MS = 1500;

type Partial = { atMs: number; text: string };

/** When each partial is sent, from the first; the final follows the last one after `finalAfterMs`. */
interface Variant {
  name: string;
  what: string;
  partials: readonly Partial[];
  finalAfterMs: number;
}

const VARIANTS: readonly Variant[] = [
  {
    name: 'noPartials',
    what: '(a) the final input.text (source speech) alone',
    partials: [],
    finalAfterMs: 0,
  },
  {
    name: 'partials',
    what: "(b) right guess: input.partial 'I'd like a large' / '… cappuccino' / '… with oat milk' 250 ms apart, the final 300 ms after the last",
    partials: [
      { atMs: 0, text: "I'd like a large" },
      { atMs: 250, text: "I'd like a large cappuccino" },
      { atMs: 500, text: FINAL },
    ],
    finalAfterMs: 300,
  },
  {
    name: 'wrongGuess',
    what: "wrong guess: input.partial 'what's on' / 'what's on the menu' 250 ms apart (ask_menu, a cached prompt), the final order 300 ms after the last",
    partials: [
      { atMs: 0, text: "what's on" },
      { atMs: 250, text: "what's on the menu" },
    ],
    finalAfterMs: 300,
  },
  {
    name: 'wrongEntities',
    what: "wrong entities: input.partial 'I'd like a small latte' (order_drink too: its confirm sentence is synthesized live and discarded), the final order 300 ms after it",
    partials: [{ atMs: 0, text: "I'd like a small latte" }],
    finalAfterMs: 300,
  },
];

/**
 * Word-by-word partials, as a recognizer with stable partial results sends them: one a word, 120 ms
 * apart. Not one of the headline figures: it shows whether the answer for the final words is still
 * rendered once many partials have settled on the same intent.
 */
const WORD_BY_WORD: Variant = {
  name: 'wordByWord',
  what: "word-by-word partials 120 ms apart ('I'd', 'I'd like', … , the full sentence), the final 300 ms after the last",
  partials: FINAL.split(' ').map((_, i, words) => ({ atMs: i * 120, text: words.slice(0, i + 1).join(' ') })),
  finalAfterMs: 300,
};

export interface EarlyBenchOptions {
  /** Measured turns of (a) and (b). */
  sessions?: number;
  /** Measured turns of each wrong-guess variant (they run every other round). */
  wrongSessions?: number;
  /** Rounds of every variant before measuring. */
  warmup?: number;
  /** Measured turns of the word-by-word variant (0: left out). */
  wordByWordSessions?: number;
  /** Where the static audio cache is built (as npm start builds build/audio). */
  cacheDir?: string;
  /**
   * Injected delay before the synthesizer's first chunk (0: eSpeak as it is, first chunk after ~1 ms).
   * Set it to a cloud synthesizer's first byte (Polly: ~100-200 ms) to see what early work saves there.
   */
  ttsFirstByteMs?: number;
}

/** The port is never called here: the local runtime accepts speechInput (and so input.partial) only with a recognizer configured. */
const stubTranscriber: Transcriber = {
  provider: 'bench-stub',
  transcribe: () => Promise.reject(new Error('the early-work benchmark sends transcripts, never audio')),
};

/** The synthesizer, counting what it is asked to say and when (texts since the last reset). */
class CountingSynthesizer implements Synthesizer {
  calls: { text: string; at: number }[] = [];
  constructor(
    private readonly inner: Synthesizer,
    private readonly firstByteMs = 0,
  ) {}
  get provider() {
    return this.inner.provider;
  }
  supports(format: AudioFormat) {
    return this.inner.supports(format);
  }
  synthesize(request: SynthesisRequest): AsyncIterable<Uint8Array> {
    this.calls.push({ text: request.text, at: performance.now() });
    if (this.firstByteMs <= 0) return this.inner.synthesize(request);
    return this.delayed(request);
  }
  private async *delayed(request: SynthesisRequest): AsyncIterable<Uint8Array> {
    await sleep(this.firstByteMs);
    if (request.signal?.aborted) return;
    yield* this.inner.synthesize(request);
  }
  wordMarks(request: Omit<SynthesisRequest, 'format'>) {
    return this.inner.wordMarks!(request);
  }
}

interface Sample {
  /** ws.send(final input.text) -> arrival of the first response.audio.delta of the turn. */
  firstAudioMs: number;
  /** Audio bytes (base64) in the message that carried the first delta: a prepared or cached answer goes out whole, a live one chunk by chunk. */
  firstMessageAudioChars: number;
  metrics: ServerEventOf<'turn.completed'>['metrics'];
  guess: { intent: string | null; right: boolean; partials: number; prepared: number; used: number } | undefined;
  /** Syntheses started by the final turn (after its send) and early (before it). */
  liveSyntheses: string[];
  earlySyntheses: string[];
  ttsCharacters: number;
}

const figure = (values: readonly number[]) => {
  const s = summarize(values.map(round3));
  const sorted = [...values].sort((a, b) => a - b);
  const p95 = sorted.length ? round3(sorted[Math.min(sorted.length - 1, Math.round(0.95 * (sorted.length - 1)))]!) : Number.NaN;
  return { p50: s.p50, p95, min: s.min, max: s.max, n: s.count };
};

export async function benchEarly(repoRoot: string, options: EarlyBenchOptions = {}) {
  const o = { sessions: 30, wrongSessions: 15, warmup: 2, wordByWordSessions: 3, ttsFirstByteMs: 0, cacheDir: join(repoRoot, 'node_modules', '.cache', 'parley-bench', 'audio-espeak'), ...options };
  const startedAt = performance.now();
  const mapPath = join(repoRoot, 'dialogue_map.json');
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const { model } = await loadOrTrain(map, mapPath);

  const espeak = await createEspeakSynthesizer();
  const synth = new CountingSynthesizer(espeak, o.ttsFirstByteMs);
  const voiceFor = voicesFor(map, espeak);
  // npm start's cache: every static text of the map rendered by eSpeak (only what is missing), in a folder of the bench's own.
  const built = await buildAudioCache({ map, synthesizer: espeak, voiceFor, formats: [PCM16K], dir: o.cacheDir });
  if (built.failed.length) throw new Error(`the static audio cache could not be built: ${JSON.stringify(built.failed[0])}`);
  progress(`early: static audio cache in ${o.cacheDir}: ${built.rendered} rendered, ${built.reused} reused (${Math.round(built.ms)} ms)`);
  const files = fileAudioCache(o.cacheDir);
  const cacheStats = { hits: 0, misses: 0 };
  const cache: AudioCache = {
    async get(text, voice, format) {
      const hit = await files.get(text, voice, format);
      if (hit) cacheStats.hits++;
      else cacheStats.misses++;
      return hit;
    },
  };
  const speech: SpeechDeps = { synthesizer: synth, cache, voiceFor };
  const invocations = new Invocations();
  const runtime = await startLocalRuntime({
    map,
    nluModel: model,
    port: 0,
    dynamoPort: 0,
    speech,
    stt: { transcriber: stubTranscriber },
    gateway: { onInvoke: invocations.onInvoke },
  });
  const store = new DynamoSessionStore({ client: runtime.dynamo.client, tableName: runtime.tableName, ttlSeconds: 3600 });
  let sent = 0; // message-route messages sent (each is one invocation)

  const openSession = async (): Promise<{ client: BenchClient; sessionId: string }> => {
    const client = await BenchClient.open(runtime.wsUrl);
    const acked = client.waitFor((e) => e.type === 'hello.ack');
    client.send({ type: 'hello', version: PROTOCOL_VERSION });
    sent++;
    await acked;
    const greeted = client.waitFor((e) => e.type === 'turn.completed');
    client.send({ type: 'session.start', audio: PCM16K, speechInput: { encoding: 'pcm', sampleRate: 16000 } });
    sent++;
    await greeted;
    await invocations.until(sent);
    const started = client.seen.find((e) => e.type === 'session.started');
    if (started?.type !== 'session.started' || started.audio?.format !== 'pcm' || started.speechInput?.mode !== 'upload') {
      throw new Error(`not the session asked for: ${JSON.stringify(started)}`);
    }
    return { client, sessionId: started.sessionId };
  };

  /**
   * One measured turn in `session`. `meanwhile` (opening the next session) runs while the user is
   * still speaking and is awaited before the final is sent, so nothing else runs in the measured window.
   */
  const runVariant = async (variant: Variant, session: { client: BenchClient; sessionId: string }, meanwhile: () => Promise<unknown>): Promise<Sample> => {
    const { client, sessionId } = session;
    try {
      const turnId = randomUUID();
      client.clearSeen();
      synth.calls = [];
      const t0 = performance.now();
      const aside = meanwhile();
      for (const p of variant.partials) {
        await sleepUntil(t0 + p.atMs);
        client.send({ type: 'input.partial', turnId, sessionId, text: p.text });
        sent++;
      }
      const last = variant.partials.at(-1)?.atMs ?? 0;
      await sleepUntil(t0 + (variant.partials.length ? last + variant.finalAfterMs : 0));
      await aside;
      await invocations.until(sent);
      const done = client.waitFor((e) => e.type === 'turn.completed' && e.turnId === turnId, 15_000);
      const sentAt = performance.now();
      client.send({ type: 'input.text', turnId, text: FINAL, source: 'speech', speech: { sinceFirstAudioMs: UTTERANCE_MS, sinceFinalMs: 0 } });
      sent++;
      const completed = (await done) as ServerEventOf<'turn.completed'>;
      await invocations.until(sent);
      const events = client.seen;
      const first = events.findIndex((e) => e.type === 'response.audio.delta' && e.turnId === turnId);
      const moved = events.find((e) => e.type === 'node.transition');
      if (first < 0 || moved?.type !== 'node.transition' || moved.to !== 'confirm') {
        throw new Error(`${variant.name}: no audio or not in confirm: ${JSON.stringify(events.filter((e) => e.type !== 'response.audio.delta'))}`);
      }
      const said = events.filter((e) => e.type === 'response.text.done').map((e) => (e.type === 'response.text.done' ? e.text : ''));
      if (!said.some((t) => t.includes(CONFIRM_SENTENCE))) throw new Error(`${variant.name}: the confirm sentence was not said: ${JSON.stringify(said)}`);
      const head = await store.loadHead(sessionId);
      if (head?.turnId !== turnId) throw new Error(`${variant.name}: the head is not the measured turn`);
      const guess = head.events.find((e) => e.type === 'early_guess');
      return {
        firstAudioMs: client.seenAt[first]! - sentAt,
        firstMessageAudioChars: events.reduce((n, e, i) => n + (e.type === 'response.audio.delta' && client.seenAt[i] === client.seenAt[first] ? e.audio.length : 0), 0),
        metrics: completed.metrics,
        guess: guess?.type === 'early_guess' ? { intent: guess.intent, right: guess.right, partials: guess.partials, prepared: guess.prepared, used: guess.used } : undefined,
        liveSyntheses: synth.calls.filter((c) => c.at >= sentAt).map((c) => c.text),
        earlySyntheses: synth.calls.filter((c) => c.at < sentAt).map((c) => c.text),
        ttsCharacters: completed.usage.ttsCharacters ?? 0,
      };
    } finally {
      await client.close();
    }
  };

  const samples = new Map<string, Sample[]>();
  try {
    progress(`early: runtime up at ${runtime.wsUrl}; ${o.warmup} warm-up rounds, then ${o.sessions} sessions of (a) and (b), ${o.wrongSessions} of each wrong guess`);
    // Variants interleaved round by round, in a rotating order, so drift in the machine's speed hits all alike;
    // the wrong-guess variants every other round (after warm-up), to keep the run under a minute.
    const plan: { variant: Variant; measured: boolean }[] = [];
    for (let round = 0; round < o.warmup + o.sessions; round++) {
      const measured = round >= o.warmup;
      const k = round - o.warmup;
      const withWrongs = !measured || (k % 2 === 0 && k / 2 < o.wrongSessions);
      const these = withWrongs ? VARIANTS : VARIANTS.slice(0, 2);
      for (let j = 0; j < these.length; j++) plan.push({ variant: these[(round + j) % these.length]!, measured });
    }
    for (let i = 0; i < o.wordByWordSessions; i++) plan.push({ variant: WORD_BY_WORD, measured: true });
    let next = openSession();
    for (let i = 0; i < plan.length; i++) {
      const { variant, measured } = plan[i]!;
      const session = await next;
      const sample = await runVariant(variant, session, () => (i + 1 < plan.length ? (next = openSession()) : Promise.resolve()));
      if (measured) samples.set(variant.name, [...(samples.get(variant.name) ?? []), sample]);
    }
  } finally {
    await runtime.close();
    await espeak.close();
  }

  const summary = (variant: Variant) => {
    const list = samples.get(variant.name) ?? [];
    const guesses = list.map((s) => s.guess);
    const withGuess = guesses.filter((g) => g !== undefined);
    const m = (pick: (s: Sample) => number | undefined) => figure(list.map(pick).filter((v): v is number => v !== undefined && Number.isFinite(v)));
    const liveConfirm = list.filter((s) => s.liveSyntheses.includes(CONFIRM_SENTENCE)).length;
    return {
      what: variant.what,
      firstAudioMs: m((s) => s.firstAudioMs),
      serverT6MinusT3: m((s) => (s.metrics.t6 !== undefined && s.metrics.t3 !== undefined ? s.metrics.t6 - s.metrics.t3 : undefined)),
      serverT5MinusT3: m((s) => (s.metrics.t5 !== undefined && s.metrics.t3 !== undefined ? s.metrics.t5 - s.metrics.t3 : undefined)),
      serverT5: m((s) => s.metrics.t5),
      firstMessageAudioChars: m((s) => s.firstMessageAudioChars),
      earlyGuess: {
        turnsWithRecord: withGuess.length,
        right: withGuess.filter((g) => g.right).length,
        usedAny: withGuess.filter((g) => g.used > 0).length,
        intents: [...new Set(withGuess.map((g) => g.intent))],
        partialsP50: figure(withGuess.map((g) => g.partials)).p50,
        preparedP50: figure(withGuess.map((g) => g.prepared)).p50,
        usedP50: figure(withGuess.map((g) => g.used)).p50,
      },
      synthesis: {
        turnsSynthesizingTheConfirmSentenceLive: liveConfirm,
        earlySynthesesPerTurnP50: figure(list.map((s) => s.earlySyntheses.length)).p50,
        earlyTexts: [...new Set(list.flatMap((s) => s.earlySyntheses))],
        ttsCharactersP50: figure(list.map((s) => s.ttsCharacters)).p50,
      },
    };
  };

  const results = Object.fromEntries([...VARIANTS, ...(o.wordByWordSessions > 0 ? [WORD_BY_WORD] : [])].map((v) => [v.name, summary(v)]));
  const a = results.noPartials!.firstAudioMs;
  const b = results.partials!.firstAudioMs;
  const saving = (x: number, y: number) => ({ ms: round3(x - y), percent: round3(((x - y) / x) * 100) });
  return {
    how:
      `the real local runtime (dynalite, local gateway, @connections posts, ws client) with dialogue_map.json, eSpeak NG (local/speech/espeak.ts) ` +
      `and the static audio cache as npm start builds it (the map's static texts in pcm16000; the templated '${CONFIRM_SENTENCE}' synthesized live); ` +
      `session.start audio pcm/16000 + speechInput pcm/16000 (a stub recognizer, never called); one fresh session per measured turn; ` +
      `turn: input.text '${FINAL}' source speech (sinceFirstAudioMs ${UTTERANCE_MS}); firstAudioMs = client wall time from ws.send(final input.text) to the arrival of the turn's first response.audio.delta; ` +
      `${o.sessions} turns of (a) and (b), ${o.wrongSessions} of each wrong guess, after ${o.warmup} warm-up rounds, variants interleaved; ` +
      `the next session is opened while the user is still speaking (never in the measured window); ` +
      `${o.ttsFirstByteMs ? `synthesizer first chunk delayed by ${o.ttsFirstByteMs} ms (a cloud synthesizer's first byte); ` : ''}server t3..t6 from turn.completed metrics (t5 counts from t1 = ${UTTERANCE_MS} ms before the handler got the final)`,
    variants: results,
    saving: {
      firstAudioP50: saving(a.p50, b.p50),
      firstAudioP95: saving(a.p95, b.p95),
      serverT6MinusT3P50: saving(results.noPartials!.serverT6MinusT3.p50, results.partials!.serverT6MinusT3.p50),
      wrongGuessCostP50Ms: round3(results.wrongGuess!.firstAudioMs.p50 - a.p50),
      wrongEntitiesCostP50Ms: round3(results.wrongEntities!.firstAudioMs.p50 - a.p50),
      what: '(a) - (b): first-audio latency saved by rendering the answer ahead; a wrong guess\'s cost is its first audio minus (a)',
    },
    staticCache: { dir: o.cacheDir, rendered: built.rendered, reused: built.reused, hits: cacheStats.hits, misses: cacheStats.misses },
    wallSeconds: round3((performance.now() - startedAt) / 1000),
  };
}
