import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { SayItem } from '../../lib/flow/engine';
import { loadDialogueMap, MESSAGE_KINDS, type DialogueMap } from '../../lib/flow/map';
import { renderSay } from '../../lib/flow/playlist';
import {
  AudioManifest,
  cacheKey,
  emptyAudioCache,
  fileAudioCache,
  parseFormatList,
  readManifest,
  resolveAudioCacheDir,
} from '../../lib/speech/audio-cache';
import { buildAudioCache } from '../../lib/speech/build-cache';
import type { AudioFormat } from '../../lib/speech/format';
import { staticTexts } from '../../lib/speech/static-texts';
import { TtsError, type SynthesisRequest, type Synthesizer, type Voice, type WordMark } from '../../lib/speech/tts/port';
import { voiceFor as mapVoiceFor } from '../../lib/speech/tts/voice';
import { runBuildAudio } from '../../scripts/build-audio';
import { espeakInstalled } from '../support/espeak';

const PCM16: AudioFormat = { format: 'pcm', sampleRate: 16000 };
const PCM8: AudioFormat = { format: 'pcm', sampleRate: 8000 };
const MP3: AudioFormat = { format: 'mp3', sampleRate: 24000 };
const JOANNA: Voice = { provider: 'polly', id: 'Joanna', engine: 'neural', language: 'en' };

const dirs: string[] = [];
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-audio-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A tiny valid map: a template prompt, a per-language prompt, a shared text, slot prompts, the LLM's safe response. */
function tinyMap(overrides: Partial<Record<string, unknown>> = {}): DialogueMap {
  return loadDialogueMap({
    name: 'tiny',
    language: 'en',
    languages: ['ru'],
    initial_state: 'start',
    prompts: {
      'cache:hello': { en: 'Hello!', ru: 'Привет!' },
      'cache:bye': 'Goodbye.',
      'cache:price': 'That is {{ session.variables.price }} dollars.',
      'filler:wait': { en: 'One moment…', ru: 'Минутку…' },
    },
    messages: {
      not_understood: { en: 'Sorry?', ru: 'Простите?' },
      action_failed: 'Something went wrong.',
      action_timeout: 'Something went wrong.',
      llm_error: 'No answer now.',
      llm_timeout: 'Too slow.',
      internal_error: 'Oops.',
    },
    llm: { safe_response: { en: 'Let us stay friendly.', ru: 'Давайте дружить.' } },
    intents: {
      order: {
        examples: ['I want a coffee'],
        slots: {
          size: { entity: 'size', prompt: { en: 'Which size?', ru: 'Какой размер?' } },
          note: { entity: 'size', required: false },
        },
      },
    },
    entities: { size: { type: 'enum', values: { small: ['small'] } } },
    faq: [{ id: 'hours', questions: ['when do you open'], answer: { en: 'We open at seven.', ru: 'Открываемся в семь.' } }],
    states: {
      start: {
        system_response: {
          playlist: [
            { type: 'cache', key: 'cache:hello' },
            { type: 'tts', text_template: ' Enjoy! ' },
            { type: 'tts', text_template: 'Total: {{ session.variables.total }}.' },
          ],
          reprompt: [{ type: 'tts', text_template: { en: 'Say it again?', ru: 'Повторите?' } }],
        },
      },
    },
    ...overrides,
  });
}

