import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { analyserSize, listen } from '../../web/widget/microphone';
import { DEFAULT_VAD_OPTIONS, EnergyVad, type VadEvent, type VadOptions } from '../../web/widget/vad';
import { concatSamples, mulberry32 } from '../support/pcm';

/*
 * The barge-in detector against synthetic signals: every signal is made here, sample by sample, at
 * a known level, then cut into frames the way the browser adapter feeds them.
 */

const { minSpeechMs, hangoverMs, onsetGapMs } = DEFAULT_VAD_OPTIONS;

// --- signals ---------------------------------------------------------------------------------

const amplitude = (dbfs: number) => 10 ** (dbfs / 20);
const count = (ms: number, rate: number) => Math.round((ms * rate) / 1000);
const silence = (ms: number, rate: number) => new Float32Array(count(ms, rate));

/** White noise of RMS `dbfs`; `dbfsAt(t)` makes its level change over time (t in ms from its start). */
function noise(ms: number, rate: number, dbfs: number | ((t: number) => number), seed = 1): Float32Array {
  const next = mulberry32(seed); // seeded, so every run hears the same noise
  const out = new Float32Array(count(ms, rate));
  for (let i = 0; i < out.length; i++) {
    const level = typeof dbfs === 'number' ? dbfs : dbfs((i * 1000) / rate);
    out[i] = (next() * 2 - 1) * Math.sqrt(3) * amplitude(level); // uniform on ±a has RMS a/√3
  }
  return out;
}

/** A sine of RMS `dbfs` with raised-cosine edges of `edgeMs`. */
function tone(ms: number, rate: number, hz: number, dbfs: number, edgeMs = 5): Float32Array {
  const out = new Float32Array(count(ms, rate));
  const edge = count(edgeMs, rate);
  for (let i = 0; i < out.length; i++) {
    const fromEdge = Math.min(i, out.length - 1 - i);
    const gain = fromEdge < edge ? 0.5 - 0.5 * Math.cos((Math.PI * fromEdge) / edge) : 1;
    out[i] = gain * Math.SQRT2 * amplitude(dbfs) * Math.sin((2 * Math.PI * hz * i) / rate);
  }
  return out;
}

/**
 * Something like a voice: harmonics of a gliding 120-150 Hz fundamental up to 3 kHz, in syllables
 * (`[onMs, offMs]` pairs) with 10 ms attacks and releases; `dbfs` is the RMS inside a syllable.
 */
function speech(rate: number, dbfs: number, syllables: [number, number][]): Float32Array {
  const total = syllables.reduce((n, [on, off]) => n + on + off, 0);
  const out = new Float32Array(count(total, rate));
  let phase = 0;
  for (let i = 0; i < out.length; i++) {
    const t = i / rate;
    phase += (2 * Math.PI * (135 + 15 * Math.sin(2 * Math.PI * 2.5 * t))) / rate;
    let s = 0;
    for (let k = 1; k * 150 <= 3000; k++) s += Math.sin(k * phase) / Math.sqrt(k);
    out[i] = s;
  }
  let sum = 0;
  for (const s of out) sum += s * s;
  const scale = amplitude(dbfs) / Math.sqrt(sum / out.length);
  let at = 0;
  const edge = count(10, rate);
  for (const [on, off] of syllables) {
    const n = count(on, rate);
    for (let j = 0; j < n; j++) {
      const fromEdge = Math.min(j, n - 1 - j);
      out[at + j]! *= scale * (fromEdge < edge ? 0.5 - 0.5 * Math.cos((Math.PI * fromEdge) / edge) : 1);
    }
    out.fill(0, at + n, at + n + count(off, rate));
    at += n + count(off, rate);
  }
  return out;
}

/** A click, a key press: a burst of noise peaking at `peak` and decaying over `ms`. */
function click(ms: number, rate: number, peak = 0.9, seed = 7): Float32Array {
  const next = mulberry32(seed); // seeded, so every run hears the same noise
  const out = new Float32Array(count(ms, rate));
  for (let i = 0; i < out.length; i++) out[i] = (next() * 2 - 1) * peak * Math.exp(-i / (out.length / 4));
  return out;
}

/** `part` added into `base` (in place) starting at `atMs`. */
function overlay(base: Float32Array, part: Float32Array, atMs: number, rate: number): Float32Array {
  const at = count(atMs, rate);
  for (let i = 0; i < part.length && at + i < base.length; i++) base[at + i]! += part[i]!;
  return base;
}

