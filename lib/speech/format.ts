// zod/mini: the browser widget bundles this (through lib/protocol/v1.ts), and mini tree-shakes.
import * as z from 'zod/mini';

/**
 * How a session wants its audio, chosen at `session.start`. `pcm` is 16-bit signed little-endian mono at `sampleRate` (what
 * telephony and Web Audio consume directly); `mp3` trades CPU for a tenth of the bytes.
 */
export const AudioFormat = z.strictObject({
  format: z.enum(['pcm', 'mp3']),
  /** Polly's rates: pcm 8000 or 16000; mp3 8000, 16000, 22050 or 24000. */
  sampleRate: z.union([z.literal(8000), z.literal(16000), z.literal(22050), z.literal(24000)]),
});
export type AudioFormat = z.infer<typeof AudioFormat>;

export const DEFAULT_AUDIO_FORMAT: AudioFormat = { format: 'pcm', sampleRate: 16000 };

/** A short stable name for a format, used in cache keys and file names: `pcm16000`, `mp3-24000`. */
export const formatId = (f: AudioFormat): string => (f.format === 'pcm' ? `pcm${f.sampleRate}` : `mp3-${f.sampleRate}`);
