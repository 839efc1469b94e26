/**
 * WAV (RIFF) container for raw PCM: what an OpenAI-compatible transcription endpoint accepts,
 * since it takes files, not headerless samples.
 */

/** Bytes of the canonical header: RIFF + fmt (16-byte PCM chunk) + data chunk header. */
export const WAV_HEADER_BYTES = 44;

/**
 * A WAV file of 16-bit signed little-endian mono PCM at `sampleRate` Hz (the samples are copied
 * after a 44-byte header; a trailing odd byte is not a sample and is dropped).
 */
export function pcmToWav(pcm: Uint8Array, sampleRate: number): Uint8Array {
  if (!(Number.isInteger(sampleRate) && sampleRate > 0 && sampleRate <= 384_000)) {
    throw new RangeError(`invalid sample rate ${sampleRate}`);
  }
  const data = pcm.byteLength - (pcm.byteLength % 2);
  if (data > 0xffff_ffff - 36) throw new RangeError(`${data} bytes of PCM do not fit in a WAV file`);
  const out = new Uint8Array(WAV_HEADER_BYTES + data);
  const view = new DataView(out.buffer);
  const ascii = (at: number, text: string) => {
    for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  };
  const channels = 1;
  const bitsPerSample = 16;
  const blockAlign = (channels * bitsPerSample) / 8;
  ascii(0, 'RIFF');
  view.setUint32(4, 36 + data, true); // the rest of the file after this field
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // WAVE_FORMAT_PCM
  view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * blockAlign, true); // byte rate
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, bitsPerSample, true);
  ascii(36, 'data');
  view.setUint32(40, data, true);
  out.set(data === pcm.byteLength ? pcm : pcm.subarray(0, data), WAV_HEADER_BYTES);
  return out;
}
