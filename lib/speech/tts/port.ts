import type { AudioFormat } from '../format';

/** Which voice speaks: the adapter's own voice name plus what it needs to pick it. */
export interface Voice {
  /** `polly` or `espeak`: part of every cache key, so audio of one never passes for the other. */
  provider: string;
  /** Provider voice id: a Polly VoiceId (`Joanna`) or an eSpeak voice (`en-us`). */
  id: string;
  /** Polly engine (`neural`, `standard`, `generative`); ignored by eSpeak. */
  engine?: string;
  /** BCP-47-ish language of the text (`en`, `ru`, `tr`). */
  language: string;
}

export interface SynthesisRequest {
  text: string;
  voice: Voice;
  format: AudioFormat;
  /** Aborts the synthesis: the iterator ends without more chunks (a barge-in or a cancel). */
  signal?: AbortSignal;
}

/** When a word starts in the audio: Polly word speech marks, or the local synthesizer's word events. */
export interface WordMark {
  /** Milliseconds from the start of the item's audio. */
  timeMs: number;
  /** UTF-16 offsets of the word in the request text, end exclusive. */
  start: number;
  end: number;
}

/**
 * Port: text in, audio out, streamed as it is made. Hosts pass Polly (AWS) or the local
 * synthesizer (npm start, tests); the runner never knows which.
 */
export interface Synthesizer {
  readonly provider: string;
  /** Whether this synthesizer can produce `format` (Polly: pcm at 8/16 kHz, mp3 at any rate; eSpeak: pcm only). */
  supports(format: AudioFormat): boolean;
  /**
   * Audio chunks of `format`, in order, as they arrive. Throws TtsError: `tts.connection` when the
   * service cannot be reached at all, `tts.failed` for anything else.
   */
  synthesize(request: SynthesisRequest): AsyncIterable<Uint8Array>;
  /** Word timings for `text` as this voice says it (no audio); absent when the provider has none. */
  wordMarks?(request: Omit<SynthesisRequest, 'format'>): Promise<WordMark[]>;
  /** Releases workers or sockets (the local synthesizer's worker thread). */
  close?(): Promise<void>;
}

export type TtsErrorCode = 'tts.connection' | 'tts.failed' | 'tts.timeout';

/** A synthesis failure, typed so the player can tell "the service is unreachable" from "this request failed". */
export class TtsError extends Error {
  override readonly name = 'TtsError';
  constructor(
    readonly code: TtsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
