/**
 * Port to a speech recognizer for finished utterances: audio in, text out. The adapter on the
 * `openai` SDK (lib/speech/stt/openai-transcriber.ts) implements it for any OpenAI-compatible
 * `audio/transcriptions` endpoint (OpenAI's, or a self-hosted one); the runner only sees this shape.
 *
 * Recovery (seed 000) is the caller's: an empty transcript means "listen again, no LLM call"; an
 * SttError is reported, the conversation goes on, and the next utterance is tried afresh.
 */

/** How the utterance's bytes are encoded. */
export type TranscriptionFormat =
  /** 16-bit signed little-endian mono PCM at `sampleRate` Hz (the adapter wraps it in a WAV header). */
  | { encoding: 'pcm'; sampleRate: number }
  /** Opus in an Ogg container (what MediaRecorder or opusenc produce). */
  | { encoding: 'ogg-opus' };

export interface TranscriptionRequest {
  /** The whole utterance. */
  audio: Uint8Array;
  format: TranscriptionFormat;
  /** What the user speaks: BCP-47 (`en-US`) or ISO-639-1 (`en`); adapters send what their service takes. */
  language: string;
  /** Aborts the request (a newer input, a cancel): transcribe rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Epoch ms by which an answer is needed; retries stop before it. Default: the adapter's own budget. */
  deadline?: number;
}

export interface Transcript {
  /** What was said, trimmed; '' when nothing was recognized (not an error: the caller listens again). */
  text: string;
  /** Duration of the audio in seconds: what the recognizer meters (the cost ledger's STT seconds). */
  seconds: number;
}

/** Failures the runner reports to the client before it listens again. */
export type SttErrorKind = 'stt.failed' | 'stt.timeout';

export class SttError extends Error {
  override readonly name = 'SttError';
  constructor(
    readonly kind: SttErrorKind,
    message: string,
    readonly details: { status?: number; attempts?: number; cause?: unknown } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }
}

/** Port: one finished utterance in, its transcript out. */
export interface Transcriber {
  /** `openai` for the OpenAI-compatible adapter: tracing and cost name the provider with it. */
  readonly provider: string;
  /**
   * Transcribes one utterance. Retries transient failures (5xx, 429, timeouts, lost connections)
   * while `deadline` allows, then throws SttError: `stt.timeout` when the recognizer did not answer
   * in time, `stt.failed` for anything else (a rejected request fails at once).
   */
  transcribe(request: TranscriptionRequest): Promise<Transcript>;
}
