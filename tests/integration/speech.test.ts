import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import type { ServerEvent, ServerEventOf } from '../../lib/protocol/v1';
import { emptyAudioCache, type AudioCache } from '../../lib/speech/audio-cache';
import { pcmFromBytes, rms } from '../../lib/speech/pcm';
import { TtsError, type SynthesisRequest, type Synthesizer } from '../../lib/speech/tts/port';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { SpeechDeps } from '../../lib/session/dispatch';
import { createEspeakSynthesizer, type EspeakSynthesizer } from '../../local/speech/espeak';
import type { LocalRuntime } from '../../local/runtime';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { sampleMap, startRuntime, storeOf, TestClient, textOf } from './harness';

const PCM16K = { format: 'pcm', sampleRate: 16000 } as const;
type Delta = ServerEventOf<'response.audio.delta'>;
const deltas = (events: ServerEvent[]) => events.filter((e): e is Delta => e.type === 'response.audio.delta');
const pcmOfItem = (events: ServerEvent[], itemId: string) =>
  pcmFromBytes(Buffer.concat(deltas(events).filter((d) => d.itemId === itemId).map((d) => Buffer.from(d.audio, 'base64'))));

/** Counts the requests the real synthesizer gets, to tell cached prompts from live synthesis. */
function counting(synth: Synthesizer): Synthesizer & { texts: string[] } {
  const texts: string[] = [];
  return {
    provider: synth.provider,
    texts,
    supports: (f) => synth.supports(f),
    synthesize(request: SynthesisRequest) {
      texts.push(request.text);
      return synth.synthesize(request);
    },
    ...(synth.wordMarks ? { wordMarks: (r: Omit<SynthesisRequest, 'format'>) => synth.wordMarks!(r) } : {}),
  };
}

/**
 * Speech end to end: the real local synthesizer (eSpeak NG in WebAssembly), the real local gateway
 * and dynalite, the real `ws` client; the LLM is a local server speaking the OpenAI stream format.
 */
