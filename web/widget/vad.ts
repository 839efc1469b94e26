/*
 * Voice activity detection for barge-in: has the user started talking over the bot? An energy
 * detector with an adaptive noise floor, pure and dependency-free (the browser adapter is
 * `microphone.ts`). Silero (@ricky0123/vad-web) would be more accurate but needs onnxruntime-web:
 * megabytes of wasm and model for a decision that energy makes well enough near a microphone with
 * the browser's echo cancellation and noise suppression in front of it.
 *
 * Per frame: high-pass, level in dBFS, compare with the noise floor, update the floor, then a small
 * state machine:
 *
 *   quiet ──speech frames adding up to minSpeechMs──▶ speaking ──hangoverMs without speech──▶ quiet
 *     ▲  (a run of non-speech longer than onsetGapMs        (emits 'start' on entry,
 *     └── throws the progress away)                            'end' on exit)
 *
 * What it cannot do: tell a steady noise that starts abruptly (a fan switched on) from a voice in
 * the first 90 ms. A step of more than the margin is reported as speech; the floor catches up and
 * the detector ends it 3-5 s later (25-35 dB steps) and stays quiet (tests/unit/vad.test.ts).
 */

export type VadEvent = 'start' | 'end';

export interface VadOptions {
  /** A frame is speech when its level is at least this many dB above the noise floor. */
  marginDb: number;
  /** ...and at least this loud, dBFS: in a very quiet room, rustle and a distant TV clear the margin. */
  minLevelDb: number;
  /** Speech heard before 'start' (ms); dips do not count toward it. */
  minSpeechMs: number;
  /** The longest run of non-speech (ms) that an onset survives; a longer one starts the count again. */
  onsetGapMs: number;
  /** Non-speech (ms) after which an utterance ends ('end'). */
  hangoverMs: number;
  /** Cutoff of the second-order high-pass applied before measuring (Hz); 0 turns it off. */
  highPassHz: number;
  /** Time constant (ms) of the floor following quieter frames down. */
  floorFallMs: number;
  /** Time constant (ms) of the floor following louder frames up while nobody seems to talk. */
  floorRiseMs: number;
  /** Time constant (ms) of the floor following louder frames up while someone may be talking. */
  floorRiseSpeechMs: number;
}

/**
 * Levels are 20·log10(RMS) with full scale 1.0, so a full-scale sine is -3 dBFS and white noise of
 * RMS 0.01 is -40 dBFS.
 */
export const DEFAULT_VAD_OPTIONS: Readonly<VadOptions> = Object.freeze({
  // Steady noise measured over 10-20 ms frames wanders by a dB or two (babble by more); a voice
  // near the microphone sits 20-40 dB above a room, so 12 dB (4x the amplitude) leaves room on
  // both sides.
  marginDb: 12,
  // With automatic gain control a quiet room sits around -60..-70 dBFS and speech into the
  // microphone around -35..-15 dBFS.
  minLevelDb: -55,
  // Shorter than the vowel of "stop" or "wait", so a barge-in is heard while the word is still
  // being said; three times longer than a click, a key press or a knock (10-30 ms).
  minSpeechMs: 90,
  // One dip of a 20 ms frame (or up to four of 10 ms) inside an onset is forgiven; the gap between
  // the clicks of fast typing (~60 ms and more) is not.
  onsetGapMs: 40,
  // Pauses between words and short phrases are mostly shorter, so one utterance is one start/end pair.
  hangoverMs: 400,
  // Mains hum (50/60 Hz), rumble and desk thumps lie below; what makes a voice loud lies above
  // (harmonics from ~200 Hz, formants; the telephone band starts at 300 Hz and loses no voice).
  // Second order takes hum down by 16-19 dB and 40 Hz thumps by 23 dB.
  highPassHz: 150,
  // Fast: the pauses between words show the floor under a voice within a syllable or two.
  floorFallMs: 100,
  // Frames within the margin are noise by definition, so following them quickly is safe; it
  // keeps up with a fan spinning up over a second or two, or gain control raising a quiet room.
  floorRiseMs: 500,
  // Slow, so a voice does not lift the floor onto itself (after 1 s of unbroken speech the floor
  // has closed a fifth of the gap), yet a steady noise that started abruptly does not stay
  // "speech" for more than a few seconds.
  floorRiseSpeechMs: 4000,
});

