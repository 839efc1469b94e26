/**
 * Pure audio helpers: durations of PCM, MP3 and Ogg Opus bytes, resampling of 16-bit PCM, loudness.
 *
 * PCM here is what `AudioFormat` calls pcm: 16-bit signed little-endian mono.
 */

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Milliseconds of `bytes` bytes of 16-bit mono PCM at `sampleRate` (a trailing odd byte is not a sample). */
export function pcmDurationMs(bytes: number, sampleRate: number): number {
  if (!(sampleRate > 0)) throw new RangeError(`invalid sample rate ${sampleRate}`);
  return (Math.floor(bytes / 2) * 1000) / sampleRate;
}

/** Samples of little-endian 16-bit PCM bytes (copied when the bytes are unaligned; a trailing odd byte is ignored). */
export function pcmFromBytes(bytes: Uint8Array): Int16Array {
  const n = bytes.byteLength >> 1;
  if (HOST_LITTLE_ENDIAN && bytes.byteOffset % 2 === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, n);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16 >> 16;
  return out;
}

/** Little-endian bytes of 16-bit samples (a view of the same memory on little-endian hosts). */
export function pcmToBytes(pcm: Int16Array): Uint8Array {
  if (HOST_LITTLE_ENDIAN) return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const out = new Uint8Array(pcm.length * 2);
  for (let i = 0; i < pcm.length; i++) {
    out[2 * i] = pcm[i]! & 0xff;
    out[2 * i + 1] = (pcm[i]! >> 8) & 0xff;
  }
  return out;
}

/** Root mean square of the samples, in sample units (0 for silence, ~23170 for a full-scale sine). */
export function rms(pcm: Int16Array): number {
  if (pcm.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i]! * pcm[i]!;
  return Math.sqrt(sum / pcm.length);
}

/** A streaming resampler: chunks in, chunks out, as if the whole signal had been resampled at once. */
export interface Resampler {
  /** Resamples the next chunk; the output may lag the input by one sample. */
  push(chunk: Int16Array): Int16Array;
  /** The end of the signal: the samples still owed (at most a few). */
  flush(): Int16Array;
}

/**
 * Linear-interpolation resampler that carries its position and the last input sample across chunks,
 * so a signal cut into chunks anywhere resamples to exactly the same samples as in one piece (no
 * clicks at the chunk seams). Output sample k sits at input position k * from / to, computed from
 * integers each time, so long streams do not drift. The whole signal of n samples gives
 * round(n * to / from) samples.
 *
 * No anti-alias filter: downsampling (22,050 Hz to 8,000 Hz) folds energy above the new Nyquist
 * back into the band; acceptable for the local synthesizer's robot voice, not for music.
 */
export function createResampler(fromRate: number, toRate: number): Resampler {
  if (!(Number.isInteger(fromRate) && fromRate > 0 && Number.isInteger(toRate) && toRate > 0)) {
    throw new RangeError(`invalid sample rates ${fromRate} -> ${toRate}`);
  }
  if (fromRate === toRate) {
    return { push: (chunk) => chunk.slice(), flush: () => new Int16Array(0) };
  }
  /** Input samples received so far. */
  let received = 0;
  /** Output samples produced so far. */
  let produced = 0;
  /** The last input sample of the previous chunk (global index received - 1). */
  let last = 0;

  const sample = (chunk: Int16Array, base: number, index: number): number =>
    // `base` is the global index of chunk[0]; index base - 1 is the carried sample.
    index < base ? last : chunk[index - base]!;

  return {
    push(chunk) {
      if (chunk.length === 0) return new Int16Array(0);
      const base = received;
      const end = received + chunk.length; // global index one past the last sample
      // Every output position p with floor(p) + 1 <= end - 1 can be interpolated now.
      // p_k = k * from / to < end - 1  <=>  k * from < (end - 1) * to.
      const limit = (end - 1) * toRate;
      const count = Math.max(0, Math.ceil(limit / fromRate) - produced);
      const out = new Int16Array(count);
      for (let j = 0; j < count; j++) {
        const k = produced + j;
        const num = k * fromRate;
        const i = Math.floor(num / toRate);
        const frac = (num - i * toRate) / toRate;
        const a = sample(chunk, base, i);
        const b = sample(chunk, base, i + 1);
        out[j] = Math.round(a + (b - a) * frac);
      }
      produced += count;
      received = end;
      last = chunk[chunk.length - 1]!;
      return out;
    },
    flush() {
      const total = Math.round((received * toRate) / fromRate);
      const owed = Math.max(0, total - produced);
      produced += owed;
      return new Int16Array(owed).fill(last);
    },
  };
}

