import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ClientMessage, LIMITS, SpeechTimings, type ServerEventOf } from '../../lib/protocol/v1';
import { pcmDurationMs, pcmToBytes, rms } from '../../lib/speech/pcm';
import { Connection } from '../../web/widget/connection';
import { stablePrefix, LiveTranscript } from '../../web/widget/live-transcript';
import { sessionStore } from '../../web/widget/session-store';
import { base64, pcmConverter } from '../../web/widget/pcm';
import { PRE_ROLL_MS, SpeechInput, type SpeechInputEvents } from '../../web/widget/speech-input';
import type { LiveTranscriberOptions, LiveUtterance } from '../../web/widget/transcribe-live';
import { AudioQueue, PreRoll } from '../../web/widget/utterance-audio';
import { CHUNK_BYTES, MAX_TIMING_MS, MAX_UTTERANCE_BYTES, uploadMessages } from '../../web/widget/utterance-upload';
import { concatSamples } from '../support/pcm';

/*
 * The pure parts of the widget's voice input: resampling to 16-bit PCM, the upload's chunks, the
 * pre-roll and the audio queue, the live transcript's stable text, and how SpeechInput routes one
 * utterance in each mode.
 */

const sine = (hz: number, rate: number, ms: number, amplitude = 0.5) =>
  Float32Array.from({ length: Math.round((rate * ms) / 1000) }, (_, i) => amplitude * Math.sin((2 * Math.PI * hz * i) / rate));
const decode = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));

describe('resampling the microphone to 16-bit PCM', () => {
  it('48 kHz to 16 kHz: a third of the samples, a voice-band tone kept at its level', () => {
    const out = pcmConverter(48000, 16000).push(sine(440, 48000, 1000));
    expect(out.length).toBe(16000);
    // RMS of a 0.5 sine is 0.354 of full scale; the box average loses a little at 440 Hz.
    expect(rms(out) / 32767).toBeCloseTo(0.354, 2);
  });

  it('a tone above the new Nyquist is damped, not folded into the voice band at full level', () => {
    // 12 kHz at 48 kHz: plain decimation by 3 would make a full-level 4 kHz alias; the 3-sample
    // average passes a third of it (-9.5 dB), and nothing at all of 16 kHz (its first null).
    const out = pcmConverter(48000, 16000).push(sine(12000, 48000, 500));
    expect(rms(out) / 32767).toBeCloseTo(0.354 / 3, 2);
    expect(rms(pcmConverter(48000, 16000).push(sine(16000, 48000, 500)))).toBeLessThan(2);
  });

  it('chunks of any size give exactly the samples of one piece (no seams), 44.1 kHz included', () => {
    for (const rate of [48000, 44100, 8000]) {
      const signal = sine(300, rate, 700);
      const whole = pcmConverter(rate, 16000).push(signal);
      const converter = pcmConverter(rate, 16000);
      const parts: Int16Array[] = [];
      for (let at = 0, size = 1; at < signal.length; at += size, size = (size * 7 + 3) % 1500 || 1) parts.push(converter.push(signal.subarray(at, at + size)));
      expect(concatSamples(parts)).toEqual(whole);
      // Each chunk's samples are its own: the pre-roll and the live queue keep views of them.
      expect(parts[0]!.buffer).not.toBe(parts[1]!.buffer);
      // The last sample or two wait for the next chunk.
      expect(Math.abs(whole.length - Math.round((signal.length * 16000) / rate))).toBeLessThanOrEqual(2);
    }
  });

  it('clips at full scale and maps ±1 onto the 16-bit range', () => {
    const out = pcmConverter(16000, 16000).push(Float32Array.from([0, 1, -1, 2, -2, 0.5]));
    expect(Array.from(out)).toEqual([0, 32767, -32768, 32767, -32768, 16384]);
  });

  it('refuses rates that are not positive integers', () => {
    expect(() => pcmConverter(0, 16000)).toThrow(RangeError);
    expect(() => pcmConverter(48000, 15999.5)).toThrow(RangeError);
  });

  it('bytes are little-endian whatever the host, base64 is standard, durations in ms', () => {
    // What the widget sends is lib/speech/pcm.ts's pcmToBytes of the converter's samples.
    expect(Array.from(pcmToBytes(Int16Array.from([1, -2, 0x1234])))).toEqual([0x01, 0x00, 0xfe, 0xff, 0x34, 0x12]);
    const bytes = Uint8Array.from({ length: 50_000 }, (_, i) => (i * 31) % 256);
    expect(base64(bytes)).toBe(Buffer.from(bytes).toString('base64'));
    // Durations are lib/speech/pcm.ts's pcmDurationMs, rounded by clampMs where they are sent.
    expect(Math.round(pcmDurationMs(32000, 16000))).toBe(1000);
    expect(Math.round(pcmDurationMs(3201, 16000))).toBe(100);
  });
});