// --- running -----------------------------------------------------------------------------------

interface Framing {
  name: string;
  rate: number;
  size: number;
}
const FRAMINGS: Framing[] = [
  { name: '10 ms frames at 16 kHz', rate: 16000, size: 160 },
  { name: '10 ms frames at 48 kHz', rate: 48000, size: 480 },
  { name: '1024-sample frames at 48 kHz (21.3 ms)', rate: 48000, size: 1024 },
];
const frameMsOf = (f: Framing) => (f.size * 1000) / f.rate;

interface Heard {
  event: VadEvent;
  atMs: number;
}

/** Feeds `signal` frame by frame (each stamped with its end time); the events, with the time of their frame. */
function run(vad: EnergyVad, signal: Float32Array, { rate, size }: Framing, offsetMs = 0): Heard[] {
  const heard: Heard[] = [];
  for (let at = 0; at + size <= signal.length; at += size) {
    const atMs = offsetMs + ((at + size) * 1000) / rate;
    const event = vad.push(signal.subarray(at, at + size), rate, atMs);
    if (event) heard.push({ event, atMs });
  }
  return heard;
}

/** A time in ms on the frame grid (so an onset there starts a frame). */
const onGrid = (ms: number, f: Framing) => (Math.round((ms * f.rate) / 1000 / f.size) * f.size * 1000) / f.rate;

const SYLLABLES: [number, number][] = [
  [220, 90],
  [180, 120],
  [250, 70],
  [200, 0],
];
const SYLLABLES_MS = SYLLABLES.reduce((n, [on, off]) => n + on + off, 0);

// --- the detector ------------------------------------------------------------------------------

