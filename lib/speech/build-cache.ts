import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ParleyError } from '../errors';
import { languagesOf as languagesOfMap, type DialogueMap } from '../flow/map';
import {
  cacheFileName,
  cacheKey,
  MANIFEST_FILE,
  parseFormatList,
  readManifest,
  resolveAudioCacheDir,
  type AudioManifest,
  type ManifestEntry,
} from './audio-cache';
import { DEFAULT_AUDIO_FORMAT, formatId, type AudioFormat } from './format';
import { concatBytes, mp3DurationMs, pcmDurationMs } from './pcm';
import { staticTexts } from './static-texts';
import { TtsError, type Synthesizer, type Voice, type WordMark } from './tts/port';
import { voiceFor } from './tts/voice';

export interface BuildAudioCacheOptions {
  map: DialogueMap;
  synthesizer: Synthesizer;
  /** The voice of a language (lib/speech/tts/voice.ts voiceFor, bound to the map and the provider). */
  voiceFor: (language: string) => Voice;
  /** Every format to render each text in; those the synthesizer does not support are skipped. */
  formats: AudioFormat[];
  /** The cache folder (created when missing). */
  dir: string;
  /** Syntheses at a time (default 4). */
  concurrency?: number;
}

export interface BuildAudioCacheResult {
  /** Entries synthesized by this run. */
  rendered: number;
  /** Entries already in the cache (same text, voice and format), not synthesized again. */
  reused: number;
  /** Texts that could not be rendered (the others still were): the map path and the error message. */
  failed: { source: string; error: string }[];
  /** Format ids left out because the synthesizer does not support them. */
  skippedFormats: string[];
  /** Files of this provider no longer referenced, deleted. */
  pruned: number;
  ms: number;
}

interface Job {
  key: string;
  text: string;
  source: string;
  voice: Voice;
  format: AudioFormat;
}

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    (s) => s.isFile(),
    () => false,
  );

/** Writes through a temporary file and a rename, so a reader sees the old file or the new one, never half of one. */
async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(tmp, data);
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Renders every static text of the map (lib/speech/static-texts.ts) in every supported format into
 * the content-addressed cache in `dir` (lib/speech/audio-cache.ts): only what is missing is
 * synthesized, so a second run with nothing changed costs no synthesis at all.
 *
 * The new manifest holds what this map references for this synthesizer's voices and formats, plus the
 * entries of other providers as they were (an eSpeak build never deletes the Polly audio a deploy
 * ships, nor the reverse). Files of this provider that are no longer referenced are deleted, but only
 * files the old manifest lists: nothing else in `dir` is ever touched. Audio files are written
 * first, the manifest last, both atomically.
 */
