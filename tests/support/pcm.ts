import { pcmToBytes } from '../../lib/speech/pcm';

/*
 * Signals for the speech tests and benchmarks: joined sample arrays, tones as 16-bit PCM bytes, a
 * seeded random generator.
 */

/** The parts one after the other, in an array of their own kind (Int16Array for none). */
export function concatSamples<T extends Int16Array | Float32Array>(parts: readonly T[]): T {
  const Kind = (parts[0]?.constructor ?? Int16Array) as new (length: number) => T;
  const out = new Kind(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `ms` of a sine tone as 16-bit little-endian mono PCM bytes (by default a quiet 220 Hz one). */
export function toneBytes(ms: number, sampleRate: number, { hz = 220, amplitude = 3000 }: { hz?: number; amplitude?: number } = {}): Uint8Array {
  const samples = new Int16Array(Math.round((ms * sampleRate) / 1000));
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / sampleRate));
  return pcmToBytes(samples);
}

/** A small seeded generator (mulberry32) of numbers in [0, 1), so every run draws the same. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