/** In-memory synthesizer: pcm of 2 bytes per ms per character ×rate/1000, fails on texts it is told to. */
function fakeSynthesizer(options: { provider?: string; failOn?: string[]; supports?: (f: AudioFormat) => boolean; marks?: boolean } = {}) {
  const calls: SynthesisRequest[] = [];
  const markCalls: string[] = [];
  const synthesizer: Synthesizer & { supports(f: AudioFormat): boolean } = {
    provider: options.provider ?? 'polly',
    supports: options.supports ?? (() => true),
    async *synthesize(request) {
      calls.push(request);
      if (options.failOn?.includes(request.text)) throw new Error(`cannot say ${request.text}`);
      // 10 ms of audio per character, in two chunks.
      const bytes = (request.text.length * 10 * request.format.sampleRate * 2) / 1000;
      const audio = new Uint8Array(bytes).map((_, i) => i % 251);
      yield audio.subarray(0, bytes / 2);
      yield audio.subarray(bytes / 2);
    },
    ...(options.marks === false
      ? {}
      : {
          async wordMarks(request: Omit<SynthesisRequest, 'format'>): Promise<WordMark[]> {
            markCalls.push(request.text);
            return [{ timeMs: 0, start: 0, end: Math.max(1, request.text.indexOf(' ')) }];
          },
        }),
  };
  return { synthesizer, calls, markCalls };
}

const voiceFor =
  (provider = 'polly') =>
  (language: string): Voice =>
    language === 'ru' ? { provider, id: 'Tatyana', engine: 'standard', language } : { provider, id: 'Joanna', engine: 'neural', language };