describe('speech through the local gateway', () => {
  const map = sampleMap();
  let espeak: EspeakSynthesizer;
  let synth: ReturnType<typeof counting>;
  let openai: FakeOpenAI;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;
  let cache: AudioCache = emptyAudioCache;

  beforeAll(async () => {
    espeak = await createEspeakSynthesizer();
    synth = counting(espeak);
    openai = await startFakeOpenAI();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '5000' });
    const speech: SpeechDeps = {
      synthesizer: synth,
      // Swapped per test: the cache is read through this indirection.
      cache: { get: (text, voice, format) => cache.get(text, voice, format) },
      voiceFor: (language) => voiceFor(map, language, 'espeak'),
      timing: { neutralAfterMs: 100 },
    };
    runtime = await startRuntime({ llm: llmPortsFactory(env)('test-key'), speech });
    store = storeOf(runtime);
  });
  afterEach(() => {
    openai.reset();
    cache = emptyAudioCache;
    synth.texts.length = 0;
  });
  afterAll(async () => {
    await runtime?.close();
    await openai?.close();
    await espeak?.close();
  });

  it('the greeting arrives as audio: frames under 32 KB that decode to non-silent PCM of plausible length', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started, greeting } = await client.open({ type: 'session.start', audio: PCM16K });
    expect(started.audio).toEqual(PCM16K);
    const audio = deltas(greeting);
    expect(audio.length).toBeGreaterThan(1);
    expect(audio.every((d) => d.format === 'pcm' && d.sampleRate === 16000 && d.kind === 'speech')).toBe(true);
    for (const d of audio) expect(Buffer.byteLength(JSON.stringify(d))).toBeLessThan(32 * 1024);
    const done = greeting.find((e) => e.type === 'response.audio.done')!;
    const pcm = pcmOfItem(greeting, (done as { itemId: string }).itemId);
    const seconds = pcm.length / 16000;
    const text = textOf(greeting);
    // eSpeak speaks roughly 10-20 characters a second.
    expect(seconds).toBeGreaterThan(text.length / 30);
    expect(seconds).toBeLessThan(text.length / 5);
    expect(rms(pcm)).toBeGreaterThan(300);
    expect(synth.texts).toEqual([text]);
    const completed = greeting.at(-1) as ServerEventOf<'turn.completed'>;
    expect(completed.metrics.t6).toBeGreaterThanOrEqual(completed.metrics.t5!);
    expect(completed.usage.ttsCharacters).toBe(text.length);
    // The record remembers what was said and by which voice, for a cancel that comes later.
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.speech?.items.map((i) => i.text)).toEqual([text]);
    expect(head.speech?.voice).toMatchObject({ provider: 'espeak', language: 'en' });
    expect(head.checkpoint.turnState).toBe('bot');
    client.close();
  });

  it('a cached prompt costs no synthesis', async () => {
    const welcome = map.prompts['cache:welcome'] as string;
    const canned = new Uint8Array(16000).fill(1);
    cache = { get: async (text) => (text === welcome ? { audio: canned, durationMs: 500, marks: [] } : undefined) };
    const client = await TestClient.connect(runtime.wsUrl);
    const { greeting } = await client.open({ type: 'session.start', audio: PCM16K });
    expect(synth.texts).toEqual([]);
    expect(Buffer.concat(deltas(greeting).map((d) => Buffer.from(d.audio, 'base64')))).toEqual(Buffer.from(canned));
    client.close();
  });

  it('a text-only session gets no audio', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started, greeting } = await client.open();
    expect(started.audio).toBeNull();
    expect(deltas(greeting)).toEqual([]);
    expect(synth.texts).toEqual([]);
    client.close();
  });

  it('slow LLM: filler audio plays, is cleared the moment the answer is ready, and the answer follows; speech starts at the first sentence', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    await client.open({ type: 'session.start', audio: PCM16K });
    openai.script({ text: 'We roast our beans on Tuesdays. They come from Colombia.', firstTokenDelayMs: 700, chunkChars: 4, tokensPerSecond: 40 });
    const events = await client.say('where do your coffee beans come from?');
    const order = events.map((e) =>
      e.type === 'response.audio.delta' ? `audio:${e.kind}` : e.type === 'response.audio.clear' ? 'clear' : e.type === 'response.status' ? `status:${e.status}` : e.type,
    );
    const firstFiller = order.indexOf('audio:filler');
    const clear = order.indexOf('clear');
    const firstAnswer = order.indexOf('audio:speech');
    expect(order.indexOf('status:typing')).toBeGreaterThanOrEqual(0);
    expect(firstFiller).toBeGreaterThan(order.indexOf('status:typing'));
    expect(clear).toBeGreaterThan(firstFiller);
    expect(firstAnswer).toBeGreaterThan(clear);
    // The cleared item is the neutral filler.
    const cleared = events.find((e) => e.type === 'response.audio.clear') as ServerEventOf<'response.audio.clear'>;
    expect(events).toContainEqual(expect.objectContaining({ type: 'response.filler', key: 'filler:still_working', itemId: cleared.itemId }));
    // Two sentences, two speech items: the first went to synthesis before the LLM finished.
    const speechItems = new Set(deltas(events).filter((d) => d.kind === 'speech').map((d) => d.itemId));
    expect(speechItems.size).toBe(2);
    expect(synth.texts).toContain('We roast our beans on Tuesdays.');
    expect(textOf(events)).toBe('We roast our beans on Tuesdays. They come from Colombia.');
    const completed = events.at(-1) as ServerEventOf<'turn.completed'>;
    expect(completed.metrics.t4).toBeGreaterThan(0);
    expect(completed.metrics.t6).toBeGreaterThan(completed.metrics.t4!);
    client.close();
  });

  it('a cancel sent from a second connection stops the running turn within the bound; the stored answer is cut to what was heard', async () => {
    const first = await TestClient.connect(runtime.wsUrl);
    const { started } = await first.open({ type: 'session.start', audio: PCM16K });
    // A long, slow answer: 40 sentences at 20 chunks a second would take many seconds.
    const long = Array.from({ length: 40 }, (_, i) => `Sentence number ${i + 1} is here.`).join(' ');
    openai.script({ text: long, chunkChars: 6, tokensPerSecond: 20 });
    const turnId = crypto.randomUUID();
    first.send({ type: 'input.text', turnId, text: 'where do your coffee beans come from?', sessionId: started.sessionId });
    // The first sentence is out and playing (a neutral filler may come before it).
    for (;;) {
      const done = (await first.until('response.audio.done', 10_000)).at(-1) as ServerEventOf<'response.audio.done'>;
      if (done.kind === 'speech') break;
    }

    const second = await TestClient.connect(runtime.wsUrl);
    await second.open({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken, audio: PCM16K });
    second.send({ type: 'response.cancel', turnId, playedMs: 600 });
    const rest = await first.until('turn.completed', 10_000);
    expect(textOf(rest).length).toBeLessThan(long.length);

    const head = (await store.loadHead(started.sessionId))!;
    expect(head.turnId).toBe(turnId);
    expect(head.status).toBe('cancelled');
    const cancelled = head.events.find((e) => e.type === 'cancelled') as { detectMs: number; playedMs: number };
    expect(cancelled.playedMs).toBe(600);
    // The bound of the issue: the running turn saw the cancel within 250 ms of it being written.
    expect(cancelled.detectMs).toBeLessThanOrEqual(250);
    const interrupted = head.events.find((e) => e.type === 'interrupted');
    expect(interrupted).toMatchObject({ playedMs: 600 });
    const answer = head.checkpoint.messages.at(-1)!;
    expect(answer).toMatchObject({ role: 'assistant', interrupted: true });
    expect(long.startsWith(answer.content)).toBe(true);
    expect(answer.content.length).toBeLessThan('Sentence number 1 is here.'.length);
    // What a reloaded page shows is what was heard, marked as cut short.
    expect(head.checkpoint.transcript.at(-1)).toEqual({ role: 'assistant', text: answer.content, interrupted: true });
    expect(head.checkpoint.turnState).toBe('user');
    first.close();
    second.close();
  });

  it('a cancel after the turn committed cuts the stored answer with a record of its own', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open({ type: 'session.start', audio: PCM16K });
    const before = (await store.loadHead(started.sessionId))!;
    const spoken = before.speech!.items[0]!;
    client.send({ type: 'response.cancel', turnId: before.turnId, playedMs: Math.round(spoken.durationMs / 2) });
    let head = before;
    for (let i = 0; i < 50 && head.seq === before.seq; i++) {
      await new Promise((r) => setTimeout(r, 20));
      head = (await store.loadHead(started.sessionId))!;
    }
    expect(head.seq).toBe(before.seq + 1);
    expect(head.input).toEqual({ kind: 'interrupt', turnId: before.turnId, playedMs: Math.round(spoken.durationMs / 2) });
    const cut = head.checkpoint.messages.at(-1)!;
    expect(cut.interrupted).toBe(true);
    const full = before.checkpoint.messages.at(-1)!.content;
    expect(full.startsWith(cut.content)).toBe(true);
    expect(cut.content.length).toBeGreaterThan(0);
    expect(cut.content.length).toBeLessThan(full.length);
    expect(before.checkpoint.transcript.at(-1)).toEqual({ role: 'assistant', text: full });
    expect(head.checkpoint.transcript.at(-1)).toEqual({ role: 'assistant', text: cut.content, interrupted: true });
    expect(head.checkpoint.turnState).toBe('user');
    // The conversation goes on from the cut checkpoint.
    const next = await client.say('a latte please');
    expect(next.at(-1)).toMatchObject({ type: 'turn.completed' });
    client.close();
  });
});

