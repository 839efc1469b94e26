import { describe, expect, it } from 'vitest';
import { concatBytes, oggOpusDurationMs } from '../../lib/speech/pcm';
import { pcmToWav, WAV_HEADER_BYTES } from '../../lib/speech/wav';

const ascii = (bytes: Uint8Array, at: number, length: number) => String.fromCharCode(...bytes.subarray(at, at + length));

describe('pcmToWav', () => {
  it('writes a canonical 44-byte header for 16-bit mono PCM, then the samples', () => {
    const pcm = new Uint8Array(3200).map((_, i) => (i * 7) & 0xff); // 100 ms at 16 kHz
    const wav = pcmToWav(pcm, 16_000);
    const view = new DataView(wav.buffer, wav.byteOffset, wav.byteLength);
    expect(wav.byteLength).toBe(WAV_HEADER_BYTES + 3200);
    expect(ascii(wav, 0, 4)).toBe('RIFF');
    expect(view.getUint32(4, true)).toBe(36 + 3200);
    expect(ascii(wav, 8, 4)).toBe('WAVE');
    expect(ascii(wav, 12, 4)).toBe('fmt ');
    expect(view.getUint32(16, true)).toBe(16);
    expect(view.getUint16(20, true)).toBe(1); // PCM
    expect(view.getUint16(22, true)).toBe(1); // mono
    expect(view.getUint32(24, true)).toBe(16_000);
    expect(view.getUint32(28, true)).toBe(32_000); // byte rate
    expect(view.getUint16(32, true)).toBe(2); // block align
    expect(view.getUint16(34, true)).toBe(16); // bits per sample
    expect(ascii(wav, 36, 4)).toBe('data');
    expect(view.getUint32(40, true)).toBe(3200);
    expect(wav.subarray(44)).toEqual(pcm);
  });

  it('takes the rate as given (8 kHz, 48 kHz) and drops a trailing odd byte', () => {
    const wav = pcmToWav(new Uint8Array([1, 2, 3, 4, 5]), 8000);
    const view = new DataView(wav.buffer);
    expect(view.getUint32(24, true)).toBe(8000);
    expect(view.getUint32(28, true)).toBe(16_000);
    expect(view.getUint32(40, true)).toBe(4);
    expect(view.getUint32(4, true)).toBe(40);
    expect([...wav.subarray(44)]).toEqual([1, 2, 3, 4]);
    expect(new DataView(pcmToWav(new Uint8Array(0), 48_000).buffer).getUint32(28, true)).toBe(96_000);
  });

  it('an empty signal is a valid empty WAV; a bad rate throws', () => {
    const wav = pcmToWav(new Uint8Array(0), 16_000);
    expect(wav.byteLength).toBe(44);
    expect(new DataView(wav.buffer).getUint32(40, true)).toBe(0);
    for (const rate of [0, -16_000, 16_000.5, Number.NaN]) expect(() => pcmToWav(new Uint8Array(2), rate)).toThrow(RangeError);
  });

  it('reads a PCM view at an offset of a larger buffer', () => {
    const backing = new Uint8Array([9, 9, 9, 1, 2, 3, 4, 9]);
    expect([...pcmToWav(backing.subarray(3, 7), 16_000).subarray(44)]).toEqual([1, 2, 3, 4]);
  });
});

/** One Ogg page (RFC 3533); the CRC is left 0 (the parser does not check it). */
function oggPage(options: { serial: number; sequence: number; granule: bigint; body: Uint8Array; bos?: boolean; eos?: boolean }): Uint8Array {
  const lacing: number[] = [];
  let left = options.body.byteLength;
  while (left >= 255) {
    lacing.push(255);
    left -= 255;
  }
  lacing.push(left);
  const page = new Uint8Array(27 + lacing.length + options.body.byteLength);
  const view = new DataView(page.buffer);
  page.set([0x4f, 0x67, 0x67, 0x53], 0); // OggS
  page[4] = 0;
  page[5] = (options.bos ? 0x02 : 0) | (options.eos ? 0x04 : 0);
  view.setBigUint64(6, options.granule, true);
  view.setUint32(14, options.serial, true);
  view.setUint32(18, options.sequence, true);
  page[26] = lacing.length;
  page.set(lacing, 27);
  page.set(options.body, 27 + lacing.length);
  return page;
}

function opusHead(preSkip: number): Uint8Array {
  const head = new Uint8Array(19);
  head.set(new TextEncoder().encode('OpusHead'), 0);
  const view = new DataView(head.buffer);
  head[8] = 1; // version
  head[9] = 1; // channels
  view.setUint16(10, preSkip, true);
  view.setUint32(12, 16_000, true); // the input rate: informational only
  return head;
}

const join = (...parts: Uint8Array[]) => concatBytes(parts);

/** An Ogg Opus stream: OpusHead, OpusTags, then audio pages ending at the given granules. */
function oggOpus(preSkip: number, granules: bigint[], serial = 0x1234): Uint8Array {
  const tags = new TextEncoder().encode('OpusTags\x05\0\0\0parley\0\0\0\0');
  return join(
    oggPage({ serial, sequence: 0, granule: 0n, body: opusHead(preSkip), bos: true }),
    oggPage({ serial, sequence: 1, granule: 0n, body: tags }),
    ...granules.map((granule, k) =>
      oggPage({ serial, sequence: 2 + k, granule, body: new Uint8Array(300).fill(k + 1), eos: k === granules.length - 1 }),
    ),
  );
}

describe('oggOpusDurationMs', () => {
  it('is the last granule position minus the pre-skip, at 48 kHz', () => {
    // 2.5 s of audio after a 312-sample pre-skip, in pages of one second.
    expect(oggOpusDurationMs(oggOpus(312, [48_000n, 96_000n, 120_312n]))).toBe(2500);
    expect(oggOpusDurationMs(oggOpus(0, [24_000n]))).toBe(500);
  });

  it('skips pages with no finished packet (granule -1) and a truncated last page', () => {
    const stream = oggOpus(312, [48_312n, 0xffff_ffff_ffff_ffffn]);
    expect(oggOpusDurationMs(stream)).toBe(1000);
    const cut = oggOpus(312, [48_312n, 96_312n]);
    expect(oggOpusDurationMs(cut.subarray(0, cut.byteLength - 10))).toBe(1000);
  });

  it('reads only the Opus stream, and skips garbage between pages', () => {
    const other = oggPage({ serial: 7, sequence: 0, granule: 9_600_000n, body: new Uint8Array(40), bos: true });
    const stream = oggOpus(0, [96_000n]);
    expect(oggOpusDurationMs(join(other, new Uint8Array([1, 2, 3, 0x4f, 0x67]), stream))).toBe(2000);
  });

  it('only headers: 0 ms; not Ogg Opus at all: undefined', () => {
    expect(oggOpusDurationMs(oggOpus(312, []))).toBe(0);
    expect(oggOpusDurationMs(new Uint8Array(0))).toBeUndefined();
    expect(oggOpusDurationMs(pcmToWav(new Uint8Array(4000), 16_000))).toBeUndefined();
    // An Ogg Vorbis stream is not Opus.
    const vorbis = oggPage({ serial: 1, sequence: 0, granule: 0n, body: new TextEncoder().encode('\x01vorbis' + '\0'.repeat(23)), bos: true });
    expect(oggOpusDurationMs(join(vorbis, oggPage({ serial: 1, sequence: 1, granule: 44_100n, body: new Uint8Array(10) })))).toBeUndefined();
  });
});