describe('an utterance as input.audio chunks and a commit', () => {
  const turnId = '0b7c4f2a-6d3e-4a1b-9c8d-7e6f5a4b3c2d';
  const sessionId = '6f1c7a34-5b8e-4f7e-9a52-0c1d2e3f4a5b';
  const pcm = (bytes: number) => Uint8Array.from({ length: bytes }, (_, i) => (i * 7 + (i >> 8)) % 256);

  it('chunks within the protocol limit, numbered in order, that join back into the utterance; the commit counts them', () => {
    const audio = pcm(3 * CHUNK_BYTES + 1000);
    const messages = uploadMessages({ turnId, sessionId, pcm: audio, sinceFirstAudioMs: 1234.4 });
    // Every message is one the server accepts, and fits in a client message.
    for (const m of messages) {
      expect(ClientMessage.safeParse(m).success).toBe(true);
      expect(new TextEncoder().encode(JSON.stringify(m)).length).toBeLessThanOrEqual(LIMITS.clientMessageBytes);
    }
    const chunks = messages.filter((m) => m.type === 'input.audio');
    expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2, 3]);
    expect(chunks.every((c) => c.turnId === turnId && c.audio.length <= LIMITS.audioChunkChars)).toBe(true);
    expect(chunks[0]!.audio.length).toBe(LIMITS.audioChunkChars);
    expect(Buffer.concat(chunks.map((c) => decode(c.audio)))).toEqual(Buffer.from(audio));
    expect(messages.at(-1)).toEqual({ type: 'input.audio.commit', turnId, sessionId, chunks: 4, speech: { sinceFirstAudioMs: 1234, sinceFinalMs: 0 } });
  });

  it('cuts an utterance longer than the protocol allows, at a whole sample', () => {
    expect(MAX_UTTERANCE_BYTES).toBeLessThanOrEqual(LIMITS.utteranceBytes);
    const messages = uploadMessages({ turnId, sessionId: undefined, pcm: pcm(LIMITS.utteranceBytes + 50_001), sinceFirstAudioMs: 40_000 });
    const chunks = messages.filter((m) => m.type === 'input.audio');
    const total = chunks.reduce((n, c) => n + decode(c.audio).length, 0);
    expect(total).toBe(MAX_UTTERANCE_BYTES);
    expect(total % 2).toBe(0);
    expect(chunks.length).toBeLessThanOrEqual(LIMITS.audioChunks);
    const commit = messages.at(-1)!;
    expect(commit).toMatchObject({ type: 'input.audio.commit', chunks: chunks.length });
    expect(commit).not.toHaveProperty('sessionId');
    expect(ClientMessage.safeParse(commit).success).toBe(true);
  });

  it('an odd trailing byte is not a sample; nothing at all sends nothing; timings are clamped to what the protocol takes', () => {
    const [chunk] = uploadMessages({ turnId, sessionId, pcm: pcm(7), sinceFirstAudioMs: 0 });
    expect(decode((chunk as { audio: string }).audio)).toHaveLength(6);
    expect(uploadMessages({ turnId, sessionId, pcm: pcm(1), sinceFirstAudioMs: 0 })).toEqual([]);
    expect(uploadMessages({ turnId, sessionId, pcm: pcm(4), sinceFirstAudioMs: -5 }).at(-1)).toMatchObject({ speech: { sinceFirstAudioMs: 0 } });
    expect(uploadMessages({ turnId, sessionId, pcm: pcm(4), sinceFirstAudioMs: 9e9 }).at(-1)).toMatchObject({ speech: { sinceFirstAudioMs: 600_000 } });
    // The widget's bound is the protocol's.
    expect(SpeechTimings.safeParse({ sinceFirstAudioMs: MAX_TIMING_MS }).success).toBe(true);
    expect(SpeechTimings.safeParse({ sinceFirstAudioMs: MAX_TIMING_MS + 1 }).success).toBe(false);
  });
});

