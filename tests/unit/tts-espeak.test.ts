import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pcmDurationMs, pcmFromBytes, rms } from '../../lib/speech/pcm';
import { TtsError, type Voice } from '../../lib/speech/tts/port';
import { createEspeakSynthesizer, type EspeakSynthesizer } from '../../local/speech/espeak';

/* The real local synthesizer: eSpeak NG in a worker thread. */

const voices: Record<'en' | 'ru' | 'tr', Voice> = {
  en: { provider: 'espeak', id: 'en-us', language: 'en' },
  ru: { provider: 'espeak', id: 'ru', language: 'ru' },
  tr: { provider: 'espeak', id: 'tr', language: 'tr' },
};
const texts: Record<'en' | 'ru' | 'tr', string> = {
  en: 'Hello there. Your table for four is booked for seven tonight.',
  ru: 'Здравствуйте. Ваш столик на четверых забронирован на семь вечера.',
  tr: 'Merhaba. Dört kişilik masanız bu akşam yedi için ayrıldı.',
};
const long = Array.from({ length: 12 }, (_, i) => `This is sentence number ${i + 1}, and it takes a while to say.`).join(' ');

interface Run {
  chunks: Uint8Array[];
  firstAtMs: number;
  endAtMs: number;
}

async function run(synth: EspeakSynthesizer, text: string, voice: Voice, sampleRate: 8000 | 16000 | 22050 | 24000, signal?: AbortSignal): Promise<Run> {
  const started = performance.now();
  const chunks: Uint8Array[] = [];
  let firstAtMs = -1;
  for await (const c of synth.synthesize({ text, voice, format: { format: 'pcm', sampleRate }, ...(signal ? { signal } : {}) })) {
    if (firstAtMs < 0) firstAtMs = performance.now() - started;
    chunks.push(c.slice()); // a copy: the bytes must outlive the iteration
  }
  return { chunks, firstAtMs, endAtMs: performance.now() - started };
}

const joined = (chunks: Uint8Array[]): Uint8Array => new Uint8Array(Buffer.concat(chunks));
const workerOf = (synth: EspeakSynthesizer) => (synth as unknown as { worker: Worker | undefined }).worker;

let synth: EspeakSynthesizer;
beforeAll(async () => {
  synth = await createEspeakSynthesizer();
});
afterAll(async () => {
  await synth?.close();
});