describe.each(FRAMINGS)('EnergyVad, $name', (f) => {
  const frameMs = frameMsOf(f);

  it('hears nothing in digital silence', () => {
    const vad = new EnergyVad();
    expect(run(vad, silence(3000, f.rate), f)).toEqual([]);
    expect(vad.speaking).toBe(false);
    expect(vad.noiseFloorDb).toBeUndefined();
  });

  it('hears nothing in seconds of steady white noise at -40 dBFS (or at -25), and its floor settles at the noise', () => {
    for (const level of [-40, -25]) {
      const vad = new EnergyVad();
      expect(run(vad, noise(6000, f.rate, level), f)).toEqual([]);
      expect(vad.noiseFloorDb).toBeGreaterThan(level - 2);
      expect(vad.noiseFloorDb).toBeLessThan(level + 1);
    }
  });

  it('speech at -20 dBFS after noise at -40: start within minSpeechMs + one frame of the onset, end after the hangover', () => {
    const onsetMs = onGrid(2000, f);
    const signal = concatSamples([noise(onsetMs, f.rate, -40), overlay(noise(SYLLABLES_MS + 2000, f.rate, -40, 2), speech(f.rate, -20, SYLLABLES), 0, f.rate)]);
    const vad = new EnergyVad();
    const heard = run(vad, signal, f);
    expect(heard.map((h) => h.event)).toEqual(['start', 'end']);
    const [start, end] = heard as [Heard, Heard];
    expect(start.atMs - onsetMs).toBeGreaterThanOrEqual(minSpeechMs - 1e-6);
    expect(start.atMs - onsetMs).toBeLessThanOrEqual(minSpeechMs + frameMs + 1e-6);
    // The pauses between syllables (70-120 ms) are bridged; the utterance ends once, after the last one.
    const lastSpeechMs = onsetMs + SYLLABLES_MS;
    expect(end.atMs).toBeGreaterThanOrEqual(lastSpeechMs + hangoverMs - frameMs);
    expect(end.atMs).toBeLessThanOrEqual(lastSpeechMs + hangoverMs + 2 * frameMs);
    expect(vad.speaking).toBe(false);
  });

  it('an onset anywhere inside a frame starts within minSpeechMs + two frames', () => {
    for (let shiftMs = 0; shiftMs < frameMs; shiftMs += frameMs / 5) {
      const onsetMs = 1500 + shiftMs;
      const signal = overlay(noise(3000, f.rate, -45), speech(f.rate, -20, SYLLABLES), onsetMs, f.rate);
      const [start] = run(new EnergyVad(), signal, f);
      expect(start?.event).toBe('start');
      expect(start!.atMs - onsetMs).toBeGreaterThan(minSpeechMs - frameMs);
      expect(start!.atMs - onsetMs).toBeLessThanOrEqual(minSpeechMs + 2 * frameMs);
    }
  });

  it('a single 15 ms click, wherever it falls across the frames, never starts', () => {
    for (let shiftMs = 0; shiftMs < frameMs; shiftMs += frameMs / 6) {
      const signal = overlay(noise(2500, f.rate, -50), click(15, f.rate), 1000 + shiftMs, f.rate);
      expect(run(new EnergyVad(), signal, f)).toEqual([]);
    }
  });

  it('fast typing (a 15 ms click every 120 ms for 3 s) never starts', () => {
    const signal = noise(4500, f.rate, -50);
    for (let at = 1000; at < 4000; at += 120) overlay(signal, click(15, f.rate, 0.5, at), at, f.rate);
    expect(run(new EnergyVad(), signal, f)).toEqual([]);
  });

  it('a 60 ms burst is too short to start; a 150 ms one starts', () => {
    const short = overlay(noise(2000, f.rate, -50), tone(60, f.rate, 1000, -20), onGrid(1000, f), f.rate);
    expect(run(new EnergyVad(), short, f)).toEqual([]);
    const long = overlay(noise(2000, f.rate, -50), tone(150, f.rate, 1000, -20), onGrid(1000, f), f.rate);
    expect(run(new EnergyVad(), long, f).map((h) => h.event)).toEqual(['start', 'end']);
  });

  it('one frame of dip inside an onset keeps the progress (the dip does not count); a gap longer than onsetGapMs loses it', () => {
    const need = Math.ceil(minSpeechMs / frameMs);
    const piece = Math.ceil(need * 0.6) * frameMs; // each piece alone is too short, two are enough
    expect(piece).toBeLessThan(minSpeechMs);
    const onsetMs = onGrid(1000, f);
    const withGap = (gapMs: number) => {
      const signal = noise(3000, f.rate, -50);
      overlay(signal, tone(piece, f.rate, 1000, -20, 0), onsetMs, f.rate);
      overlay(signal, tone(piece, f.rate, 1000, -20, 0), onsetMs + piece + gapMs, f.rate);
      return run(new EnergyVad(), signal, f);
    };
    const [start] = withGap(frameMs);
    expect(start?.event).toBe('start');
    expect(start!.atMs - onsetMs).toBeCloseTo(need * frameMs + frameMs, 6); // the dip frame added nothing
    expect(withGap((Math.floor(onsetGapMs / frameMs) + 1) * frameMs)).toEqual([]);
  });

  it('follows a fan spinning up from -55 to -30 dBFS over 1.5 s without starting; speech over the fan still starts', () => {
    const ramp = (t: number) => (t < 2000 ? -55 : t < 3500 ? -55 + (25 * (t - 2000)) / 1500 : -30);
    const vad = new EnergyVad();
    expect(run(vad, noise(7000, f.rate, ramp), f)).toEqual([]);
    expect(vad.noiseFloorDb).toBeGreaterThan(-32);
    expect(vad.noiseFloorDb).toBeLessThan(-29);
    const talk = overlay(noise(3000, f.rate, -30, 3), speech(f.rate, -12, SYLLABLES), 500, f.rate);
    expect(run(vad, talk, f, 7000).map((h) => h.event)).toEqual(['start', 'end']);
  });

  it('a steady noise switched on abruptly is taken for speech at first (energy cannot tell); the floor catches up and it ends within 4 s, then stays quiet', () => {
    const stepMs = onGrid(2000, f);
    const signal = concatSamples([noise(stepMs, f.rate, -55), noise(10_000, f.rate, -30, 5)]);
    const vad = new EnergyVad();
    const heard = run(vad, signal, f);
    expect(heard.map((h) => h.event)).toEqual(['start', 'end']);
    expect(heard[1]!.atMs - stepMs).toBeLessThan(4000);
    expect(vad.noiseFloorDb).toBeGreaterThan(-32);
  });

  it('hum and rumble below the high-pass do not start, even loud; the same bursts at 1 kHz do', () => {
    const hum = overlay(noise(4000, f.rate, -50), tone(3000, f.rate, 50, -25, 20), 1000, f.rate);
    expect(run(new EnergyVad(), hum, f)).toEqual([]);
    const thumps = (hz: number) => {
      const signal = noise(4000, f.rate, -50);
      for (const at of [1000, 2000, 3000]) overlay(signal, tone(300, f.rate, hz, -20, 20), at, f.rate);
      return run(new EnergyVad(), signal, f).map((h) => h.event);
    };
    expect(thumps(40)).toEqual([]);
    expect(thumps(1000)).toEqual(['start', 'end', 'start', 'end', 'start', 'end']);
  });

  it('a DC offset is not heard', () => {
    const signal = noise(3000, f.rate, -50).map((s) => s + 0.25);
    const vad = new EnergyVad();
    expect(run(vad, signal, f)).toEqual([]);
    expect(vad.noiseFloorDb).toBeLessThan(-45);
  });

  it('a device that starts with digital silence, then the room at -45 dBFS: the room is not speech', () => {
    expect(run(new EnergyVad(), concatSamples([silence(500, f.rate), noise(3000, f.rate, -45)]), f)).toEqual([]);
  });

  it('a short mute (2 s of digital silence) lowers the floor only a little, so the room coming back is not speech', () => {
    const vad = new EnergyVad();
    run(vad, noise(2000, f.rate, -45), f);
    const floor = vad.noiseFloorDb!;
    expect(run(vad, silence(2000, f.rate), f, 2000)).toEqual([]);
    expect(vad.noiseFloorDb).toBeLessThan(floor);
    expect(vad.noiseFloorDb).toBeGreaterThan(floor - DEFAULT_VAD_OPTIONS.marginDb);
    expect(run(vad, noise(2000, f.rate, -45, 9), f, 4000)).toEqual([]);
  });

  it('a device that gates the pauses to digital silence: the floor sinks between utterances, so the next one is heard', () => {
    const secondMs = onGrid(SYLLABLES_MS + 5000, f);
    const signal = concatSamples([speech(f.rate, -20, SYLLABLES), silence(secondMs - SYLLABLES_MS, f.rate), speech(f.rate, -20, SYLLABLES), silence(1000, f.rate)]);
    const heard = run(new EnergyVad(), signal, f).filter((h) => h.atMs > secondMs);
    expect(heard.map((h) => h.event)).toEqual(['start', 'end']);
    expect(heard[0]!.atMs - secondMs).toBeLessThanOrEqual(minSpeechMs + frameMs + 1e-6);
  });

  it('someone already talking when listening starts is heard once the first pause shows the floor', () => {
    const signal = overlay(noise(3000, f.rate, -50), speech(f.rate, -20, SYLLABLES), 0, f.rate);
    const [start] = run(new EnergyVad(), signal, f);
    expect(start?.event).toBe('start');
    expect(start!.atMs).toBeLessThan(SYLLABLES[0]![0] + SYLLABLES[0]![1] + SYLLABLES[1]![0]); // during the second syllable
  });

  it('speech below minLevelDb is not speech, however quiet the room', () => {
    const signal = overlay(noise(3000, f.rate, -80), speech(f.rate, -60, SYLLABLES), 1000, f.rate);
    expect(run(new EnergyVad(), signal, f)).toEqual([]);
    expect(run(new EnergyVad({ minLevelDb: -70 }), signal, f).map((h) => h.event)).toEqual(['start', 'end']);
  });
});

