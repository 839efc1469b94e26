import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadDialogueMap } from '../../lib/flow/map';
import { concatBytes, createResampler, mp3DurationMs, pcmDurationMs, pcmFromBytes, pcmToBytes, resamplePcm16, rms } from '../../lib/speech/pcm';
import { splitForSynthesis, splitWithOffsets } from '../../lib/speech/tts/split';
import { KNOWN_POLLY_VOICES, pollyEngineFor, voiceFor } from '../../lib/speech/tts/voice';
import { concatSamples, mulberry32 } from '../support/pcm';

const sine = (freq: number, rate: number, samples: number, amplitude = 10000): Int16Array =>
  Int16Array.from({ length: samples }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * freq * i) / rate)));

/** Frequency estimated from upward zero crossings. */
function frequencyOf(pcm: Int16Array, rate: number): number {
  const ups: number[] = [];
  for (let i = 1; i < pcm.length; i++) if (pcm[i - 1]! < 0 && pcm[i]! >= 0) ups.push(i);
  return ((ups.length - 1) * rate) / (ups[ups.length - 1]! - ups[0]!);
}

describe('pcm durations and conversions', () => {
  it('pcmDurationMs: two bytes per sample, an odd byte is no sample', () => {
    for (const rate of [8000, 16000, 22050, 24000]) {
      expect(pcmDurationMs(rate * 2, rate)).toBeCloseTo(1000, 9);
      expect(pcmDurationMs(rate * 2 + 1, rate)).toBeCloseTo(1000, 9);
      expect(pcmDurationMs(0, rate)).toBe(0);
    }
    expect(() => pcmDurationMs(10, 0)).toThrow(RangeError);
  });

  it('bytes <-> samples round-trip little-endian, also from unaligned bytes', () => {
    const samples = Int16Array.from([0, 1, -1, 32767, -32768, 258]);
    const bytes = pcmToBytes(samples);
    expect(Array.from(bytes.subarray(4, 6))).toEqual([0xff, 0xff]); // -1
    expect(Array.from(bytes.subarray(10, 12))).toEqual([0x02, 0x01]); // 258 little-endian
    const unaligned = new Uint8Array(bytes.length + 1).subarray(1);
    unaligned.set(bytes);
    expect(Array.from(pcmFromBytes(unaligned))).toEqual(Array.from(samples));
    expect(Array.from(pcmFromBytes(bytes))).toEqual(Array.from(samples));
  });

  it('rms: 0 for silence, amplitude/sqrt(2) for a sine', () => {
    expect(rms(new Int16Array(100))).toBe(0);
    expect(rms(new Int16Array(0))).toBe(0);
    expect(rms(sine(440, 16000, 16000, 10000))).toBeCloseTo(10000 / Math.SQRT2, -1);
  });
});

describe('resampling', () => {
  const pairs: [number, number][] = [
    [22050, 16000],
    [22050, 8000],
    [22050, 24000],
    [8000, 16000],
    [16000, 8000],
  ];

  it.each(pairs)('%i -> %i: the length scales by the rate ratio', (from, to) => {
    for (const n of [1, 2, 3, 100, 22050, 12345]) {
      const out = resamplePcm16(new Int16Array(n).fill(7), from, to);
      expect(Math.abs(out.length - (n * to) / from)).toBeLessThanOrEqual(0.5 + 1e-9);
    }
  });

  it.each(pairs)('%i -> %i: a 440 Hz sine stays 440 Hz with bounded amplitude', (from, to) => {
    const input = sine(440, from, from); // one second
    const out = resamplePcm16(input, from, to);
    expect(frequencyOf(out, to)).toBeGreaterThan(440 * 0.98);
    expect(frequencyOf(out, to)).toBeLessThan(440 * 1.02);
    const peak = Math.max(...Array.from(out, Math.abs));
    expect(peak).toBeLessThanOrEqual(10000);
    expect(rms(out)).toBeGreaterThan(rms(input) * 0.9);
    expect(rms(out)).toBeLessThan(rms(input) * 1.05);
  });

  it('the same rate is a copy', () => {
    const input = sine(300, 16000, 500);
    const out = resamplePcm16(input, 16000, 16000);
    expect(Array.from(out)).toEqual(Array.from(input));
    expect(out).not.toBe(input);
  });

  it.each(pairs)('%i -> %i: chunked streaming gives exactly the one-shot samples (no seams)', (from, to) => {
    const input = sine(523, from, 9000);
    const whole = resamplePcm16(input, from, to);
    const random = mulberry32(from + to);
    for (let trial = 0; trial < 5; trial++) {
      const r = createResampler(from, to);
      const parts: Int16Array[] = [];
      for (let at = 0; at < input.length; ) {
        const size = 1 + Math.floor(random() * (trial === 0 ? 3 : 700));
        parts.push(r.push(input.subarray(at, Math.min(at + size, input.length))));
        at += size;
      }
      parts.push(r.flush());
      expect(Array.from(concatSamples(parts))).toEqual(Array.from(whole));
    }
  });

  it('streamed output has no click at chunk seams (sample-to-sample steps stay small)', () => {
    const r = createResampler(22050, 8000);
    const input = sine(200, 22050, 22050, 12000);
    const parts: Int16Array[] = [];
    for (let at = 0; at < input.length; at += 1024) parts.push(r.push(input.subarray(at, at + 1024)));
    parts.push(r.flush());
    const out = concatSamples(parts);
    // The largest step of a 200 Hz sine of 12000 at 8 kHz is about 2*pi*200/8000*12000 ≈ 1885.
    let maxStep = 0;
    for (let i = 1; i < out.length; i++) maxStep = Math.max(maxStep, Math.abs(out[i]! - out[i - 1]!));
    expect(maxStep).toBeLessThan(2000);
  });

  it('rejects invalid rates', () => {
    expect(() => createResampler(0, 8000)).toThrow(RangeError);
    expect(() => createResampler(22050, 8000.5)).toThrow(RangeError);
  });
});

