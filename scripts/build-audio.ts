/*
 * npm run build:audio [map path]
 *
 * Renders every static prompt, filler and message of a dialogue map (PARLEY_DIALOGUE_MAP, default
 * ./dialogue_map.json; or the path given) with the configured synthesizer (PARLEY_TTS: auto, polly,
 * local, off) into the content-addressed audio cache (lib/speech/audio-cache.ts), in the formats of
 * PARLEY_AUDIO_FORMATS (default pcm16000), in build/audio (PARLEY_AUDIO_CACHE_DIR overrides). Only
 * what is missing is synthesized. The CDK stack ships build/audio with the turn function: run
 * `PARLEY_TTS=polly npm run build:audio` before `cdk deploy` to ship Polly audio.
 *
 * Prints one summary line; failures one per line on stderr, and exit code 1.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ParleyError } from '../lib/errors';
import { loadDialogueMap } from '../lib/flow/map';
import { audioCacheSettings, buildAudioCache, describeAudioBuild, voicesFor, type BuildAudioCacheResult } from '../lib/speech/build-cache';
import { createSynthesizer, type TtsChoice } from '../lib/speech/tts/configure';
import type { Synthesizer } from '../lib/speech/tts/port';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where build:audio and npm start render the cache, and the CDK stack ships it from. */
export const DEFAULT_AUDIO_CACHE_DIR = join(REPO_ROOT, 'build', 'audio');

const TTS_CHOICES: readonly TtsChoice[] = ['auto', 'polly', 'local', 'off'];

/** PARLEY_TTS, checked. */
export function ttsChoice(value: string | undefined): TtsChoice {
  const choice = (value?.trim() || 'auto') as TtsChoice;
  if (!TTS_CHOICES.includes(choice)) throw new ParleyError('config.invalid', `PARLEY_TTS: '${value}' is not one of ${TTS_CHOICES.join(', ')}`);
  return choice;
}

/** The local (eSpeak, GPL-3.0, optional) synthesizer: loaded only by build-time scripts and the local runtime, never by lib/. */
export const localSynthesizer = (): Promise<Synthesizer> => import('../local/speech/espeak').then((m) => m.createEspeakSynthesizer());

export interface BuildAudioRun {
  /** What happened, or undefined when there is no synthesizer (PARLEY_TTS=off, or auto found none). */
  result?: BuildAudioCacheResult;
  /** The summary line. */
  line: string;
  /** 0, or 1 when a text failed. */
  code: number;
}

/** The whole command, without the process: testable with a temp folder and an environment. */
export async function runBuildAudio(
  args: string[],
  env: Record<string, string | undefined>,
  options: { local?: () => Promise<Synthesizer>; log?: (line: string) => void } = {},
): Promise<BuildAudioRun> {
  const mapPath = resolve(args[0] ?? env.PARLEY_DIALOGUE_MAP ?? 'dialogue_map.json');
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const { formats, dir } = audioCacheSettings(env, DEFAULT_AUDIO_CACHE_DIR);
  const show = (p: string) => {
    const rel = relative(process.cwd(), p);
    return rel && !rel.startsWith('..') ? rel : p;
  };
  const choice = ttsChoice(env.PARLEY_TTS);
  const synthesizer = await createSynthesizer(choice, { env, local: options.local ?? localSynthesizer });
  if (!synthesizer) {
    const why = choice === 'off' ? 'PARLEY_TTS=off' : 'no AWS credentials for Polly and the local eSpeak package is not installed';
    return { line: `build:audio: ${show(mapPath)}: nothing rendered (${why})`, code: 0 };
  }
  try {
    const result = await buildAudioCache({ map, synthesizer, voiceFor: voicesFor(map, synthesizer), formats, dir });
    for (const f of result.failed) options.log?.(`build:audio: ${f.source}: ${f.error}`);
    const line = `build:audio: ${show(mapPath)} -> ${show(dir)}: ${describeAudioBuild(result, { map, synthesizer, formats, dir })}`;
    return { result, line, code: result.failed.length ? 1 : 0 };
  } finally {
    await synthesizer.close?.();
  }
}

async function main(): Promise<number> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const run = await runBuildAudio(process.argv.slice(2), process.env, { log: (line) => process.stderr.write(`${line}\n`) });
  process.stdout.write(`${run.line}\n`);
  return run.code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`build:audio failed: ${err instanceof ParleyError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