describe('EnergyVad', () => {
  const f = FRAMINGS[0]!;

  it('loud frames polled far apart do not add up to speech: the time between them was not heard', () => {
    const frame = tone(10, f.rate, 1000, -20, 0);
    const vad = new EnergyVad();
    run(vad, noise(1000, f.rate, -50), f);
    for (let i = 1; i <= 30; i++) expect(vad.push(frame, f.rate, 1000 + i * 200)).toBeNull();
  });

  it('overlapping frames (a 21.3 ms analyser buffer read every 20 ms) count 20 ms each', () => {
    const rate = 48000;
    const signal = overlay(noise(3000, rate, -50), tone(1000, rate, 1000, -20), 1000, rate);
    const vad = new EnergyVad();
    const heard: Heard[] = [];
    for (let atMs = 30; atMs <= 3000; atMs += 20) {
      const end = count(atMs, rate);
      const event = vad.push(signal.subarray(end - 1024, end), rate, atMs);
      if (event) heard.push({ event, atMs });
    }
    expect(heard.map((h) => h.event)).toEqual(['start', 'end']);
    expect(heard[0]!.atMs - 1000).toBeGreaterThanOrEqual(minSpeechMs);
    expect(heard[0]!.atMs - 1000).toBeLessThanOrEqual(minSpeechMs + 40);
    expect(heard[1]!.atMs - 2000).toBeGreaterThanOrEqual(hangoverMs - 20);
    expect(heard[1]!.atMs - 2000).toBeLessThanOrEqual(hangoverMs + 40);
  });

  it('honours its options', () => {
    const signal = overlay(noise(3000, f.rate, -50), tone(500, f.rate, 1000, -20), 1000, f.rate);
    const [start, end] = run(new EnergyVad({ minSpeechMs: 200, hangoverMs: 100 }), signal, f);
    expect(start!.atMs).toBeCloseTo(1200, 6);
    expect(end!.atMs).toBeGreaterThanOrEqual(1600);
    expect(end!.atMs).toBeLessThanOrEqual(1620);
    // A margin of 40 dB: a tone 30 dB over the room is not speech.
    expect(run(new EnergyVad({ marginDb: 40 }), signal, f)).toEqual([]);
  });

  it('undefined options take the defaults; invalid ones are refused', () => {
    const vad = new EnergyVad({ minSpeechMs: undefined } as Partial<VadOptions>);
    const signal = overlay(noise(2000, f.rate, -50), tone(300, f.rate, 1000, -20), onGrid(1000, f), f.rate);
    expect(run(vad, signal, f)[0]?.atMs).toBeCloseTo(1000 + minSpeechMs, 6);
    expect(() => new EnergyVad({ hangoverMs: -1 })).toThrow(RangeError);
    expect(() => new EnergyVad({ marginDb: Number.NaN })).toThrow(RangeError);
    expect(() => new EnergyVad({ highPassHz: 9000 }).push(new Float32Array(160), 16000, 10)).toThrow(RangeError);
  });

  it('reset() forgets the utterance and the floor', () => {
    const vad = new EnergyVad();
    const signal = overlay(noise(2000, f.rate, -50), tone(500, f.rate, 1000, -20), 1000, f.rate);
    run(vad, signal.subarray(0, count(1300, f.rate)), f);
    expect(vad.speaking).toBe(true);
    vad.reset();
    expect(vad.speaking).toBe(false);
    expect(vad.noiseFloorDb).toBeUndefined();
    // Fresh: the tone that goes on is the first thing heard, the floor, not speech.
    expect(run(vad, signal.subarray(count(1300, f.rate)), f)).toEqual([]);
  });

  it('a NaN frame is ignored and does not poison what follows', () => {
    const vad = new EnergyVad();
    run(vad, noise(1000, f.rate, -50), f);
    expect(vad.push(new Float32Array(160).fill(Number.NaN), f.rate, 1010)).toBeNull();
    const signal = overlay(noise(1000, f.rate, -50, 4), tone(300, f.rate, 1000, -20), 200, f.rate);
    expect(run(vad, signal, f, 1010).map((h) => h.event)).toEqual(['start', 'end']);
  });
});