describe('mp3DurationMs', () => {
  /** A layer III frame: header, then zero bytes to the frame's length. */
  function frame(opts: { version: 'mpeg1' | 'mpeg2' | 'mpeg2.5'; bitrateIndex: number; rateIndex: number; padding?: boolean; mono?: boolean }): Uint8Array {
    const versionBits = { mpeg1: 0b11, mpeg2: 0b10, 'mpeg2.5': 0b00 }[opts.version];
    const mpeg1 = opts.version === 'mpeg1';
    const bitrates = mpeg1 ? [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320] : [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    const rates = { mpeg1: [44100, 48000, 32000], mpeg2: [22050, 24000, 16000], 'mpeg2.5': [11025, 12000, 8000] }[opts.version];
    const bitrate = bitrates[opts.bitrateIndex]! * 1000;
    const rate = rates[opts.rateIndex]!;
    const length = Math.floor(((mpeg1 ? 144 : 72) * bitrate) / rate) + (opts.padding ? 1 : 0);
    const f = new Uint8Array(length);
    f[0] = 0xff;
    f[1] = 0xe0 | (versionBits << 3) | (0b01 << 1) | 1; // layer III, no CRC
    f[2] = (opts.bitrateIndex << 4) | (opts.rateIndex << 2) | (opts.padding ? 0x02 : 0);
    f[3] = opts.mono ? 0xc0 : 0x00;
    return f;
  }
  const repeat = (f: Uint8Array, n: number) => concatBytes(Array.from({ length: n }, () => f));

  it('MPEG-1 44.1 kHz: 1152 samples per frame, padded frames included', () => {
    const plain = frame({ version: 'mpeg1', bitrateIndex: 9, rateIndex: 0 });
    const padded = frame({ version: 'mpeg1', bitrateIndex: 9, rateIndex: 0, padding: true });
    expect(padded.length).toBe(plain.length + 1);
    const bytes = concatBytes([plain, padded, plain, padded, plain]);
    expect(mp3DurationMs(bytes)).toBeCloseTo((5 * 1152 * 1000) / 44100, 6);
  });

  it('MPEG-2 (16 kHz) and MPEG-2.5 (8 kHz): 576 samples per frame', () => {
    const m2 = frame({ version: 'mpeg2', bitrateIndex: 4, rateIndex: 2, mono: true });
    expect(mp3DurationMs(repeat(m2, 10))).toBeCloseTo((10 * 576 * 1000) / 16000, 6);
    const m25 = frame({ version: 'mpeg2.5', bitrateIndex: 1, rateIndex: 2, mono: true });
    expect(mp3DurationMs(repeat(m25, 7))).toBeCloseTo((7 * 576 * 1000) / 8000, 6);
    const m2at24 = frame({ version: 'mpeg2', bitrateIndex: 8, rateIndex: 1 });
    expect(mp3DurationMs(repeat(m2at24, 3))).toBeCloseTo((3 * 576 * 1000) / 24000, 6);
  });

  it('skips an ID3v2 tag (even one holding sync-like bytes), a Xing frame, garbage, an ID3v1 tag; ignores a truncated last frame', () => {
    const f = frame({ version: 'mpeg2', bitrateIndex: 8, rateIndex: 0 });
    const tagBody = new Uint8Array(300).fill(0xff);
    const size = tagBody.length;
    const id3 = concatBytes([
      new Uint8Array([0x49, 0x44, 0x33, 4, 0, 0, (size >> 21) & 0x7f, (size >> 14) & 0x7f, (size >> 7) & 0x7f, size & 0x7f]),
      tagBody,
    ]);
    const xing = frame({ version: 'mpeg2', bitrateIndex: 8, rateIndex: 0 });
    xing.set([0x58, 0x69, 0x6e, 0x67], 4 + 17); // "Xing" after MPEG-2 stereo side info
    const garbage = new Uint8Array([1, 2, 0xff, 3, 4]);
    const id3v1 = new Uint8Array(128);
    id3v1.set([0x54, 0x41, 0x47]);
    const bytes = concatBytes([id3, xing, repeat(f, 4), garbage, repeat(f, 2), f.subarray(0, 20)]);
    expect(mp3DurationMs(bytes)).toBeCloseTo((6 * 576 * 1000) / 22050, 6);
    expect(mp3DurationMs(concatBytes([repeat(f, 3), id3v1]))).toBeCloseTo((3 * 576 * 1000) / 22050, 6);
  });

  it('is 0 for bytes without frames', () => {
    expect(mp3DurationMs(new Uint8Array(0))).toBe(0);
    expect(mp3DurationMs(new Uint8Array(1000).fill(0xff))).toBe(0);
    expect(mp3DurationMs(new TextEncoder().encode('not an mp3 at all'))).toBe(0);
  });
});

describe('splitForSynthesis', () => {
  const squash = (s: string) => s.replace(/\s+/g, '');

  /** The pieces are the text cut at some points, in order, trimmed, each within the limit. */
  function checkPieces(text: string, pieces: string[], max: number): void {
    let from = 0;
    for (const p of pieces) {
      expect(p.length).toBeGreaterThan(0);
      expect(p.length).toBeLessThanOrEqual(max);
      expect(p).toBe(p.trim());
      const at = text.indexOf(p, from);
      expect(at).toBeGreaterThanOrEqual(from);
      expect(text.slice(from, at).trim()).toBe(''); // only whitespace between pieces
      from = at + p.length;
      // Never inside a surrogate pair.
      expect(/^[\uDC00-\uDFFF]/.test(p)).toBe(false);
      expect(/[\uD800-\uDBFF]$/.test(p)).toBe(false);
    }
    expect(text.slice(from).trim()).toBe('');
    expect(squash(pieces.join(''))).toBe(squash(text));
  }

  it('short text is one trimmed piece; blank text none', () => {
    expect(splitForSynthesis('  Hello there.  ')).toEqual(['Hello there.']);
    expect(splitForSynthesis(' \n ')).toEqual([]);
    expect(splitForSynthesis('')).toEqual([]);
  });

  it('packs whole sentences up to the limit (en, ru, tr)', () => {
    const sentences = [
      'The quick brown fox jumps over the lazy dog.',
      'Съешь же ещё этих мягких французских булок, да выпей чаю!',
      'Pijamalı hasta yağız şoföre çabucak güvendi.',
      'Is this a question?',
      'Dr. Smith arrived at 5 p.m. yesterday.',
    ];
    const random = mulberry32(42);
    const text = Array.from({ length: 120 }, () => sentences[Math.floor(random() * sentences.length)]).join(' ');
    for (const max of [60, 100, 250, 3000]) {
      // The language adds its abbreviations ("Dr. Smith" stays one sentence); the rules are the same for all.
      const pieces = splitForSynthesis(text, max, 'en');
      checkPieces(text, pieces, max);
      // Every sentence fits, so every cut is at a sentence end.
      for (const p of pieces) expect(p).toMatch(/[.!?]$/);
      // Greedy: a piece plus the next one's first sentence would not have fit.
      for (let i = 0; i + 1 < pieces.length; i++) {
        const next = pieces[i + 1]!;
        const firstSentence = sentences.filter((s) => next.startsWith(s)).sort((a, b) => b.length - a.length)[0]!;
        expect(pieces[i]!.length + 1 + firstSentence.length).toBeGreaterThan(max);
      }
    }
  });

  it('a 7,000-character text becomes three or more pieces of at most 3,000', () => {
    const text = Array.from({ length: 200 }, (_, i) => `Sentence number ${i + 1} says something short.`).join(' ');
    expect(text.length).toBeGreaterThan(7000);
    const pieces = splitForSynthesis(text);
    expect(pieces.length).toBeGreaterThanOrEqual(3);
    checkPieces(text, pieces, 3000);
    for (const p of pieces) expect(p).toMatch(/^Sentence number \d+ .*short\.$/);
  });

  it('a sentence longer than the limit is cut between words; a longer word at the limit', () => {
    const long = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ') + '.';
    const text = `Short one. ${long} Another short one.`;
    const pieces = splitForSynthesis(text, 50);
    checkPieces(text, pieces, 50);
    for (const p of pieces) expect(p).toMatch(/^(Short|word\d+|Another)/); // no word was cut

    const giant = 'x'.repeat(130);
    const pieces2 = splitForSynthesis(`Before. ${giant} after.`, 50);
    checkPieces(`Before. ${giant} after.`, pieces2, 50);

    const emoji = '😀'.repeat(40); // 80 UTF-16 units, no spaces
    checkPieces(emoji, splitForSynthesis(emoji, 25), 25);

    const cjk = '我们今天去公园散步。'.repeat(20);
    checkPieces(cjk, splitForSynthesis(cjk, 30), 30);
  });

  it('random texts keep every character in order', () => {
    const random = mulberry32(7);
    const alphabet = ['a', 'b', 'я', 'ş', ' ', ' ', '  ', '\n', '. ', '! ', '? ', '😀', ', ', 'Dr. ', '3. '];
    for (let trial = 0; trial < 200; trial++) {
      const text = Array.from({ length: Math.floor(random() * 400) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
      const max = 2 + Math.floor(random() * 80);
      checkPieces(text, splitForSynthesis(text, max), max);
    }
  });

  it('offsets point at the pieces in the text', () => {
    const text = '  One. Two two. Three three three.  ';
    for (const { text: piece, offset } of splitWithOffsets(text, 12)) expect(text.slice(offset, offset + piece.length)).toBe(piece);
  });
});

describe('voiceFor', () => {
  const raw = JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  const mapWith = (voice: unknown, language = 'en') => {
    const { voice: _ignored, ...rest } = raw;
    return loadDialogueMap({ ...rest, language, ...(voice === undefined ? {} : { voice }) });
  };

  it('polly: the map voice for its language, per-language voices, defaults otherwise', () => {
    const map = mapWith({ engine: 'neural', id: 'Matthew', voices: { tr: 'Filiz' } });
    expect(voiceFor(map, 'en', 'polly')).toEqual({ provider: 'polly', id: 'Matthew', engine: 'neural', language: 'en' });
    // Filiz has only the standard engine.
    expect(voiceFor(map, 'tr', 'polly')).toEqual({ provider: 'polly', id: 'Filiz', engine: 'standard', language: 'tr' });
    // No Russian voice in the map: the default, Tatyana, which has no neural engine.
    expect(voiceFor(map, 'ru', 'polly')).toEqual({ provider: 'polly', id: 'Tatyana', engine: 'standard', language: 'ru' });
  });

  it('polly without a voice block: en Joanna, ru Tatyana (standard), tr Burcu (neural)', () => {
    const map = mapWith(undefined);
    expect(voiceFor(map, 'en', 'polly')).toMatchObject({ id: 'Joanna', engine: 'neural' });
    expect(voiceFor(map, 'ru', 'polly')).toMatchObject({ id: 'Tatyana', engine: 'standard' });
    expect(voiceFor(map, 'tr', 'polly')).toMatchObject({ id: 'Burcu', engine: 'neural' });
    for (const lang of ['en', 'ru', 'tr']) {
      const v = voiceFor(map, lang, 'polly');
      expect(KNOWN_POLLY_VOICES[v.id]!.engines).toContain(v.engine);
      expect(KNOWN_POLLY_VOICES[v.id]!.locales[0]!.startsWith(lang)).toBe(true);
    }
  });

  it('polly engines: the map engine when the voice has it, else one it has; unknown voices keep the map engine', () => {
    expect(voiceFor(mapWith({ engine: 'standard', id: 'Joanna' }), 'en', 'polly').engine).toBe('standard');
    expect(voiceFor(mapWith({ engine: 'generative', id: 'Joanna' }), 'en', 'polly').engine).toBe('generative');
    expect(voiceFor(mapWith({ engine: 'generative', id: 'Burcu' }, 'tr'), 'tr', 'polly').engine).toBe('neural');
    expect(voiceFor(mapWith({ engine: 'standard', id: 'Burcu' }, 'tr'), 'tr', 'polly').engine).toBe('neural');
    expect(voiceFor(mapWith({ engine: 'generative', id: 'SomeNewVoice' }), 'en', 'polly')).toMatchObject({ id: 'SomeNewVoice', engine: 'generative' });
    expect(pollyEngineFor('Tatyana', 'neural')).toBe('standard');
  });

  it('espeak: en-us, ru, tr, else the language code', () => {
    const map = mapWith({ engine: 'neural', id: 'Joanna' });
    expect(voiceFor(map, 'en', 'espeak')).toEqual({ provider: 'espeak', id: 'en-us', language: 'en' });
    expect(voiceFor(map, 'ru', 'espeak')).toEqual({ provider: 'espeak', id: 'ru', language: 'ru' });
    expect(voiceFor(map, 'tr', 'espeak')).toEqual({ provider: 'espeak', id: 'tr', language: 'tr' });
    expect(voiceFor(map, 'de', 'espeak')).toEqual({ provider: 'espeak', id: 'de', language: 'de' });
  });
});
