import { describe, expect, it } from 'vitest';
import { LIMITS, type ServerEvent } from '../../lib/protocol/v1';
import { systemClock } from '../../lib/runner/ports';
import type { AudioCache, CachedAudio } from '../../lib/speech/audio-cache';
import type { AudioFormat } from '../../lib/speech/format';
import { Player, type PlayerOptions } from '../../lib/speech/player';
import { TtsError, type SynthesisRequest, type Synthesizer, type Voice } from '../../lib/speech/tts/port';
import { packEvents } from '../../lib/transport/framing';

const PCM16K: AudioFormat = { format: 'pcm', sampleRate: 16000 };
const VOICE: Voice = { provider: 'fake', id: 'v', language: 'en' };
/** 16 kHz, 16-bit mono: 32 bytes per millisecond. */
const pcmOf = (ms: number, fill = 7) => new Uint8Array(ms * 32).fill(fill);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A synthesizer that answers after `delayMs` with `ms` of audio per character-ish, in two chunks. */
function fakeSynth(o: { delayMs?: number; msPerChar?: number; fail?: (text: string) => TtsError | undefined } = {}) {
  const calls: string[] = [];
  const synth: Synthesizer = {
    provider: 'fake',
    supports: () => true,
    async *synthesize(request: SynthesisRequest) {
      calls.push(request.text);
      await sleep(o.delayMs ?? 0);
      const failure = o.fail?.(request.text);
      if (failure) throw failure;
      const audio = pcmOf(Math.max(1, request.text.length * (o.msPerChar ?? 10)));
      const half = Math.floor(audio.length / 4) * 2;
      yield audio.subarray(0, half);
      if (request.signal?.aborted) return;
      await sleep(1);
      yield audio.subarray(half);
    },
  };
  return { synth, calls };
}

function memoryCache(entries: Record<string, number>): AudioCache & { hits: string[] } {
  const hits: string[] = [];
  return {
    hits,
    async get(text): Promise<CachedAudio | undefined> {
      const ms = entries[text];
      if (ms === undefined) return undefined;
      hits.push(text);
      return { audio: pcmOf(ms, 3), durationMs: ms, marks: [] };
    },
  };
}

function player(overrides: Partial<PlayerOptions> = {}) {
  const events: ServerEvent[] = [];
  let id = 0;
  const started = performance.now();
  const controller = new AbortController();
  const p = new Player({
    turnId: 'turn-1',
    format: PCM16K,
    voice: VOICE,
    synthesizer: fakeSynth().synth,
    cache: memoryCache({}),
    neutralFiller: { text: 'Still working on it…', source: 'filler:still_working' },
    maxWaitMs: 20_000,
    safeResponse: { text: "Let's keep things friendly!", source: 'llm:safe_response' },
    clock: systemClock,
    at: () => performance.now() - started,
    emit: (e) => events.push(e),
    newId: () => `item-${++id}`,
    signal: controller.signal,
    timing: { neutralAfterMs: 30, leadMs: 5 },
    ...overrides,
  });
  return { p, events, controller };
}

const kinds = (events: ServerEvent[]) => events.map((e) => (e.type === 'response.audio.delta' ? `audio:${e.kind}:${e.itemId}` : e.type === 'response.audio.clear' ? `clear:${e.itemId}` : e.type));
const audioBytes = (events: ServerEvent[], itemId: string) =>
  events.flatMap((e) => (e.type === 'response.audio.delta' && e.itemId === itemId ? [Buffer.from(e.audio, 'base64').length] : [])).reduce((a, b) => a + b, 0);