// --- the browser adapter -------------------------------------------------------------------------

describe('listen()', () => {
  const RATE = 48000;
  /** The microphone: room noise at -50 dBFS, a voice-like tone at -20 dBFS from 1.0 s to 2.0 s. */
  const MIC = overlay(noise(6000, RATE, -50), tone(1000, RATE, 700, -20), 1000, RATE);

  /** Just what listen() uses of an AudioContext, on the fake clock, in 128-sample render quanta. */
  function fakeAudio() {
    const startedAt = Date.now();
    let frozenAt: number | undefined;
    const context = {
      sampleRate: RATE,
      get currentTime() {
        const ms = (frozenAt ?? Date.now()) - startedAt;
        return (Math.floor((ms * RATE) / 1000 / 128) * 128) / RATE;
      },
      suspend() {
        frozenAt = Date.now();
      },
      createMediaStreamSource: vi.fn(() => source),
      createAnalyser: vi.fn(() => analyser),
    };
    const source = { connect: vi.fn(), disconnect: vi.fn() };
    const analyser = {
      fftSize: 32,
      connect: vi.fn(),
      disconnect: vi.fn(),
      getFloatTimeDomainData: vi.fn((into: Float32Array) => {
        const end = Math.round(context.currentTime * RATE);
        for (let i = 0; i < into.length; i++) into[i] = MIC[end - into.length + i] ?? 0;
      }),
    };
    const tracks = [{ stop: vi.fn() }, { stop: vi.fn() }];
    const stream = { getTracks: () => tracks };
    const getUserMedia = vi.fn(async (_: MediaStreamConstraints) => stream as unknown as MediaStream);
    return { context, audioContext: context as unknown as AudioContext, source, analyser, tracks, getUserMedia };
  }

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('asks for processed audio, never connects it to the speakers, calls back on speech, and stop() releases everything', async () => {
    const audio = fakeAudio();
    const t0 = Date.now();
    const starts: number[] = [];
    const ends: number[] = [];
    const mic = await listen({
      context: audio.audioContext,
      getUserMedia: audio.getUserMedia,
      onSpeechStart: () => starts.push(Date.now() - t0),
      onSpeechEnd: () => ends.push(Date.now() - t0),
    });
    expect(audio.getUserMedia).toHaveBeenCalledWith({ audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    expect(audio.source.connect).toHaveBeenCalledExactlyOnceWith(audio.analyser);
    expect(audio.analyser.connect).not.toHaveBeenCalled();
    expect(audio.analyser.fftSize).toBe(2048);

    vi.advanceTimersByTime(1500);
    expect(starts).toHaveLength(1);
    expect(starts[0]).toBeGreaterThanOrEqual(1000 + minSpeechMs);
    expect(starts[0]).toBeLessThanOrEqual(1000 + minSpeechMs + 40);
    expect(mic.speaking).toBe(true);

    vi.advanceTimersByTime(1500);
    expect(ends).toHaveLength(1);
    expect(ends[0]).toBeGreaterThanOrEqual(2000 + hangoverMs - 20);
    expect(ends[0]).toBeLessThanOrEqual(2000 + hangoverMs + 40);
    expect(mic.speaking).toBe(false);

    const polls = audio.analyser.getFloatTimeDomainData.mock.calls.length;
    expect(polls).toBeGreaterThan(140); // ~every 20 ms for 3 s
    mic.stop();
    mic.stop();
    for (const track of audio.tracks) expect(track.stop).toHaveBeenCalledOnce();
    expect(audio.source.disconnect).toHaveBeenCalledOnce();
    expect(audio.analyser.disconnect).toHaveBeenCalledOnce();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(audio.analyser.getFloatTimeDomainData.mock.calls.length).toBe(polls);
  });

  it('stop() during speech: speaking is false and no callback comes after it', async () => {
    const audio = fakeAudio();
    const onSpeechEnd = vi.fn();
    const mic = await listen({ context: audio.audioContext, getUserMedia: audio.getUserMedia, onSpeechStart: () => {}, onSpeechEnd });
    vi.advanceTimersByTime(1500);
    expect(mic.speaking).toBe(true);
    mic.stop();
    expect(mic.speaking).toBe(false);
    vi.advanceTimersByTime(2000);
    expect(onSpeechEnd).not.toHaveBeenCalled();
  });

  it('feeds nothing while the context is suspended (its clock stands still)', async () => {
    const audio = fakeAudio();
    audio.context.suspend();
    const onSpeechStart = vi.fn();
    const mic = await listen({ context: audio.audioContext, getUserMedia: audio.getUserMedia, onSpeechStart });
    vi.advanceTimersByTime(3000);
    expect(audio.analyser.getFloatTimeDomainData).not.toHaveBeenCalled();
    expect(onSpeechStart).not.toHaveBeenCalled();
    mic.stop();
  });

  it("getUserMedia's error reaches the caller, and nothing is left running", async () => {
    const audio = fakeAudio();
    const denied = new DOMException('Permission denied', 'NotAllowedError');
    audio.getUserMedia.mockRejectedValueOnce(denied);
    await expect(listen({ context: audio.audioContext, getUserMedia: audio.getUserMedia, onSpeechStart: () => {} })).rejects.toBe(denied);
    expect(audio.context.createMediaStreamSource).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a graph that cannot be built stops the tracks it got', async () => {
    const audio = fakeAudio();
    audio.context.createMediaStreamSource.mockImplementationOnce(() => {
      throw new DOMException('closed', 'InvalidStateError');
    });
    await expect(listen({ context: audio.audioContext, getUserMedia: audio.getUserMedia, onSpeechStart: () => {} })).rejects.toThrow('closed');
    for (const track of audio.tracks) expect(track.stop).toHaveBeenCalledOnce();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('sizes the analyser to two polls, a power of two', () => {
    expect(analyserSize(48000)).toBe(2048);
    expect(analyserSize(44100)).toBe(2048);
    expect(analyserSize(16000)).toBe(1024);
    expect(analyserSize(8000)).toBe(512);
  });
});
