import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import * as z from 'zod';
import { ParleyError } from '../errors';
import { AudioFormat, formatId } from './format';
import type { Voice, WordMark } from './tts/port';

/*
 * The audio cache: static prompts rendered ahead of time (npm run build:audio, npm start), so a
 * cached playlist item costs no TTS call and starts at once.
 *
 * Content-addressed: an entry's key is a hash of exactly what made the audio (the text, the voice,
 * the format). Edit a prompt, change the voice or the engine, and the old entry simply stops
 * matching; eSpeak audio never passes for a Polly voice, because the provider is part of the key.
 *
 * On disk: `<dir>/manifest.json` plus one file per entry (`<key>.pcm` or `<key>.mp3`, raw bytes of
 * the format). The manifest is written last and atomically (lib/speech/build-cache.ts).
 */

/** What is cached for one text, voice and format. */
export interface CachedAudio {
  /** The whole item's audio in its format (pcm: 16-bit LE mono at the rate; mp3: frames). */
  audio: Uint8Array;
  durationMs: number;
  /** Word starts, when the synthesizer had them; else empty. */
  marks: WordMark[];
}

/** Port: rendered audio by text, voice and format; undefined is a miss (synthesize it then). */
export interface AudioCache {
  get(text: string, voice: Voice, format: AudioFormat): Promise<CachedAudio | undefined>;
}

/** A cache that never hits: no cache configured, or nothing rendered. */
export const emptyAudioCache: AudioCache = { get: async () => undefined };

/**
 * The key of an entry: sha256 (hex) of a canonical JSON array of the text (exactly as given: no
 * trimming, no case folding), the provider, the voice id, the engine, the language and the format.
 * Any change to any of them is a different key.
 */
export function cacheKey(text: string, voice: Voice, format: AudioFormat): string {
  const canonical = JSON.stringify(['parley-audio/1', text, voice.provider, voice.id, voice.engine ?? null, voice.language, formatId(format)]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/** The file name of an entry: `<key>.pcm` or `<key>.mp3`. */
export const cacheFileName = (key: string, format: AudioFormat): string => `${key}.${format.format}`;

export const MANIFEST_FILE = 'manifest.json';

const WordMarkSchema = z.object({ timeMs: z.number().min(0), start: z.number().int().min(0), end: z.number().int().min(0) });
const VoiceSchema = z.object({ provider: z.string().min(1), id: z.string().min(1), engine: z.string().min(1).optional(), language: z.string().min(1) });

export const ManifestEntry = z.object({
  /** A bare file name inside the cache folder (never a path: a manifest cannot point outside it). */
  file: z.string().regex(/^[0-9a-f]{64}\.(pcm|mp3)$/, 'a file name "<sha256 hex>.pcm" or ".mp3"'),
  durationMs: z.number().min(0),
  marks: z.array(WordMarkSchema),
  /** What the entry was rendered from, for people reading the manifest and for the build's pruning. */
  text: z.string(),
  voice: VoiceSchema,
  format: AudioFormat,
});
export type ManifestEntry = z.infer<typeof ManifestEntry>;

export const AudioManifest = z.object({
  version: z.literal(1),
  entries: z.record(z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex key'), ManifestEntry),
});
export type AudioManifest = z.infer<typeof AudioManifest>;

/**
 * The manifest of `dir`: undefined when the folder or the file does not exist; a `config.invalid`
 * ParleyError when it is not JSON or not a valid manifest.
 */
export async function readManifest(dir: string): Promise<AudioManifest | undefined> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ParleyError('config.invalid', `audio cache manifest ${path} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = AudioManifest.safeParse(json);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 5).map((i) => `  $.${i.path.join('.')}: ${i.message}`);
    throw new ParleyError('config.invalid', `audio cache manifest ${path} is invalid:\n${lines.join('\n')}`);
  }
  return parsed.data;
}

export interface FileAudioCacheOptions {
  /**
   * Told about a cache that cannot be used: an invalid manifest (once), a file that cannot be read.
   * Default: console.warn. The lookup is then a miss: a broken cache never takes speech down with it.
   */
  onError?: (err: unknown) => void;
}

/**
 * The cache in `dir` (build/audio locally; `audio/` in the turn function's code). The manifest is
 * read once, on the first `get`: a missing folder or manifest is an empty cache, and so is an invalid
 * manifest (reported once through `onError`). Each entry's file is read on its first use, then kept
 * in memory (the content never changes for a key). A file the manifest names but that is gone (a
 * rebuild pruned it under a running process) is a miss. `get` never rejects.
 */
export function fileAudioCache(dir: string, options: FileAudioCacheOptions = {}): AudioCache {
  const onError = options.onError ?? ((err: unknown) => console.warn(`audio cache ${dir}: ${err instanceof Error ? err.message : String(err)}`));
  let manifest: Promise<AudioManifest | undefined> | undefined;
  const loaded = new Map<string, Promise<CachedAudio | undefined>>();

  const load = (key: string, entry: ManifestEntry): Promise<CachedAudio | undefined> =>
    readFile(join(dir, entry.file)).then(
      (bytes) => ({
        audio: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        durationMs: entry.durationMs,
        marks: entry.marks,
      }),
      (err: unknown) => {
        loaded.delete(key); // not remembered: the next get looks again
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onError(err);
        return undefined;
      },
    );

  return {
    async get(text, voice, format) {
      manifest ??= readManifest(dir).catch((err: unknown) => {
        onError(err);
        return undefined;
      });
      const entries = (await manifest)?.entries;
      if (!entries) return undefined;
      const key = cacheKey(text, voice, format);
      if (!Object.hasOwn(entries, key)) return undefined;
      let audio = loaded.get(key);
      if (!audio) {
        audio = load(key, entries[key]!);
        loaded.set(key, audio);
      }
      return audio;
    },
  };
}

/**
 * Where the cache folder is: an absolute `dir` as it is; a relative one under the Lambda task root
 * (`LAMBDA_TASK_ROOT`, where the function's code is unpacked) when running in Lambda, else under the
 * current directory.
 */
export function resolveAudioCacheDir(dir: string, env: Record<string, string | undefined> = process.env): string {
  if (isAbsolute(dir)) return dir;
  return resolve(env.LAMBDA_TASK_ROOT ?? process.cwd(), dir);
}

/** `pcm16000` -> { pcm, 16000 }, `mp3-24000` -> { mp3, 24000 } (the names formatId makes). */
export function parseFormatId(id: string): AudioFormat {
  const m = /^(?:(pcm)-?|(mp3)-?)(\d+)$/.exec(id.trim());
  const parsed = m ? AudioFormat.safeParse({ format: m[1] ?? m[2], sampleRate: Number(m[3]) }) : undefined;
  if (!parsed?.success) {
    throw new ParleyError('config.invalid', `unknown audio format '${id}': use pcm<rate> or mp3-<rate> with a rate of 8000, 16000, 22050 or 24000 (pcm16000, mp3-24000)`);
  }
  return parsed.data;
}

/** A comma-separated list of format ids (PARLEY_AUDIO_FORMATS), deduplicated, in order. */
export function parseFormatList(list: string): AudioFormat[] {
  const formats = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parseFormatId);
  const seen = new Set<string>();
  return formats.filter((f) => !seen.has(formatId(f)) && Boolean(seen.add(formatId(f))));
}