describe('Player: playlist order and the cache', () => {
  it('plays a cached prompt without calling the synthesizer, then synthesizes the rest, in playlist order', async () => {
    const { synth, calls } = fakeSynth({ delayMs: 20 });
    const cache = memoryCache({ 'Hi, welcome!': 400 });
    const { p, events } = player({ synthesizer: synth, cache });
    p.say({ kind: 'speech', text: 'Hi, welcome!', source: 'cache:welcome' });
    p.say({ kind: 'speech', text: 'Your total is 7 euros.', source: 'tts:confirm' });
    const report = await p.finish();

    expect(cache.hits).toEqual(['Hi, welcome!']);
    expect(calls).toEqual(['Your total is 7 euros.']);
    const items = events.filter((e) => e.type === 'response.audio.done');
    expect(items.map((e) => e.itemId)).toEqual(['item-1', 'item-2']);
    // Every delta of item 1 comes before any delta of item 2, although item 2 was being made meanwhile.
    const order = kinds(events).filter((k) => k.startsWith('audio:'));
    expect(order.lastIndexOf('audio:speech:item-1')).toBeLessThan(order.indexOf('audio:speech:item-2'));
    expect(audioBytes(events, 'item-1')).toBe(400 * 32);
    expect(audioBytes(events, 'item-2')).toBe('Your total is 7 euros.'.length * 10 * 32);
    expect(report.spoken.map((s) => [s.text, s.durationMs])).toEqual([
      ['Hi, welcome!', 400],
      ['Your total is 7 euros.', 'Your total is 7 euros.'.length * 10],
    ]);
    expect(report.ttsCharacters).toBe('Your total is 7 euros.'.length);
    expect(report.firstSentAtMs).toBeGreaterThanOrEqual(report.firstChunkAtMs!);
  });

  it('keeps every audio message within one WebSocket frame, and the audio decodes back whole', async () => {
    const cache = memoryCache({ 'A long prompt.': 5000 }); // 160 KB of PCM
    const { p, events } = player({ cache });
    p.say({ kind: 'speech', text: 'A long prompt.', source: 'cache:long' });
    await p.finish();
    const deltas = events.filter((e) => e.type === 'response.audio.delta');
    expect(deltas.length).toBeGreaterThan(5);
    expect(deltas.map((d) => d.seq)).toEqual(deltas.map((_, i) => i));
    for (const d of deltas) expect(Buffer.byteLength(JSON.stringify(d))).toBeLessThanOrEqual(LIMITS.serverMessageBytes);
    // Packed for the wire, no payload needs event.part splitting.
    const payloads = packEvents(events, () => 'x');
    expect(payloads.every((s) => !s.includes('"event.part"'))).toBe(true);
    expect(audioBytes(events, 'item-1')).toBe(5000 * 32);
  });

  it('a text-only session gets no audio, only the filler hints', async () => {
    const { synth, calls } = fakeSynth();
    const { p, events } = player({ format: null, synthesizer: synth });
    p.say({ kind: 'filler', text: 'One moment…', source: 'filler:one_moment' });
    p.say({ kind: 'speech', text: 'Done.', source: 'cache:done' });
    await p.finish();
    expect(calls).toEqual([]);
    expect(events).toEqual([{ type: 'response.filler', turnId: 'turn-1', key: 'filler:one_moment', text: 'One moment…' }]);
  });
});

describe('Player: fillers while slow work runs', () => {
  it('filler audio, then the neutral filler, cut by response.audio.clear the moment the answer is ready, then the answer', async () => {
    const cache = memoryCache({ 'One moment…': 60, 'Still working on it…': 1000 });
    const { synth } = fakeSynth({ delayMs: 5 });
    const { p, events } = player({ cache, synthesizer: synth });
    p.say({ kind: 'filler', text: 'One moment…', source: 'filler:one_moment' });
    p.waiting();
    await sleep(250); // a slow LLM: the state's filler (60 ms) ran out long ago
    p.say({ kind: 'speech', text: 'Here is your answer.', source: 'llm' });
    const report = await p.finish();

    const k = kinds(events);
    const filler = k.indexOf('audio:filler:item-1');
    const neutralId = events.find((e) => e.type === 'response.filler' && e.key === 'filler:still_working')!;
    expect(neutralId).toBeDefined();
    const neutral = (neutralId as { itemId: string }).itemId;
    const clear = k.indexOf(`clear:${neutral}`);
    const answer = k.findIndex((x) => x.startsWith('audio:speech:'));
    expect(filler).toBeGreaterThanOrEqual(0);
    expect(filler).toBeLessThan(k.indexOf(`audio:filler:${neutral}`));
    expect(k.indexOf(`audio:filler:${neutral}`)).toBeLessThan(clear);
    expect(clear).toBeLessThan(answer);
    expect(events).toContainEqual({ type: 'response.status', turnId: 'turn-1', status: 'typing' });
    expect(events).toContainEqual({ type: 'response.status', turnId: 'turn-1', status: 'still_working' });
    expect(report.events).toContainEqual(expect.objectContaining({ type: 'filler', source: 'filler:still_working', neutral: true }));
    // Fillers are not what the bot said: only the answer is measured for a cancel.
    expect(report.spoken.map((s) => s.text)).toEqual(['Here is your answer.']);
  });

  it('a quick answer needs no neutral filler, and a state filler is never cut', async () => {
    const cache = memoryCache({ 'One moment…': 2000, 'Still working on it…': 1000 });
    const { p, events } = player({ cache, timing: { neutralAfterMs: 200, leadMs: 5 } });
    p.say({ kind: 'filler', text: 'One moment…', source: 'filler:one_moment' });
    p.waiting();
    await sleep(20);
    p.say({ kind: 'speech', text: 'Done.', source: 'llm' });
    await p.finish();
    expect(events.some((e) => e.type === 'response.audio.clear')).toBe(false);
    expect(events.some((e) => e.type === 'response.filler' && e.key === 'filler:still_working')).toBe(false);
  });

  it('repeats the neutral filler while the wait goes on, and stops after the map’s limit', async () => {
    const cache = memoryCache({ 'Still working on it…': 40 });
    const { p, events } = player({ cache, maxWaitMs: 300 });
    p.waiting();
    await sleep(600);
    const countAtLimit = events.filter((e) => e.type === 'response.audio.done').length;
    await sleep(200);
    expect(events.filter((e) => e.type === 'response.audio.done').length).toBe(countAtLimit);
    expect(countAtLimit).toBeGreaterThanOrEqual(2);
    p.say({ kind: 'speech', text: 'Finally.', source: 'llm' });
    await p.finish();
  });

  it('a text-only session gets the same moments as response.status', async () => {
    const { p, events } = player({ format: null, timing: { neutralAfterMs: 20, leadMs: 0 } });
    p.waiting();
    await sleep(120);
    p.say({ kind: 'speech', text: 'Answer.', source: 'llm' });
    await p.finish();
    const statuses = events.flatMap((e) => (e.type === 'response.status' ? [e.status] : []));
    expect(statuses[0]).toBe('typing');
    expect(statuses).toContain('still_working');
    expect(events.some((e) => e.type === 'response.audio.delta')).toBe(false);
  });
});