/** Resamples a whole signal (linear interpolation; see createResampler). */
export function resamplePcm16(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  const r = createResampler(fromRate, toRate);
  const head = r.push(input);
  const tail = r.flush();
  if (tail.length === 0) return head;
  const out = new Int16Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

// --- MP3 -------------------------------------------------------------------------------------

/** kbit/s by [version is MPEG-1 ? 0 : 1][bitrate index], layer III. */
const MP3_BITRATES: readonly (readonly number[])[] = [
  [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, -1],
  [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, -1],
];
/** Hz by version bits (0 = MPEG-2.5, 2 = MPEG-2, 3 = MPEG-1) and sample-rate index. */
const MP3_SAMPLE_RATES: Record<number, readonly number[]> = {
  3: [44100, 48000, 32000],
  2: [22050, 24000, 16000],
  0: [11025, 12000, 8000],
};

interface Mp3Frame {
  length: number;
  samples: number;
  sampleRate: number;
  /** Where the Xing/Info/VBRI tag would sit in this frame. */
  sideInfoEnd: number;
}

/** The layer III frame whose header starts at `i`, or undefined when there is none. */
function mp3FrameAt(bytes: Uint8Array, i: number): Mp3Frame | undefined {
  if (i + 4 > bytes.length) return undefined;
  const b1 = bytes[i + 1]!;
  const b2 = bytes[i + 2]!;
  const b3 = bytes[i + 3]!;
  if (bytes[i] !== 0xff || (b1 & 0xe0) !== 0xe0) return undefined;
  const version = (b1 >> 3) & 0x03; // 0: 2.5, 1: reserved, 2: 2, 3: 1
  const layer = (b1 >> 1) & 0x03; // 1: layer III
  if (version === 1 || layer !== 1) return undefined;
  const bitrateIndex = (b2 >> 4) & 0x0f;
  const rateIndex = (b2 >> 2) & 0x03;
  if (bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return undefined; // free format is not supported
  const mpeg1 = version === 3;
  const bitrate = MP3_BITRATES[mpeg1 ? 0 : 1]![bitrateIndex]! * 1000;
  const sampleRate = MP3_SAMPLE_RATES[version]![rateIndex]!;
  const padding = (b2 >> 1) & 0x01;
  const length = Math.floor(((mpeg1 ? 144 : 72) * bitrate) / sampleRate) + padding;
  const mono = ((b3 >> 6) & 0x03) === 3;
  const crc = (b1 & 0x01) === 0 ? 2 : 0;
  const sideInfo = mpeg1 ? (mono ? 17 : 32) : mono ? 9 : 17;
  return { length, samples: mpeg1 ? 1152 : 576, sampleRate, sideInfoEnd: i + 4 + crc + sideInfo };
}

const ascii = (bytes: Uint8Array, at: number, text: string): boolean => {
  for (let k = 0; k < text.length; k++) if (bytes[at + k] !== text.charCodeAt(k)) return false;
  return true;
};

/** Bytes taken by an ID3v2 tag at `i` (0 when there is none). */
function id3v2Length(bytes: Uint8Array, i: number): number {
  if (i + 10 > bytes.length || !ascii(bytes, i, 'ID3')) return 0;
  const size = ((bytes[i + 6]! & 0x7f) << 21) | ((bytes[i + 7]! & 0x7f) << 14) | ((bytes[i + 8]! & 0x7f) << 7) | (bytes[i + 9]! & 0x7f);
  const footer = (bytes[i + 5]! & 0x10) !== 0 ? 10 : 0;
  return 10 + size + footer;
}

/**
 * Duration of MPEG-1/2/2.5 layer III audio, by walking its frame headers: the sum of each complete
 * frame's samples over its sample rate. Skips ID3v2 tags, a leading Xing/Info/VBRI tag frame (which
 * decoders do not play) and garbage between frames (a header found after garbage counts only when
 * the next frame's header follows it, so stray 0xFF bytes do not pass for frames); stops at an ID3v1
 * tag. A frame cut off at the end of the bytes is not counted.
 */
export function mp3DurationMs(bytes: Uint8Array): number {
  let i = 0;
  let ms = 0;
  let first = true;
  let synced = false; // the previous frame ended exactly here
  while (i + 4 <= bytes.length) {
    const tag = id3v2Length(bytes, i);
    if (tag > 0) {
      i += tag;
      synced = false;
      continue;
    }
    if (ascii(bytes, i, 'TAG') && bytes.length - i === 128) break;
    const frame = mp3FrameAt(bytes, i);
    if (frame === undefined || i + frame.length > bytes.length) {
      if (frame !== undefined && synced) break; // a truncated last frame
      i++;
      synced = false;
      continue;
    }
    if (!synced && i + frame.length + 4 <= bytes.length && mp3FrameAt(bytes, i + frame.length) === undefined) {
      i++;
      continue;
    }
    const isTag =
      first && (ascii(bytes, frame.sideInfoEnd, 'Xing') || ascii(bytes, frame.sideInfoEnd, 'Info') || ascii(bytes, i + 36, 'VBRI'));
    if (!isTag) ms += (frame.samples * 1000) / frame.sampleRate;
    first = false;
    synced = true;
    i += frame.length;
  }
  return ms;
}

/** The chunks of a stream as one byte array (the one chunk itself when there is only one). */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

// --- Ogg Opus --------------------------------------------------------------------------------

/**
 * Duration of an Ogg Opus stream from its pages' granule positions (RFC 7845): the granule position
 * of the last complete page of the Opus stream, minus the pre-skip of its OpusHead, at 48 kHz
 * (Opus granules count 48 kHz samples whatever the input rate). Only the stream that starts with an
 * OpusHead is read; bytes between pages are skipped; a page cut off at the end is not counted, and
 * pages on which no packet ends (granule -1) carry no position. Undefined when the bytes hold no
 * Ogg Opus stream. No CRC check: this meters audio, it does not validate it.
 */
export function oggOpusDurationMs(bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let serial: number | undefined;
  let preSkip = 0;
  let granule = 0;
  let i = 0;
  while (i + 27 <= bytes.length) {
    if (!ascii(bytes, i, 'OggS') || bytes[i + 4] !== 0) {
      i++;
      continue;
    }
    const segments = bytes[i + 26]!;
    const bodyAt = i + 27 + segments;
    if (bodyAt > bytes.length) break;
    let bodyLength = 0;
    for (let s = 0; s < segments; s++) bodyLength += bytes[i + 27 + s]!;
    if (bodyAt + bodyLength > bytes.length) break; // a truncated last page
    const pageSerial = view.getUint32(i + 14, true);
    const low = view.getUint32(i + 6, true);
    const high = view.getUint32(i + 10, true);
    const beginsStream = (bytes[i + 5]! & 0x02) !== 0;
    if (serial === undefined) {
      if (beginsStream && bodyLength >= 19 && ascii(bytes, bodyAt, 'OpusHead')) {
        serial = pageSerial;
        preSkip = view.getUint16(bodyAt + 10, true);
      }
    } else if (pageSerial === serial && !(low === 0xffff_ffff && high === 0xffff_ffff)) {
      granule = high * 2 ** 32 + low;
    }
    i = bodyAt + bodyLength;
  }
  if (serial === undefined) return undefined;
  return (Math.max(0, granule - preSkip) * 1000) / 48_000;
}