/** Seeds 000 and 004: a synthesizer that fails never costs the user the text. */
describe('speech when the synthesizer fails', () => {
  const map = sampleMap();
  let openai: FakeOpenAI;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;
  const safe = map.llm!.safe_response as string;
  const safeAudio = new Uint8Array(24_000).fill(5);

  beforeAll(async () => {
    openai = await startFakeOpenAI();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local' });
    const unreachable: Synthesizer = {
      provider: 'fake',
      supports: () => true,
      async *synthesize() {
        throw new TtsError('tts.connection', 'connect ECONNREFUSED polly');
      },
    };
    const speech: SpeechDeps = {
      synthesizer: unreachable,
      cache: { get: async (text) => (text === safe ? { audio: safeAudio, durationMs: 750, marks: [] } : undefined) },
      voiceFor: (language) => voiceFor(map, language, 'polly'),
    };
    runtime = await startRuntime({ llm: llmPortsFactory(env)('test-key'), speech });
    store = storeOf(runtime);
  });
  afterAll(async () => {
    await runtime?.close();
    await openai?.close();
  });

  it('the text is delivered, the audio skipped and recorded; during an LLM answer the cached safe response plays', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started, greeting } = await client.open({ type: 'session.start', audio: PCM16K });
    expect(textOf(greeting)).toBe(map.prompts['cache:welcome']);
    expect(deltas(greeting)).toEqual([]);
    const first = (await store.loadHead(started.sessionId))!;
    expect(first.events).toContainEqual(expect.objectContaining({ type: 'tts_error', source: 'cache:welcome', code: 'tts.connection' }));

    openai.script({ text: 'We roast our beans on Tuesdays. They come from Colombia.' });
    const answer = await client.say('where do your coffee beans come from?');
    expect(textOf(answer)).toBe('We roast our beans on Tuesdays. They come from Colombia.');
    const audio = deltas(answer);
    expect(Buffer.concat(audio.map((d) => Buffer.from(d.audio, 'base64')))).toEqual(Buffer.from(safeAudio));
    expect(answer.at(-1)).toMatchObject({ type: 'turn.completed' });
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.events.filter((e) => e.type === 'tts_error').length).toBeGreaterThanOrEqual(1);
    // The conversation goes on.
    expect((await client.say('a small tea')).at(-1)).toMatchObject({ type: 'turn.completed' });
    client.close();
  });
});