describe('pre-roll and the audio queue', () => {
  it('the pre-roll keeps the newest bytes only, cut at a sample, and empties when taken', () => {
    const roll = new PreRoll(10);
    for (let i = 1; i <= 5; i++) roll.push(new Uint8Array(4).fill(i));
    expect(Array.from(roll.take())).toEqual([3, 3, 4, 4, 4, 4, 5, 5, 5, 5]);
    expect(roll.take()).toHaveLength(0);
  });

  it('the queue hands out what was pushed before and after the reader came, then ends', async () => {
    const queue = new AudioQueue();
    queue.push(Uint8Array.of(1));
    const read = (async () => {
      const got: number[] = [];
      for await (const chunk of queue) got.push(...chunk);
      return got;
    })();
    queue.push(Uint8Array.of(2, 3));
    await new Promise((r) => setTimeout(r, 5));
    queue.push(Uint8Array.of(4));
    queue.end();
    queue.push(Uint8Array.of(5)); // after the end: dropped
    await expect(read).resolves.toEqual([1, 2, 3, 4]);
    expect(queue.bytes).toBe(4);
  });
});

describe("the live transcript's stable text", () => {
  it('is the stable items leading the partial, with punctuation attached', () => {
    expect(stablePrefix([{ Content: 'Hello', Stable: true }, { Content: ',', Type: 'punctuation', Stable: true }, { Content: 'one', Stable: true }, { Content: 'lat', Stable: false }, { Content: 'x', Stable: true }])).toBe('Hello, one');
    expect(stablePrefix([{ Content: 'Hi', Stable: false }])).toBe('');
  });

  it('keeps final segments and replaces a partial by its successor', () => {
    const t = new LiveTranscript();
    t.apply({ ResultId: 'a', IsPartial: true, Alternatives: [{ Transcript: 'one', Items: [{ Content: 'one', Stable: true }] }] });
    t.apply({ ResultId: 'a', IsPartial: false, Alternatives: [{ Transcript: 'One.' }] });
    t.apply({ ResultId: 'b', IsPartial: true, Alternatives: [{ Transcript: 'two thr', Items: [{ Content: 'two', Stable: true }, { Content: 'thr', Stable: false }] }] });
    expect({ shown: t.shown, stable: t.stable, final: t.final }).toEqual({ shown: 'One. two thr', stable: 'One. two', final: 'One.' });
  });
});