describe('local synthesizer (eSpeak NG)', () => {
  it('makes pcm only, at every rate', () => {
    for (const sampleRate of [8000, 16000, 22050, 24000] as const) {
      expect(synth.supports({ format: 'pcm', sampleRate })).toBe(true);
      expect(synth.supports({ format: 'mp3', sampleRate })).toBe(false);
    }
    expect(synth.provider).toBe('espeak');
  });

  it('refuses mp3 with tts.failed', async () => {
    const iterator = synth.synthesize({ text: 'Hello.', voice: voices.en, format: { format: 'mp3', sampleRate: 24000 } });
    await expect(iterator[Symbol.asyncIterator]().next()).rejects.toMatchObject({ name: 'TtsError', code: 'tts.failed' });
  });

  for (const language of ['en', 'ru', 'tr'] as const) {
    it(`${language}: speech of plausible length, at 16 kHz and 8 kHz`, async () => {
      const text = texts[language];
      const durations: number[] = [];
      for (const rate of [16000, 8000] as const) {
        const { chunks } = await run(synth, text, voices[language], rate);
        const audio = joined(chunks);
        for (const c of chunks) expect(c.byteLength % 2).toBe(0);
        const ms = pcmDurationMs(audio.byteLength, rate);
        // eSpeak speaks ~175 words a minute: tens of milliseconds per character, pauses included.
        expect(ms / text.length).toBeGreaterThan(30);
        expect(ms / text.length).toBeLessThan(200);
        const samples = pcmFromBytes(audio);
        expect(rms(samples)).toBeGreaterThan(300); // not silence (full scale is 32767)
        // Speech has pauses: a good share of 20 ms windows is much louder than the quietest.
        const window = rate / 50;
        const levels = Array.from({ length: Math.floor(samples.length / window) }, (_, w) => rms(samples.subarray(w * window, (w + 1) * window)));
        expect(levels.filter((l) => l > 1000).length).toBeGreaterThan(levels.length / 4);
        durations.push(ms);
      }
      // The same speech at either rate.
      expect(Math.abs(durations[0]! - durations[1]!)).toBeLessThan(5);
    });
  }

  it('the first chunk arrives long before the end of a long text', async () => {
    await run(synth, 'Warm up.', voices.en, 16000); // the worker is up
    const { chunks, firstAtMs, endAtMs } = await run(synth, long, voices.en, 16000);
    expect(chunks.length).toBeGreaterThan(10);
    expect(firstAtMs).toBeLessThan(endAtMs / 3);
  });

  it('two concurrent requests are served one after the other, both complete', async () => {
    const order: string[] = [];
    const collect = async (name: string, text: string, voice: Voice) => {
      let bytes = 0;
      for await (const c of synth.synthesize({ text, voice, format: { format: 'pcm', sampleRate: 16000 } })) {
        order.push(name);
        bytes += c.byteLength;
      }
      order.push(`${name}:end`);
      return bytes;
    };
    const [a, b] = await Promise.all([collect('a', texts.en, voices.en), collect('b', texts.ru, voices.ru)]);
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
    const lastA = order.lastIndexOf('a');
    const firstB = order.indexOf('b');
    expect(lastA).toBeLessThan(firstB);
    expect(order.indexOf('a:end')).toBeLessThan(order.indexOf('b:end'));
  });

  it('an abort ends the iterator promptly without an error, and stops the synthesis in the worker', async () => {
    const text = `${long} ${long}`;
    const full = await run(synth, text, voices.en, 16000); // how many chunks the whole text makes
    // Count what the worker posts per request.
    const posted = new Map<number, number>();
    const count = (m: { type: string; id: number }) => m.type === 'chunk' && posted.set(m.id, (posted.get(m.id) ?? 0) + 1);
    const worker = workerOf(synth)!;
    worker.on('message', count);
    const controller = new AbortController();
    let chunks = 0;
    let abortedAt = 0;
    for await (const _ of synth.synthesize({ text, voice: voices.en, format: { format: 'pcm', sampleRate: 16000 }, signal: controller.signal })) {
      chunks++;
      if (chunks === 2) {
        abortedAt = performance.now();
        controller.abort();
      }
    }
    expect(chunks).toBe(2);
    expect(performance.now() - abortedAt).toBeLessThan(50);
    // The next request runs after the aborted one has stopped in the worker.
    const next = await run(synth, 'Next.', voices.en, 16000);
    worker.off('message', count);
    expect(next.chunks.length).toBeGreaterThan(0);
    const [aborted] = [...posted.values()];
    expect(aborted).toBeLessThan(full.chunks.length / 4);
  });

  it('word marks: monotonic, pointing at the words of the text (en, ru, tr)', async () => {
    for (const language of ['en', 'ru', 'tr'] as const) {
      const text = texts[language];
      const words = text.match(/\p{L}+/gu)!;
      const marks = await synth.wordMarks({ text, voice: voices[language] });
      expect(marks.length).toBe(words.length);
      expect(marks.map((m) => text.slice(m.start, m.end))).toEqual(words);
      for (let i = 1; i < marks.length; i++) {
        expect(marks[i]!.timeMs).toBeGreaterThanOrEqual(marks[i - 1]!.timeMs);
        expect(marks[i]!.start).toBeGreaterThanOrEqual(marks[i - 1]!.end);
      }
      // Within the audio.
      const { chunks } = await run(synth, text, voices[language], 16000);
      expect(marks[marks.length - 1]!.timeMs).toBeLessThan(pcmDurationMs(joined(chunks).byteLength, 16000));
    }
  });

  it('word mark offsets are UTF-16 even after characters outside the BMP (eSpeak counts code points)', async () => {
    const text = 'Smile 😀 now, друг 𝔸𝔹 okay.';
    const marks = await synth.wordMarks({ text, voice: voices.en });
    const slices = marks.map((m) => text.slice(m.start, m.end));
    for (const word of ['Smile', 'now', 'друг', 'okay']) expect(slices).toContain(word);
    for (const s of slices) {
      expect(s.trim()).toBe(s);
      expect(/^[\uDC00-\uDFFF]|[\uD800-\uDBFF]$/.test(s)).toBe(false);
    }
  });

  it('a crashed worker fails its request with tts.connection; the next request gets a fresh worker', async () => {
    await run(synth, 'Warm up.', voices.en, 16000);
    const before = workerOf(synth)!;
    const firstThread = before.threadId;
    const err = await (async () => {
      let n = 0;
      for await (const _ of synth.synthesize({ text: long + ' ' + long, voice: voices.en, format: { format: 'pcm', sampleRate: 16000 } })) {
        if (++n === 1) void before.terminate(); // the thread dies mid-sentence
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtsError);
    expect((err as TtsError).code).toBe('tts.connection');
    const again = await run(synth, texts.en, voices.en, 16000);
    expect(rms(pcmFromBytes(joined(again.chunks)))).toBeGreaterThan(300);
    expect(synth.threadId).toBeDefined();
    expect(synth.threadId).not.toBe(firstThread);
  });

  it('close() ends the worker thread; later requests fail with tts.connection', async () => {
    const own = await createEspeakSynthesizer();
    expect(own.threadId).toBeUndefined(); // started lazily
    await run(own, 'Hello.', voices.en, 8000);
    const worker = workerOf(own)!;
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    await own.close();
    await exited;
    expect(own.threadId).toBeUndefined();
    await expect(run(own, 'Hello.', voices.en, 8000)).rejects.toMatchObject({ name: 'TtsError', code: 'tts.connection' });
  });

  it('a missing package is tts.connection from the factory', async () => {
    const err = await createEspeakSynthesizer({ packageName: '@echogarden/espeak-ng-not-installed' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TtsError);
    expect((err as TtsError).code).toBe('tts.connection');
    expect((err as TtsError).message).toContain('not installed');
  });
});