/** Below this a frame holds no signal at all (a muted track, a device still starting): 16-bit silence is -90 dBFS. */
const NO_SIGNAL_DB = -90;
/** Time constant (ms) of the floor sinking while there is no signal (see push). */
const NO_SIGNAL_SINK_MS = 10_000;
/** Frames whose times differ from their lengths by less than this are taken as back to back. */
const CONTIGUOUS_MS = 0.5;

/**
 * `from` moved toward `to` as a first-order lag with time constant `tauMs` over `ms`: time
 * constants rather than per-frame factors, so 10 ms and 21 ms frames adapt alike.
 */
function approach(from: number, to: number, ms: number, tauMs: number): number {
  if (ms <= 0) return from;
  return from + (to - from) * (1 - Math.exp(-ms / tauMs));
}

function resolveOptions(partial: Partial<VadOptions>): VadOptions {
  const out: VadOptions = { ...DEFAULT_VAD_OPTIONS };
  for (const key of Object.keys(DEFAULT_VAD_OPTIONS) as (keyof VadOptions)[]) {
    const value = partial[key] ?? DEFAULT_VAD_OPTIONS[key];
    if (!Number.isFinite(value)) throw new RangeError(`VAD option ${key} must be a finite number, got ${value}`);
    if (key !== 'minLevelDb' && value < 0) throw new RangeError(`VAD option ${key} must not be negative, got ${value}`);
    out[key] = value;
  }
  return out;
}

/**
 * Second-order Butterworth high-pass (RBJ cookbook biquad) whose state runs across frames, so
 * back-to-back frames are filtered as one signal. Only the energy of the output is needed.
 */
class HighPass {
  private b0 = 1;
  private b1 = 0;
  private b2 = 0;
  private a1 = 0;
  private a2 = 0;
  private x1 = 0;
  private x2 = 0;
  private y1 = 0;
  private y2 = 0;
  private sampleRate = 0;
  private primed = false;

  constructor(private readonly cutoffHz: number) {}

  /** The next frame does not follow the last one: start over. */
  restart(): void {
    this.primed = false;
  }

  /** Mean square of the filtered frame. */
  meanSquare(frame: Float32Array, sampleRate: number): number {
    if (sampleRate !== this.sampleRate) this.design(sampleRate);
    if (this.cutoffHz === 0) {
      let sum = 0;
      for (let i = 0; i < frame.length; i++) sum += frame[i]! * frame[i]!;
      return sum / frame.length;
    }
    if (!this.primed) {
      // As if the signal had stayed at its first sample forever: a DC offset then gives no step
      // response, which would otherwise read as a burst of energy at every restart.
      this.x1 = this.x2 = frame[0]!;
      this.y1 = this.y2 = 0;
      this.primed = true;
    }
    const { b0, b1, b2, a1, a2 } = this;
    let { x1, x2, y1, y2 } = this;
    let sum = 0;
    for (let i = 0; i < frame.length; i++) {
      const x = frame[i]!;
      const y = b0 * x + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
      x2 = x1;
      x1 = x;
      y2 = y1;
      y1 = y;
      sum += y * y;
    }
    this.x1 = x1;
    this.x2 = x2;
    this.y1 = y1;
    this.y2 = y2;
    return sum / frame.length;
  }

  private design(sampleRate: number): void {
    if (this.cutoffHz >= sampleRate / 2) {
      throw new RangeError(`VAD high-pass at ${this.cutoffHz} Hz is above the Nyquist frequency of ${sampleRate} Hz`);
    }
    this.sampleRate = sampleRate;
    this.primed = false;
    const w0 = (2 * Math.PI * this.cutoffHz) / sampleRate;
    const cos = Math.cos(w0);
    const alpha = Math.sin(w0) / Math.SQRT2; // Q = 1/√2
    const a0 = 1 + alpha;
    this.b0 = (1 + cos) / 2 / a0;
    this.b1 = -(1 + cos) / a0;
    this.b2 = this.b0;
    this.a1 = (-2 * cos) / a0;
    this.a2 = (1 - alpha) / a0;
  }
}

export class EnergyVad {
  private readonly options: VadOptions;
  private readonly filter: HighPass;
  private floor: number | undefined;
  private lastAtMs: number | undefined;
  private isSpeaking = false;
  /** While quiet: speech heard toward a start. */
  private onsetMs = 0;
  /** Non-speech since the last speech frame (the onset gap while quiet, the hangover while speaking). */
  private gapMs = 0;