describe('SpeechInput: one utterance from the microphone to the server', () => {
  const RATE = 48000;
  let sent: ClientMessage[];
  let seen: Array<[keyof SpeechInputEvents, unknown[]]>;
  /** modeChanged's reports, apart from what the user is told. */
  let modes: Array<SpeechInput['kind']>;
  let clock: number;
  const events: SpeechInputEvents = {
    heard: (...args) => seen.push(['heard', args]),
    submitted: (...args) => seen.push(['submitted', args]),
    notice: (...args) => seen.push(['notice', args]),
    modeChanged: (kind) => modes.push(kind),
  };
  const make = (extra: Partial<ConstructorParameters<typeof SpeechInput>[0]> = {}) =>
    new SpeechInput({ send: (m) => (sent.push(ClientMessage.parse(m)), true), sessionId: () => 'f7b3c1d2-4e5f-4a6b-8c7d-9e0f1a2b3c4d', events, now: () => clock, ...extra });
  /** 20 ms frames at 48 kHz: silence (0) or a tone at `level`. */
  const feed = (input: SpeechInput, ms: number, level: number) => {
    for (let t = 0; t < ms; t += 20) {
      input.samples(level ? sine(300, RATE, 20, level) : new Float32Array(960), RATE);
      clock += 20;
    }
  };

  beforeEach(() => {
    sent = [];
    seen = [];
    modes = [];
    clock = 10_000;
    vi.useFakeTimers();
  });
  afterEach(() => vi.useRealTimers());

  it('upload: the utterance with its pre-roll goes as 16 kHz PCM chunks and a commit with the time since it began', () => {
    const input = make();
    input.configure({ mode: 'upload', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    expect(input.kind).toBe('upload');
    feed(input, 1000, 0); // a second of silence: only the last PRE_ROLL_MS are kept
    input.speechStart();
    feed(input, 1500, 0.3);
    input.speechEnd();
    const chunks = sent.filter((m) => m.type === 'input.audio');
    const pcm = Buffer.concat(chunks.map((c) => decode(c.audio)));
    // 300 ms of pre-roll and 1.5 s of speech at 16 kHz (a sample or so of resampler lag aside).
    expect(Math.abs(pcm.length / 32 - (PRE_ROLL_MS + 1500))).toBeLessThan(1);
    const samples = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2);
    expect(rms(samples.subarray(0, 16 * PRE_ROLL_MS - 16))).toBe(0);
    expect(rms(samples.subarray(16 * PRE_ROLL_MS + 16)) / 32767).toBeCloseTo(0.3 / Math.SQRT2, 2);
    const commit = sent.at(-1)!;
    expect(commit).toMatchObject({ type: 'input.audio.commit', turnId: chunks[0]!.turnId, chunks: chunks.length });
    // The words began when the detector fired minus the 90 ms it needed to hear them.
    expect((commit as { speech: { sinceFirstAudioMs: number } }).speech.sinceFirstAudioMs).toBe(1500 + 90);
    expect(seen).toEqual([['heard', ['']], ['heard', [null]], ['submitted', [chunks[0]!.turnId, undefined]]]);

    // The next utterance is a new turn.
    sent = [];
    input.speechStart();
    feed(input, 200, 0.3);
    input.speechEnd();
    expect((sent.at(-1) as { turnId: string }).turnId).not.toBe(chunks[0]!.turnId);
  });

  it('upload: an utterance longer than one message may carry is sent when full, and the rest of it is not', () => {
    const input = make();
    input.configure({ mode: 'upload', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    input.speechStart();
    feed(input, 40_000, 0.3);
    const commits = sent.filter((m) => m.type === 'input.audio.commit');
    expect(commits).toHaveLength(1);
    const bytes = sent.filter((m) => m.type === 'input.audio').reduce((n, c) => n + decode(c.audio).length, 0);
    expect(bytes).toBe(MAX_UTTERANCE_BYTES);
    input.speechEnd();
    expect(sent.filter((m) => m.type === 'input.audio.commit')).toHaveLength(1);
  });

  it('without a recognizer (null, or stt.unavailable) nothing is recorded or sent: the microphone is for barge-in only', () => {
    const input = make();
    input.configure(null);
    expect(input.kind).toBeNull();
    input.speechStart();
    feed(input, 500, 0.3);
    input.speechEnd();
    input.configure({ mode: 'upload', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    input.unavailable();
    input.speechStart();
    feed(input, 500, 0.3);
    input.speechEnd();
    expect(sent).toEqual([]);
    expect(seen).toEqual([]);
  });

  it('transcribe: loads the live transcriber, streams the utterance (pre-roll first) to it, and renews the grant before it expires', async () => {
    const utterances: LiveUtterance[] = [];
    let liveOptions: LiveTranscriberOptions | undefined;
    const loadTranscribe = vi.fn(async () => ({
      liveTranscriber: (options: LiveTranscriberOptions) => {
        liveOptions = options;
        return { transcribe: async (u: LiveUtterance) => void utterances.push(u) };
      },
    }));
    const input = make({ loadTranscribe });
    input.configure({ mode: 'transcribe', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    await vi.waitFor(() => expect(liveOptions).toBeDefined());
    const grant: ServerEventOf<'speech.access'> = {
      type: 'speech.access', region: 'us-east-1', languageCode: 'en-US', encoding: 'pcm', sampleRate: 16000, url: 'wss://x', urlExpiresAt: Date.now() + 300_000,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b', sessionToken: 'c' }, expiresAt: Date.now() + 900_000,
    };
    expect(liveOptions!.access()).toBeUndefined();
    input.access(grant);
    expect(liveOptions!.access()).toBe(grant);

    feed(input, 500, 0);
    input.speechStart();
    feed(input, 400, 0.3);
    input.speechEnd();
    await vi.waitFor(() => expect(utterances).toHaveLength(1));
    // The pause is the transcriber's to act on: the audio goes on until it ends it.
    const audio = utterances[0]!.audio;
    expect(audio.speaking).toBe(false);
    expect(audio.done).toBe(false);
    feed(input, 100, 0);
    audio.end();
    feed(input, 100, 0); // after the end: the pre-roll's again
    const bytes: number[] = [];
    for await (const chunk of audio) bytes.push(chunk.length);
    expect(Math.abs(bytes.reduce((a, b) => a + b, 0) / 32 - (PRE_ROLL_MS + 400 + 100))).toBeLessThan(1);
    expect(utterances[0]!.startedAt).toBe(10_500 - 90);
    expect(sent).toEqual([]); // the transcriber sends, not SpeechInput

    // The final transcript becomes the user's bubble.
    liveOptions!.onFinal('turn-1', 'Hello.');
    expect(seen).toContainEqual(['submitted', ['turn-1', 'Hello.']]);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    liveOptions!.onError('turn-2', new Error('x'));
    expect(seen).toContainEqual(['notice', ['stt.failed']]);
    expect(warn).toHaveBeenCalledTimes(1);
    warn.mockRestore();

    // 15 minutes of credentials: speech.renew two minutes before they expire, not sooner.
    vi.advanceTimersByTime(900_000 - 120_000 - 1000);
    expect(sent).toEqual([]);
    vi.advanceTimersByTime(2000);
    expect(sent).toEqual([{ type: 'speech.renew' }]);
    expect(loadTranscribe).toHaveBeenCalledTimes(1);
  });

  it('transcribe: a bundle that cannot load says so and leaves the microphone to barge-in', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const input = make({ loadTranscribe: () => Promise.reject(new Error('404')) });
    input.configure({ mode: 'transcribe', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    await vi.waitFor(() => expect(seen).toEqual([['notice', ['stt.unavailable']]]));
    expect(input.kind).toBeNull();
    warn.mockRestore();
  });

  it('transcribe: an utterance before the bundle has loaded streams once it has, and is dropped after 5 s without it', async () => {
    const utterances: LiveUtterance[] = [];
    let loaded: (() => void) | undefined;
    const module = { liveTranscriber: () => ({ transcribe: async (u: LiveUtterance) => void utterances.push(u) }) };
    const input = make({ loadTranscribe: () => new Promise((resolve) => (loaded = () => resolve(module))) });
    input.configure({ mode: 'transcribe', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    input.speechStart();
    feed(input, 200, 0.3);
    await vi.advanceTimersByTimeAsync(1000);
    expect(utterances).toHaveLength(0);
    loaded!();
    await vi.waitFor(() => expect(utterances).toHaveLength(1)); // at once, not at a poll
    expect(vi.getTimerCount()).toBe(0); // nor a timer left behind

    // A bundle that never comes: the utterance waits 5 s, then it is dropped.
    const stuck = make({ loadTranscribe: () => new Promise(() => {}) });
    stuck.configure({ mode: 'transcribe', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    seen = [];
    stuck.speechStart();
    feed(stuck, 200, 0.3);
    await vi.advanceTimersByTimeAsync(4990);
    expect(seen).toEqual([['heard', ['']]]);
    await vi.advanceTimersByTimeAsync(20);
    expect(seen).toEqual([['heard', ['']], ['heard', [null]]]);
  });

  it('transcribe: a bundle that cannot load reports the mode off before it says so (the microphone is redrawn from the report)', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    let kindAtNotice: SpeechInput['kind'] | 'never' = 'never';
    const input: SpeechInput = make({
      loadTranscribe: () => Promise.reject(new Error('404')),
      events: { ...events, notice: (code) => ((kindAtNotice = input.kind), events.notice(code)) },
    });
    input.configure({ mode: 'transcribe', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    expect(modes).toEqual(['transcribe']);
    await vi.waitFor(() => expect(seen).toEqual([['notice', ['stt.unavailable']]]));
    expect(modes).toEqual(['transcribe', null]);
    expect(kindAtNotice).toBeNull();
    // Every other way the mode changes is reported too.
    input.configure({ mode: 'upload', language: 'en-US', encoding: 'pcm', sampleRate: 16000 });
    input.unavailable();
    input.configure(undefined);
    expect(modes).toEqual(['transcribe', null, 'upload', null, null]);
    warn.mockRestore();
  });
});

describe('session.start asks for voice input with the voice', () => {
  /** Just enough of a WebSocket to see what the widget sends. */
  class Socket {
    static last: Socket;
    readyState = 0;
    sent: Record<string, unknown>[] = [];
    onopen: (() => void) | null = null;
    onmessage: ((m: { data: string }) => void) | null = null;
    onclose: (() => void) | null = null;
    constructor() {
      Socket.last = this;
    }
    send(data: string) {
      this.sent.push(JSON.parse(data) as Record<string, unknown>);
    }
    close() {}
  }
  const storage = (): Storage => {
    const data = new Map<string, string>();
    return { getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v), removeItem: (k) => void data.delete(k), clear: () => data.clear(), key: () => null, length: 0 };
  };

  it.each([
    [true, { audio: { format: 'pcm', sampleRate: 16000 }, speechInput: { encoding: 'pcm', sampleRate: 16000 } }],
    [false, {}],
  ])('voice %s', (voice, expected) => {
    const connection = new Connection({
      endpoint: 'ws://bot',
      auth: undefined,
      store: sessionStore('ws://bot', storage()),
      audio: () => (voice ? { format: 'pcm', sampleRate: 16000 } : null),
      speechInput: () => (voice ? { encoding: 'pcm', sampleRate: 16000 } : null),
      onEvent: () => {},
      onState: () => {},
      WebSocket: Socket as unknown as typeof WebSocket,
    });
    connection.open();
    Socket.last.readyState = 1;
    Socket.last.onopen?.();
    Socket.last.onmessage?.({ data: JSON.stringify({ type: 'hello.ack', version: '1' }) });
    const start = Socket.last.sent.at(-1)!;
    expect(start).toEqual({ type: 'session.start', ...expected });
    expect(ClientMessage.safeParse(start).success).toBe(true);
  });
});