describe('Player: failures and cancel', () => {
  it('a failed synthesis skips that item’s audio, records it, and the next items still play', async () => {
    const { synth } = fakeSynth({ fail: (t) => (t.startsWith('Bad') ? new TtsError('tts.failed', 'TextLengthExceeded') : undefined) });
    const { p, events } = player({ synthesizer: synth });
    p.say({ kind: 'speech', text: 'Bad sentence.', source: 'tts:x' });
    p.say({ kind: 'speech', text: 'Good sentence.', source: 'tts:y' });
    const report = await p.finish();
    expect(events.filter((e) => e.type === 'response.audio.done').map((e) => e.itemId)).toEqual(['item-2']);
    expect(report.events).toContainEqual(expect.objectContaining({ type: 'tts_error', source: 'tts:x', code: 'tts.failed' }));
  });

  it('an item that fails half-way ends with what was sent: its done event, its partial duration, and the failure recorded', async () => {
    const synth: Synthesizer = {
      provider: 'fake',
      supports: () => true,
      async *synthesize() {
        yield pcmOf(250);
        throw new TtsError('tts.failed', 'stream reset');
      },
    };
    const { p, events } = player({ synthesizer: synth });
    p.say({ kind: 'speech', text: 'Cut short.', source: 'tts:x' });
    const report = await p.finish();
    expect(events.filter((e) => e.type === 'response.audio.done')).toEqual([{ type: 'response.audio.done', turnId: 'turn-1', itemId: 'item-1', kind: 'speech', durationMs: 250 }]);
    expect(report.spoken.map((x) => x.durationMs)).toEqual([250]);
    expect(report.events).toContainEqual(expect.objectContaining({ type: 'tts_error', source: 'tts:x', detail: 'stream reset' }));
  });

  it('the synthesizer unreachable during an LLM answer: the cached safe response plays instead, once, and no more requests are made', async () => {
    const { synth, calls } = fakeSynth({ fail: () => new TtsError('tts.connection', 'ECONNREFUSED') });
    const cache = memoryCache({ "Let's keep things friendly!": 700 });
    const { p, events } = player({ synthesizer: synth, cache, timing: { parallel: 1 } });
    p.say({ kind: 'speech', text: 'First sentence.', source: 'llm' });
    p.say({ kind: 'speech', text: 'Second sentence.', source: 'llm' });
    const report = await p.finish();
    const done = events.filter((e) => e.type === 'response.audio.done');
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ kind: 'speech', durationMs: 700 });
    expect(calls).toEqual(['First sentence.']);
    expect(report.events.filter((e) => e.type === 'tts_error').map((e) => (e as { source: string }).source)).toEqual(['llm', 'llm']);
  });

  it('a synthesizer that hangs (and ignores its signal) times out: tts.timeout, no more requests this turn, the turn goes on', async () => {
    const texts: string[] = [];
    const hung: Synthesizer = {
      provider: 'fake',
      supports: () => true,
      synthesize(request: SynthesisRequest) {
        texts.push(request.text);
        return { [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<Uint8Array>>(() => undefined) }) };
      },
    };
    const { p, events } = player({ synthesizer: hung, timing: { stallMs: 60, parallel: 1 } });
    p.say({ kind: 'speech', text: 'First.', source: 'tts:a' });
    p.say({ kind: 'speech', text: 'Second.', source: 'tts:b' });
    const report = await p.finish();
    expect(texts).toEqual(['First.']);
    expect(events.some((e) => e.type === 'response.audio.delta')).toBe(false);
    expect(report.events.filter((e) => e.type === 'tts_error').map((e) => (e as { code: string }).code)).toEqual(['tts.timeout', 'tts.connection']);
  });

  it('a cancel stops the audio at once; what was sent is reported for the cut', async () => {
    const { synth } = fakeSynth({ delayMs: 50 });
    const cache = memoryCache({ 'Cached first.': 300 });
    const { p, events, controller } = player({ synthesizer: synth, cache });
    p.say({ kind: 'speech', text: 'Cached first.', source: 'cache:first' });
    p.say({ kind: 'speech', text: 'Then a slow sentence.', source: 'llm' });
    await sleep(10);
    controller.abort({ playedMs: 100 });
    const report = await p.finish();
    expect(events.filter((e) => e.type === 'response.audio.delta').every((e) => e.itemId === 'item-1')).toBe(true);
    expect(report.spoken.map((s) => [s.text, s.durationMs])).toEqual([['Cached first.', 300]]);
  });
});