export async function buildAudioCache(options: BuildAudioCacheOptions): Promise<BuildAudioCacheResult> {
  const started = performance.now();
  const { synthesizer, dir } = options;
  const formats = options.formats.filter((f) => synthesizer.supports(f));
  const skippedFormats = options.formats.filter((f) => !formats.includes(f)).map(formatId);

  await mkdir(dir, { recursive: true });
  // A manifest that cannot be read is started over; its files are left alone (they are not known to be ours).
  const old: AudioManifest['entries'] = await readManifest(dir).then(
    (m) => m?.entries ?? {},
    () => ({}),
  );

  const entries: AudioManifest['entries'] = {};
  const jobs: Job[] = [];
  const voices = new Map<string, Voice>();
  let reused = 0;
  for (const { text, language, source } of staticTexts(options.map)) {
    if (!voices.has(language)) voices.set(language, options.voiceFor(language));
    const voice = voices.get(language)!;
    for (const format of formats) {
      const key = cacheKey(text, voice, format);
      if (entries[key] || jobs.some((j) => j.key === key)) continue;
      const previous = Object.hasOwn(old, key) ? old[key] : undefined;
      if (previous && (await exists(join(dir, previous.file)))) {
        entries[key] = previous;
        reused += 1;
      } else {
        jobs.push({ key, text, source, voice, format });
      }
    }
  }

  // Word marks depend on the text and the voice, not the format: asked once for all formats.
  const marks = new Map<string, Promise<WordMark[]>>();
  const marksFor = (job: Job): Promise<WordMark[]> => {
    if (!synthesizer.wordMarks) return Promise.resolve([]);
    const id = JSON.stringify([job.text, job.voice]);
    let pending = marks.get(id);
    if (!pending) {
      pending = synthesizer.wordMarks({ text: job.text, voice: job.voice });
      marks.set(id, pending);
    }
    return pending;
  };

  const failed: BuildAudioCacheResult['failed'] = [];
  let rendered = 0;
  // Once the service cannot be reached at all, the remaining texts fail at once instead of each waiting for it.
  let unreachable: TtsError | undefined;
  const render = async (job: Job): Promise<void> => {
    try {
      if (unreachable) throw unreachable;
      const chunks: Uint8Array[] = [];
      for await (const chunk of synthesizer.synthesize({ text: job.text, voice: job.voice, format: job.format })) chunks.push(chunk);
      const audio = concatBytes(chunks);
      if (audio.byteLength === 0) throw new Error('the synthesizer returned no audio');
      const durationMs = job.format.format === 'pcm' ? pcmDurationMs(audio.byteLength, job.format.sampleRate) : mp3DurationMs(audio);
      const entry: ManifestEntry = {
        file: cacheFileName(job.key, job.format),
        durationMs,
        marks: await marksFor(job),
        text: job.text,
        voice: job.voice,
        format: job.format,
      };
      await writeAtomic(join(dir, entry.file), audio);
      entries[job.key] = entry;
      rendered += 1;
    } catch (err) {
      if (err instanceof TtsError && err.code === 'tts.connection') unreachable ??= err;
      failed.push({ source: `${job.source} (${job.voice.language}, ${formatId(job.format)})`, error: message(err) });
    }
  };
  const queue = [...jobs];
  const workers = Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 4, queue.length)) }, async () => {
    for (let job = queue.shift(); job; job = queue.shift()) await render(job);
  });
  await Promise.all(workers);

  // Other providers' entries stay; this provider's unreferenced ones go (their files after the manifest).
  const stale: ManifestEntry[] = [];
  for (const [key, entry] of Object.entries(old)) {
    if (entries[key]) continue;
    if (entry.voice.provider === synthesizer.provider) stale.push(entry);
    else entries[key] = entry;
  }
  const oldKeys = Object.keys(old);
  const changed = rendered > 0 || stale.length > 0 || oldKeys.length !== Object.keys(entries).length || !(await exists(join(dir, MANIFEST_FILE)));
  if (changed) {
    const manifest: AudioManifest = { version: 1, entries: Object.fromEntries(Object.entries(entries).sort(([a], [b]) => a.localeCompare(b))) };
    await writeAtomic(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 1)}\n`);
  }
  const kept = new Set(Object.values(entries).map((e) => e.file));
  let pruned = 0;
  for (const entry of stale) {
    if (kept.has(entry.file)) continue;
    await rm(join(dir, entry.file), { force: true });
    pruned += 1;
  }

  return { rendered, reused, failed, skippedFormats, pruned, ms: performance.now() - started };
}

/**
 * What to render and where, from PARLEY_AUDIO_FORMATS (default pcm16000) and PARLEY_AUDIO_CACHE_DIR
 * (default `defaultDir`; a relative folder resolves against the current directory). A format that is
 * not known is a `config.invalid` error naming the variable.
 */
export function audioCacheSettings(
  env: { PARLEY_AUDIO_FORMATS?: string | undefined; PARLEY_AUDIO_CACHE_DIR?: string | undefined },
  defaultDir: string,
): { formats: AudioFormat[]; dir: string } {
  let formats: AudioFormat[];
  try {
    formats = env.PARLEY_AUDIO_FORMATS?.trim() ? parseFormatList(env.PARLEY_AUDIO_FORMATS) : [DEFAULT_AUDIO_FORMAT];
  } catch (err) {
    throw new ParleyError('config.invalid', `PARLEY_AUDIO_FORMATS: ${(err as Error).message}`, { cause: err });
  }
  if (!formats.length) formats = [DEFAULT_AUDIO_FORMAT];
  const dir = env.PARLEY_AUDIO_CACHE_DIR?.trim() ? resolveAudioCacheDir(env.PARLEY_AUDIO_CACHE_DIR.trim(), {}) : defaultDir;
  return { formats, dir };
}

/** The voice of each language for the synthesizer's provider (lib/speech/tts/voice.ts), or a config error for a provider it does not know. */
export function voicesFor(map: DialogueMap, synthesizer: Synthesizer): (language: string) => Voice {
  const provider = synthesizer.provider;
  if (provider !== 'polly' && provider !== 'espeak') {
    throw new ParleyError('config.invalid', `no voices for the synthesizer provider '${provider}' (polly or espeak)`);
  }
  return (language) => voiceFor(map, language, provider);
}

/** One line for people: what was rendered, reused, failed, in which voices and formats, and how long it took. */
export function describeAudioBuild(
  result: BuildAudioCacheResult,
  how: { map: DialogueMap; synthesizer: Synthesizer; formats: AudioFormat[]; dir: string },
): string {
  const voice = voicesFor(how.map, how.synthesizer);
  const voices = languagesOfMap(how.map).map((language) => {
    const v = voice(language);
    return `${v.language} ${v.provider}:${v.id}${v.engine ? `/${v.engine}` : ''}`;
  });
  const formats = how.formats.map(formatId).filter((f) => !result.skippedFormats.includes(f));
  return [
    `${result.rendered} rendered, ${result.reused} reused`,
    result.failed.length ? `, ${result.failed.length} failed` : '',
    result.pruned ? `, ${result.pruned} pruned` : '',
    ` (${voices.join(', ')}; ${formats.join(', ') || 'no format'}`,
    result.skippedFormats.length ? `; ${result.skippedFormats.join(', ')} not supported by ${how.synthesizer.provider}` : '',
    `) in ${Math.round(result.ms)} ms`,
  ].join('');
}