describe('cacheKey', () => {
  const base = cacheKey('Hello!', JOANNA, PCM16);

  it('is a sha256 hex digest, stable for the same input', () => {
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(cacheKey('Hello!', { ...JOANNA }, { ...PCM16 })).toBe(base);
  });

  it('changes with the text (exactly: whitespace and case count), provider, voice id, engine, language and format', () => {
    const variants = [
      cacheKey('Hello', JOANNA, PCM16),
      cacheKey('Hello! ', JOANNA, PCM16),
      cacheKey('hello!', JOANNA, PCM16),
      cacheKey('Hello!', { ...JOANNA, provider: 'espeak' }, PCM16),
      cacheKey('Hello!', { ...JOANNA, id: 'Matthew' }, PCM16),
      cacheKey('Hello!', { ...JOANNA, engine: 'standard' }, PCM16),
      cacheKey('Hello!', { provider: 'polly', id: 'Joanna', language: 'en' }, PCM16),
      cacheKey('Hello!', { ...JOANNA, language: 'ru' }, PCM16),
      cacheKey('Hello!', JOANNA, PCM8),
      cacheKey('Hello!', JOANNA, MP3),
      cacheKey('Hello!', JOANNA, { format: 'mp3', sampleRate: 16000 }),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
  });

  it('cannot be forged by moving characters between fields', () => {
    expect(cacheKey('a', { provider: 'b', id: 'c', language: 'en' }, PCM16)).not.toBe(
      cacheKey('a","b', { provider: '', id: 'c', language: 'en' }, PCM16),
    );
  });
});

describe('format lists (PARLEY_AUDIO_FORMATS)', () => {
  it('parses format ids, trims and deduplicates', () => {
    expect(parseFormatList('pcm16000, mp3-24000,pcm16000,')).toEqual([PCM16, MP3]);
  });

  it('rejects unknown formats and rates', () => {
    expect(() => parseFormatList('wav16000')).toThrow(/unknown audio format 'wav16000'/);
    expect(() => parseFormatList('pcm44100')).toThrow(/unknown audio format/);
  });
});

describe('resolveAudioCacheDir', () => {
  it('resolves a relative folder under LAMBDA_TASK_ROOT in Lambda, else the current directory; absolute stays', () => {
    expect(resolveAudioCacheDir('audio', { LAMBDA_TASK_ROOT: '/var/task' })).toBe('/var/task/audio');
    expect(resolveAudioCacheDir('build/audio', {})).toBe(join(process.cwd(), 'build/audio'));
    expect(resolveAudioCacheDir('/opt/audio', { LAMBDA_TASK_ROOT: '/var/task' })).toBe('/opt/audio');
  });
});

describe('fileAudioCache', () => {
  it('a missing folder or manifest is an empty cache, not an error', async () => {
    expect(await fileAudioCache(join(tempDir(), 'nope')).get('Hello!', JOANNA, PCM16)).toBeUndefined();
    expect(await fileAudioCache(tempDir()).get('Hello!', JOANNA, PCM16)).toBeUndefined();
    expect(await emptyAudioCache.get('Hello!', JOANNA, PCM16)).toBeUndefined();
  });

  it('round trip: what the build writes, the cache returns (audio, duration, marks); misses for anything else', async () => {
    const dir = tempDir();
    const map = tinyMap();
    const { synthesizer } = fakeSynthesizer();
    const result = await buildAudioCache({ map, synthesizer, voiceFor: voiceFor(), formats: [PCM16, MP3], dir });
    expect(result.failed).toEqual([]);

    const cache = fileAudioCache(dir);
    const ru: Voice = { provider: 'polly', id: 'Tatyana', engine: 'standard', language: 'ru' };
    const hello = await cache.get('Привет!', ru, PCM16);
    expect(hello).toBeDefined();
    // 7 characters × 10 ms at 16 kHz, 16-bit mono.
    expect(hello!.audio.byteLength).toBe(7 * 10 * 32);
    expect(hello!.durationMs).toBe(70);
    expect(hello!.audio[300]).toBe(300 % 251);
    expect(hello!.marks).toEqual([{ timeMs: 0, start: 0, end: 1 }]);
    expect((await cache.get('Goodbye.', JOANNA, MP3))?.audio.byteLength).toBe(8 * 10 * 48);
    // The same object on the second get: kept in memory.
    expect(await cache.get('Привет!', ru, PCM16)).toBe(hello);

    expect(await cache.get('Привет!', { ...ru, provider: 'espeak' }, PCM16)).toBeUndefined();
    expect(await cache.get('Привет!', ru, PCM8)).toBeUndefined();
    expect(await cache.get('Hello', JOANNA, PCM16)).toBeUndefined();
    expect(await cache.get('toString', JOANNA, PCM16)).toBeUndefined();
  });

  it('reads the manifest once and each file on first use only', async () => {
    const dir = tempDir();
    const { synthesizer } = fakeSynthesizer();
    await buildAudioCache({ map: tinyMap(), synthesizer, voiceFor: voiceFor(), formats: [PCM16], dir });
    const cache = fileAudioCache(dir);
    expect(await cache.get('Goodbye.', JOANNA, PCM16)).toBeDefined();
    // Gone from disk after the first use: still served from memory, and the manifest is not read again.
    rmSync(join(dir, 'manifest.json'));
    rmSync(join(dir, `${cacheKey('Goodbye.', JOANNA, PCM16)}.pcm`));
    expect((await cache.get('Goodbye.', JOANNA, PCM16))?.durationMs).toBe(80);
    // A file the manifest names but that was pruned meanwhile is a miss.
    rmSync(join(dir, `${cacheKey('Oops.', JOANNA, PCM16)}.pcm`));
    expect(await cache.get('Oops.', JOANNA, PCM16)).toBeUndefined();
    expect(await fileAudioCache(dir).get('Oops.', JOANNA, PCM16)).toBeUndefined();
  });

  it('validates the manifest: not JSON, a wrong version, a file name that is a path are config.invalid, reported once, and the cache misses', async () => {
    const write = (content: string) => {
      const dir = tempDir();
      writeFileSync(join(dir, 'manifest.json'), content);
      return dir;
    };
    const key = cacheKey('Hi', JOANNA, PCM16);
    const entry = { file: `${key}.pcm`, durationMs: 10, marks: [], text: 'Hi', voice: JOANNA, format: PCM16 };
    const invalid = async (content: string, message: RegExp) => {
      const dir = write(content);
      await expect(readManifest(dir)).rejects.toMatchObject({ code: 'config.invalid', message: expect.stringMatching(message) });
      const errors: unknown[] = [];
      const cache = fileAudioCache(dir, { onError: (err) => errors.push(err) });
      expect(await cache.get('Hi', JOANNA, PCM16)).toBeUndefined();
      expect(await cache.get('Hi', JOANNA, PCM16)).toBeUndefined();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ code: 'config.invalid' });
    };
    await invalid('{nope', /not JSON/);
    await invalid(JSON.stringify({ version: 2, entries: {} }), /version/);
    await invalid(JSON.stringify({ version: 1, entries: { [key]: { ...entry, file: '../../etc/passwd' } } }), /file/);
    await invalid(JSON.stringify({ version: 1, entries: { [key]: { ...entry, format: { format: 'wav', sampleRate: 16000 } } } }), /format/);
    await invalid(JSON.stringify({ version: 1, entries: { 'not-a-key': entry } }), /entries.not-a-key: Invalid key/);
    await expect(readManifest(write(JSON.stringify({ version: 1, entries: { [key]: entry } })))).resolves.toEqual({ version: 1, entries: { [key]: entry } });
  });
});

