/*
 * The microphone's samples as the recognizers want them: 16-bit little-endian mono PCM at the
 * session's rate (16 kHz), from the AudioContext's floats at its own rate (usually 48 kHz). Pure.
 */

/** Turns float chunks at one rate into 16-bit chunks at another, as if the stream were one piece. */
export interface PcmConverter {
  push(chunk: Float32Array): Int16Array;
}

const toInt16 = (x: number): number => {
  const clipped = x > 1 ? 1 : x < -1 ? -1 : x;
  return Math.round(clipped < 0 ? clipped * 32768 : clipped * 32767);
};

/**
 * Downsampling averages the input samples each output sample covers (a box filter): a cheap low-pass
 * (48 to 16 kHz: 12 kHz comes through at a third, 16 kHz not at all) that keeps much of what lies
 * above the new Nyquist (8 kHz: sibilants, hiss) from folding back into the voice band at full
 * level, as plain decimation would. The recognizers hear 16 kHz speech, where this is enough; it is
 * not a resampler for music. Upsampling (a context slower than the
 * session, rare) interpolates linearly. Positions are computed from integer sample counts, so long
 * streams do not drift, and n input samples give round(n · to / from) output samples in total.
 */
export function pcmConverter(fromRate: number, toRate: number): PcmConverter {
  if (!(fromRate > 0 && toRate > 0 && Number.isInteger(fromRate) && Number.isInteger(toRate))) {
    throw new RangeError(`invalid sample rates ${fromRate} -> ${toRate}`);
  }
  /** Input samples consumed so far (absolute index of `pending[0]`). */
  let consumed = 0;
  /** Output samples made so far. */
  let made = 0;
  /** Input not yet turned into output (plus, when upsampling, the last sample before it). */
  let pending = new Float32Array(0);

  return {
    push(chunk) {
      const input = new Float32Array(pending.length + chunk.length);
      input.set(pending);
      input.set(chunk, pending.length);
      const end = consumed + input.length; // absolute index after the last input sample
      const out: number[] = [];
      if (fromRate >= toRate) {
        // Output k covers input [floor(k·from/to), floor((k+1)·from/to)).
        for (;;) {
          const a = Math.floor((made * fromRate) / toRate);
          const b = Math.floor(((made + 1) * fromRate) / toRate);
          if (b > end) break;
          let sum = 0;
          for (let i = a; i < b; i++) sum += input[i - consumed]!;
          out.push(toInt16(sum / (b - a)));
          made += 1;
        }
        const keepFrom = Math.floor((made * fromRate) / toRate);
        pending = input.slice(keepFrom - consumed);
        consumed = keepFrom;
      } else {
        // Output k sits at input position k·from/to, between samples i and i+1.
        for (;;) {
          const position = (made * fromRate) / toRate;
          const i = Math.floor(position);
          if (i + 1 >= end) break;
          const x0 = input[i - consumed]!;
          const x1 = input[i + 1 - consumed]!;
          out.push(toInt16(x0 + (x1 - x0) * (position - i)));
          made += 1;
        }
        const keepFrom = Math.min(Math.floor((made * fromRate) / toRate), end);
        pending = input.slice(keepFrom - consumed);
        consumed = keepFrom;
      }
      return Int16Array.from(out);
    },
  };
}

/** Little-endian bytes of the samples, whatever the host's byte order. */
export function int16Bytes(samples: Int16Array): Uint8Array {
  const out = new Uint8Array(samples.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < samples.length; i++) view.setInt16(2 * i, samples[i]!, true);
  return out;
}

/** Standard base64 (with padding), in slices so a large chunk never overflows the argument list. */
export function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x2000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x2000));
  return btoa(binary);
}

/** Milliseconds of `bytes` of 16-bit mono PCM at `sampleRate`. */
export const pcmMs = (bytes: number, sampleRate: number): number => Math.round((Math.floor(bytes / 2) * 1000) / sampleRate);
