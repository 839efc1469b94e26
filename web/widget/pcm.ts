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
  /**
   * Input not yet turned into output (plus, when upsampling, the last sample before it), its first
   * `held` samples: fewer than from/to when downsampling (more would make an output), at most one
   * when upsampling.
   */
  const pending = new Float32Array(Math.ceil(fromRate / toRate) + 1);
  let held = 0;

  // Runs 50 times a second while the microphone is on, so it allocates only its output: the input
  // is read where it lies (sample r after `consumed` is pending[r] or chunk[r - held]), the output
  // count is known before it is made, and only the few samples left over are carried.
  return {
    push(chunk) {
      const end = consumed + held + chunk.length; // absolute index after the last input sample
      let out: Int16Array;
      let keepFrom: number;
      if (fromRate >= toRate) {
        // Output k covers input [floor(k·from/to), floor((k+1)·from/to)): it can be made when
        // floor((k+1)·from/to) <= end, that is when (k+1)·from < (end+1)·to.
        out = new Int16Array(Math.max(0, Math.floor((end * toRate + toRate - 1) / fromRate) - made));
        for (let j = 0; j < out.length; j++, made++) {
          const a = Math.floor((made * fromRate) / toRate) - consumed;
          const b = Math.floor(((made + 1) * fromRate) / toRate) - consumed;
          let sum = 0;
          for (let r = a; r < b; r++) sum += r < held ? pending[r]! : chunk[r - held]!;
          out[j] = toInt16(sum / (b - a));
        }
        keepFrom = Math.floor((made * fromRate) / toRate);
      } else {
        // Output k sits at input position k·from/to, between samples i and i+1: it can be made when
        // i + 1 < end, that is when k·from < (end-1)·to.
        out = new Int16Array(Math.max(0, Math.ceil(((end - 1) * toRate) / fromRate) - made));
        for (let j = 0; j < out.length; j++, made++) {
          const position = (made * fromRate) / toRate;
          const i = Math.floor(position);
          const r = i - consumed;
          const x0 = r < held ? pending[r]! : chunk[r - held]!;
          const x1 = r + 1 < held ? pending[r + 1]! : chunk[r + 1 - held]!;
          out[j] = toInt16(x0 + (x1 - x0) * (position - i));
        }
        keepFrom = Math.min(Math.floor((made * fromRate) / toRate), end);
      }
      // Carry [keepFrom, end), front to back: each sample comes from where it goes or after.
      const skip = keepFrom - consumed;
      const keep = end - keepFrom;
      for (let j = 0; j < keep; j++) {
        const r = skip + j;
        pending[j] = r < held ? pending[r]! : chunk[r - held]!;
      }
      held = keep;
      consumed = keepFrom;
      return out;
    },
  };
}

/** Standard base64 (with padding), in slices so a large chunk never overflows the argument list. */
export function base64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x2000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x2000));
  return btoa(binary);
}