describe('staticTexts', () => {
  it('covers prompts (cache: and filler:), messages, safe_response, slot prompts, FAQ answers and static tts items in every language; skips templates', () => {
    const texts = staticTexts(tinyMap());
    const by = (language: string) => Object.fromEntries(texts.filter((t) => t.language === language).map((t) => [t.source, t.text]));
    expect(by('en')).toEqual({
      'prompts.cache:hello': 'Hello!',
      'prompts.cache:bye': 'Goodbye.',
      'prompts.filler:wait': 'One moment…',
      'messages.not_understood': 'Sorry?',
      'messages.action_failed': 'Something went wrong.',
      'messages.llm_error': 'No answer now.',
      'messages.llm_timeout': 'Too slow.',
      'messages.internal_error': 'Oops.',
      'llm.safe_response': 'Let us stay friendly.',
      'intents.order.slots.size.prompt': 'Which size?',
      'faq.hours.answer': 'We open at seven.',
      'states.start.system_response.playlist.1': 'Enjoy!',
      'states.start.system_response.reprompt.0': 'Say it again?',
    });
    // Russian: its own translations, and the map's language where there is none (said with the Russian voice, as the runner would).
    expect(by('ru')).toEqual({
      'prompts.cache:hello': 'Привет!',
      'prompts.cache:bye': 'Goodbye.',
      'prompts.filler:wait': 'Минутку…',
      'messages.not_understood': 'Простите?',
      'messages.action_failed': 'Something went wrong.',
      'messages.llm_error': 'No answer now.',
      'messages.llm_timeout': 'Too slow.',
      'messages.internal_error': 'Oops.',
      'llm.safe_response': 'Давайте дружить.',
      'intents.order.slots.size.prompt': 'Какой размер?',
      'faq.hours.answer': 'Открываемся в семь.',
      'states.start.system_response.playlist.1': 'Enjoy!',
      'states.start.system_response.reprompt.0': 'Повторите?',
    });
    expect(texts.some((t) => t.text.includes('{{'))).toBe(false);
    // action_timeout says the same as action_failed: one entry per language.
    expect(texts.filter((t) => t.text === 'Something went wrong.').map((t) => t.language)).toEqual(['en', 'ru']);
  });

  it('holds exactly the texts the runner hands the player for static items (renderSay), in every language', () => {
    const map = tinyMap();
    const texts = staticTexts(map);
    const items: SayItem[] = [
      ...Object.keys(map.prompts).filter((k) => !k.includes('price')).map((key) => ({ type: key.startsWith('filler:') ? ('filler' as const) : ('cache' as const), key })),
      ...MESSAGE_KINDS.map((kind) => ({ type: 'message' as const, kind })),
      { type: 'text', text: map.llm!.safe_response, source: 'llm:safe_response' },
      { type: 'text', text: map.intents.order!.slots.size!.prompt!, source: 'slot:order.size' },
      { type: 'text', text: map.faq[0]!.answer, source: 'faq:hours' },
      ...map.states.start!.system_response.playlist.filter((i) => i.type === 'tts' && !JSON.stringify(i).includes('{{')),
      ...map.states.start!.system_response.reprompt!,
    ];
    for (const language of ['en', 'ru']) {
      const said = renderSay(map, items, { session: { variables: {}, language, node: 'start' } }, 'start').utterances.map((u) => u.text);
      expect(said).toHaveLength(items.length);
      const cached = new Set(texts.filter((t) => t.language === language).map((t) => t.text));
      for (const text of said) expect(cached.has(text), `${language}: ${text}`).toBe(true);
    }
  });

  it('has no safe_response without llm, and covers the sample maps', () => {
    const map = tinyMap();
    const noLlm = { ...map, llm: undefined };
    expect(staticTexts(noLlm).some((t) => t.source === 'llm.safe_response')).toBe(false);
    const sample = loadDialogueMap(JSON.parse(readFileSync('dialogue_map.json', 'utf8')));
    const sources = staticTexts(sample).map((t) => t.source);
    expect(sources).toEqual(expect.arrayContaining(['prompts.cache:welcome', 'prompts.filler:still_working', 'messages.not_understood', 'llm.safe_response']));
    expect(sources.some((s) => s.startsWith('intents.'))).toBe(true);
  });
});

