/*
 * Where the microphone's PCM goes between utterances and during one. Pure.
 *
 * The detector fires 90 ms or more into the speech (it must hear that much to tell a voice from a
 * click), so the words' beginning is already past when an utterance starts: the pre-roll keeps the
 * last few hundred milliseconds, and an utterance begins with them.
 */

import { concatBytes } from '../../lib/speech/pcm';

/** The newest `maxBytes` of a stream of byte chunks (whole 16-bit samples). */
export class PreRoll {
  private chunks: Uint8Array[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.chunks.length > 1 && this.bytes - this.chunks[0]!.length >= this.maxBytes) this.bytes -= this.chunks.shift()!.length;
  }

  /** The kept audio, at most `maxBytes` (cut at a sample boundary), oldest first; empties the pre-roll. */
  take(): Uint8Array {
    const all = concatBytes(this.chunks);
    this.chunks = [];
    this.bytes = 0;
    return all.subarray(Math.max(0, all.length - this.maxBytes) & ~1);
  }
}

/**
 * One utterance's audio as it is captured, handed out as an async iterable (what the Transcribe
 * SDK reads its audio stream from): chunks queue while nobody reads (the stream is still opening)
 * and the iteration ends after `end()`. Iterated once.
 */
export class AudioQueue implements AsyncIterable<Uint8Array> {
  private readonly queued: Uint8Array[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  private resolveEnd: () => void = () => {};
  /** Resolves at `end()`. */
  readonly whenEnded = new Promise<void>((resolve) => (this.resolveEnd = resolve));
  /** Bytes pushed so far. */
  bytes = 0;

  push(chunk: Uint8Array): void {
    if (this.ended || chunk.length === 0) return;
    this.queued.push(chunk);
    this.bytes += chunk.length;
    this.wake?.();
  }

  /** No more audio: the reader gets what is queued, then the end. */
  end(): void {
    this.ended = true;
    this.wake?.();
    this.resolveEnd();
  }

  get done(): boolean {
    return this.ended;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const next = this.queued.shift();
      if (next) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/**
 * A live utterance's audio: it goes on after the detector hears a pause, until the transcriber has
 * the final transcript and ends it (see transcribe-live.ts), because Amazon Transcribe's answers
 * after the end of the audio never arrive: the SDK closes the socket as soon as the audio ends.
 */
export class LiveAudio extends AudioQueue {
  private isSpeaking = true;
  private listener: (() => void) | undefined;

  /** The detector's view: inside speech, or in a pause. */
  get speaking(): boolean {
    return this.isSpeaking;
  }

  setSpeaking(speaking: boolean): void {
    if (speaking === this.isSpeaking) return;
    this.isSpeaking = speaking;
    this.listener?.();
  }

  /** Tells the one reader that acts on pauses (the transcriber) when `speaking` changes. */
  onSpeakingChange(listener: () => void): void {
    this.listener = listener;
  }
}