  constructor(options: Partial<VadOptions> = {}) {
    this.options = resolveOptions(options);
    this.filter = new HighPass(this.options.highPassHz);
  }

  /** Inside an utterance: from 'start' to 'end'. */
  get speaking(): boolean {
    return this.isSpeaking;
  }

  /** The noise floor in dBFS; undefined until a frame with any signal was heard. */
  get noiseFloorDb(): number | undefined {
    return this.floor;
  }

  /**
   * Feeds one frame of mono samples (-1..1) ending at `atMs` (any monotonic clock, in ms); returns
   * 'start' or 'end' on the frame where an utterance starts or ends.
   *
   * Frames may overlap or leave gaps (a timer that polls an analyser is late now and then): time is
   * taken from `atMs`, and a frame never counts for more speech than its own length, so a late poll
   * cannot turn one loud frame into an utterance.
   */
  push(frame: Float32Array, sampleRate: number, atMs: number): VadEvent | null {
    if (!(sampleRate > 0)) throw new RangeError(`invalid sample rate ${sampleRate}`);
    if (frame.length === 0) return null;
    const frameMs = (frame.length * 1000) / sampleRate;
    const sinceLast = this.lastAtMs === undefined ? Number.NaN : Math.max(0, atMs - this.lastAtMs);
    this.lastAtMs = atMs;
    // Back-to-back frames count exactly their length, so sums of them do not drift with clock rounding.
    const contiguous = Math.abs(sinceLast - frameMs) < CONTIGUOUS_MS;
    if (!contiguous) this.filter.restart();
    const elapsedMs = contiguous || Number.isNaN(sinceLast) ? frameMs : sinceLast;
    const heardMs = Math.min(elapsedMs, frameMs);

    const meanSquare = this.filter.meanSquare(frame, sampleRate);
    if (!Number.isFinite(meanSquare)) {
      this.filter.restart(); // a NaN in the filter state would stay there
      return null;
    }
    const level = 10 * Math.log10(meanSquare);
    const { marginDb, minLevelDb } = this.options;
    const signal = level > NO_SIGNAL_DB;
    // No signal is not quiet: it says nothing about the room. It never sets the floor, so the room
    // that a starting device lets through is not taken for speech, and it lowers the floor only
    // slowly, so neither is the room coming back after a short mute; yet a device that gates the
    // pauses to zeros (some headsets do) still lets the floor down between utterances.
    if (signal) this.floor ??= level;
    const speech = signal && level >= this.floor! + marginDb && level >= minLevelDb;
    if (signal) this.follow(level, speech, heardMs);
    else if (this.floor !== undefined) this.floor = approach(this.floor, NO_SIGNAL_DB, heardMs, NO_SIGNAL_SINK_MS);
    return speech ? this.onSpeech(elapsedMs - heardMs, heardMs) : this.onQuiet(elapsedMs);
  }

  /** Forgets everything, the noise floor included. */
  reset(): void {
    this.filter.restart();
    this.floor = undefined;
    this.lastAtMs = undefined;
    this.isSpeaking = false;
    this.onsetMs = 0;
    this.gapMs = 0;
  }

  private follow(level: number, speech: boolean, heardMs: number): void {
    const floor = this.floor!;
    const { floorFallMs, floorRiseMs, floorRiseSpeechMs } = this.options;
    const tau = level < floor ? floorFallMs : speech || this.isSpeaking ? floorRiseSpeechMs : floorRiseMs;
    this.floor = approach(floor, level, heardMs, tau);
  }

  private onSpeech(unheardMs: number, heardMs: number): VadEvent | null {
    if (this.isSpeaking) {
      this.gapMs = 0;
      return null;
    }
    // Time between frames that nobody listened to may have been anything: it counts as a gap.
    if (this.gapMs + unheardMs > this.options.onsetGapMs) this.onsetMs = 0;
    this.gapMs = 0;
    this.onsetMs += heardMs;
    if (this.onsetMs < this.options.minSpeechMs) return null;
    this.isSpeaking = true;
    this.onsetMs = 0;
    return 'start';
  }

  private onQuiet(elapsedMs: number): VadEvent | null {
    this.gapMs += elapsedMs;
    if (this.isSpeaking) {
      if (this.gapMs < this.options.hangoverMs) return null;
      this.isSpeaking = false;
      this.gapMs = 0;
      return 'end';
    }
    if (this.gapMs > this.options.onsetGapMs) this.onsetMs = 0;
    return null;
  }
}