describe('buildAudioCache', () => {
  const countFiles = (dir: string) => readdirSync(dir).filter((f) => f !== 'manifest.json').length;

  it('renders every static text in every format, then a second run reuses all of it (no synthesis)', async () => {
    const dir = tempDir();
    const map = tinyMap();
    const expected = staticTexts(map).length * 2;
    const first = fakeSynthesizer();
    const r1 = await buildAudioCache({ map, synthesizer: first.synthesizer, voiceFor: voiceFor(), formats: [PCM16, MP3], dir, concurrency: 3 });
    expect(r1).toMatchObject({ rendered: expected, reused: 0, failed: [], skippedFormats: [], pruned: 0 });
    expect(first.calls).toHaveLength(expected);
    // Word marks once per text and voice, whatever the number of formats.
    expect(first.markCalls).toHaveLength(staticTexts(map).length);
    expect(countFiles(dir)).toBe(expected);
    const manifest = AudioManifest.parse(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')));
    expect(Object.keys(manifest.entries)).toHaveLength(expected);
    expect(readdirSync(dir).some((f) => f.endsWith('.tmp'))).toBe(false);

    const second = fakeSynthesizer();
    const r2 = await buildAudioCache({ map, synthesizer: second.synthesizer, voiceFor: voiceFor(), formats: [PCM16, MP3], dir });
    expect(r2).toMatchObject({ rendered: 0, reused: expected, failed: [], pruned: 0 });
    expect(second.calls).toHaveLength(0);
    expect(second.markCalls).toHaveLength(0);
  });

  it('renders only what is missing: an edited prompt, a deleted file; the old audio of this provider is pruned', async () => {
    const dir = tempDir();
    const { synthesizer } = fakeSynthesizer();
    await buildAudioCache({ map: tinyMap(), synthesizer, voiceFor: voiceFor(), formats: [PCM16], dir });
    const oldBye = join(dir, `${cacheKey('Goodbye.', JOANNA, PCM16)}.pcm`);
    expect(existsSync(oldBye)).toBe(true);
    rmSync(join(dir, `${cacheKey('Oops.', JOANNA, PCM16)}.pcm`));
    writeFileSync(join(dir, 'notes.txt'), 'not ours');

    const edited = tinyMap({
      prompts: {
        'cache:hello': { en: 'Hello!', ru: 'Привет!' },
        'cache:bye': 'See you.',
        'filler:wait': { en: 'One moment…', ru: 'Минутку…' },
      },
    });
    const again = fakeSynthesizer();
    const r = await buildAudioCache({ map: edited, synthesizer: again.synthesizer, voiceFor: voiceFor(), formats: [PCM16], dir });
    // 'See you.' in both voices; 'Oops.' again for the English voice only (the Russian voice's file is still there).
    expect(again.calls.map((c) => `${c.voice.language}:${c.text}`).sort()).toEqual(['en:Oops.', 'en:See you.', 'ru:See you.']);
    expect(r).toMatchObject({ rendered: 3, failed: [], pruned: 2 });
    expect(existsSync(oldBye)).toBe(false);
    expect(existsSync(join(dir, 'notes.txt'))).toBe(true);
    expect(await fileAudioCache(dir).get('Goodbye.', JOANNA, PCM16)).toBeUndefined();
    expect(await fileAudioCache(dir).get('See you.', JOANNA, PCM16)).toBeDefined();
  });

  it('a text that fails is reported with its source; the others still render and the failure is retried next time', async () => {
    const dir = tempDir();
    const map = tinyMap();
    const { synthesizer } = fakeSynthesizer({ failOn: ['Goodbye.'] });
    const r = await buildAudioCache({ map, synthesizer, voiceFor: voiceFor(), formats: [PCM16], dir });
    expect(r.failed).toEqual([
      { source: 'prompts.cache:bye (en, pcm16000)', error: 'cannot say Goodbye.' },
      { source: 'prompts.cache:bye (ru, pcm16000)', error: 'cannot say Goodbye.' },
    ]);
    expect(r.rendered).toBe(staticTexts(map).length - 2);
    expect(await fileAudioCache(dir).get('Hello!', JOANNA, PCM16)).toBeDefined();

    const fixed = fakeSynthesizer();
    const r2 = await buildAudioCache({ map, synthesizer: fixed.synthesizer, voiceFor: voiceFor(), formats: [PCM16], dir });
    expect(fixed.calls.map((c) => c.text)).toEqual(['Goodbye.', 'Goodbye.']);
    expect(r2).toMatchObject({ rendered: 2, reused: staticTexts(map).length - 2, failed: [] });
  });

  it('stops asking once the service cannot be reached: every remaining text fails at once', async () => {
    const dir = tempDir();
    const map = tinyMap();
    let calls = 0;
    const synthesizer: Synthesizer & { supports(f: AudioFormat): boolean } = {
      provider: 'polly',
      supports: () => true,
      async *synthesize() {
        calls += 1;
        throw new TtsError('tts.connection', 'Polly is unreachable');
      },
    };
    const r = await buildAudioCache({ map, synthesizer, voiceFor: voiceFor(), formats: [PCM16], dir, concurrency: 1 });
    expect(calls).toBe(1);
    expect(r.rendered).toBe(0);
    expect(r.failed).toHaveLength(staticTexts(map).length);
    expect(new Set(r.failed.map((f) => f.error))).toEqual(new Set(['Polly is unreachable']));
  });

  it('skips the formats the synthesizer does not support; no marks without wordMarks', async () => {
    const dir = tempDir();
    const { synthesizer, calls } = fakeSynthesizer({ supports: (f) => f.format === 'pcm', marks: false });
    const r = await buildAudioCache({ map: tinyMap(), synthesizer, voiceFor: voiceFor(), formats: [PCM16, MP3], dir });
    expect(r.skippedFormats).toEqual(['mp3-24000']);
    expect(calls.every((c) => c.format.format === 'pcm')).toBe(true);
    expect(readdirSync(dir).some((f) => f.endsWith('.mp3'))).toBe(false);
    expect((await fileAudioCache(dir).get('Hello!', JOANNA, PCM16))?.marks).toEqual([]);
  });

  it("keeps another provider's entries: an eSpeak build never deletes Polly audio", async () => {
    const dir = tempDir();
    const map = tinyMap();
    await buildAudioCache({ map, synthesizer: fakeSynthesizer().synthesizer, voiceFor: voiceFor('polly'), formats: [PCM16], dir });
    const espeak = fakeSynthesizer({ provider: 'espeak' });
    const r = await buildAudioCache({ map, synthesizer: espeak.synthesizer, voiceFor: voiceFor('espeak'), formats: [PCM16], dir });
    expect(r).toMatchObject({ rendered: staticTexts(map).length, reused: 0, pruned: 0 });
    const cache = fileAudioCache(dir);
    expect(await cache.get('Hello!', JOANNA, PCM16)).toBeDefined();
    expect(await cache.get('Hello!', { ...JOANNA, provider: 'espeak' }, PCM16)).toBeDefined();
    expect(countFiles(dir)).toBe(staticTexts(map).length * 2);
  });

  it('starts over from an invalid manifest without deleting anything it did not write', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'manifest.json'), '{"version": 9}');
    writeFileSync(join(dir, 'keep.pcm'), 'x');
    const r = await buildAudioCache({ map: tinyMap(), synthesizer: fakeSynthesizer().synthesizer, voiceFor: voiceFor(), formats: [PCM16], dir });
    expect(r.failed).toEqual([]);
    expect(existsSync(join(dir, 'keep.pcm'))).toBe(true);
    expect(await readManifest(dir)).toBeDefined();
  });
});


describe('npm run build:audio (scripts/build-audio.ts) with the real local synthesizer', () => {
  // The eSpeak package is an optionalDependency (GPL-3.0): without it there is nothing real to render with.
  it.skipIf(!espeakInstalled)('renders a tiny two-language map into a temp folder, then reuses everything; mp3 is skipped (eSpeak makes pcm only)', async () => {
    const dir = tempDir();
    const mapPath = join(dir, 'tiny_map.json');
    writeFileSync(
      mapPath,
      JSON.stringify({
        name: 'tiny',
        language: 'en',
        languages: ['ru'],
        initial_state: 'start',
        prompts: { 'cache:hello': { en: 'Hello there, welcome!', ru: 'Здравствуйте!' }, 'cache:total': 'It is {{ session.variables.total }}.' },
        messages: Object.fromEntries(['not_understood', 'action_failed', 'action_timeout', 'llm_error', 'llm_timeout', 'internal_error'].map((k) => [k, 'Sorry.'])),
        intents: { yes: { examples: ['yes'] } },
        states: { start: { system_response: { playlist: [{ type: 'cache', key: 'cache:hello' }] } } },
      }),
    );
    const cacheDir = join(dir, 'audio');
    const env = { PARLEY_TTS: 'local', PARLEY_AUDIO_CACHE_DIR: cacheDir, PARLEY_AUDIO_FORMATS: 'pcm16000,mp3-24000' };
    const log: string[] = [];
    const first = await runBuildAudio([mapPath], env, { log: (l) => log.push(l) });
    expect(log).toEqual([]);
    expect(first.code).toBe(0);
    // 'Hello there, welcome!' + 'Sorry.' in English, 'Здравствуйте!' + 'Sorry.' with the Russian voice; no template.
    expect(first.result).toMatchObject({ rendered: 4, reused: 0, failed: [], skippedFormats: ['mp3-24000'] });
    expect(first.line).toMatch(/^build:audio: .*tiny_map\.json -> .*audio: 4 rendered, 0 reused \(en espeak:en-us, ru espeak:ru; pcm16000; mp3-24000 not supported by espeak\) in \d+ ms$/);

    const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
    const hello = await fileAudioCache(cacheDir).get('Hello there, welcome!', mapVoiceFor(map, 'en', 'espeak'), PCM16);
    expect(hello).toBeDefined();
    expect(hello!.durationMs).toBeGreaterThan(500);
    expect(hello!.durationMs).toBe((hello!.audio.byteLength / 2 / 16000) * 1000);
    expect(hello!.marks.length).toBeGreaterThanOrEqual(3);
    expect(hello!.marks[0]).toMatchObject({ start: 0, end: 5 });
    expect(await fileAudioCache(cacheDir).get('Здравствуйте!', mapVoiceFor(map, 'ru', 'espeak'), PCM16)).toBeDefined();

    const second = await runBuildAudio([mapPath], env);
    expect(second.result).toMatchObject({ rendered: 0, reused: 4, failed: [] });
  });
});
