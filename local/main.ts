import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { CostEnv, LocalEnv, readEnv } from '../lib/config/env';
import { limitsFromEnv } from '../lib/session/limits';
import { ParleyError } from '../lib/errors';
import { loadDialogueMap } from '../lib/flow/map';
import { loadOrTrain, REPO_ROOT } from '../lib/nlu/model-file';
import type { DialogueMap } from '../lib/flow/map';
import { fileAudioCache, type AudioCache } from '../lib/speech/audio-cache';
import { audioCacheSettings, buildAudioCache, voicesFor } from '../lib/speech/build-cache';
import { createSynthesizer } from '../lib/speech/tts/configure';
import type { Synthesizer } from '../lib/speech/tts/port';
import type { SpeechDeps } from '../lib/session/dispatch';
import { llmPortsFactory } from '../lib/llm/configure';
import { transcriberFromEnv } from '../lib/speech/stt/openai-transcriber';
import { transcribeAccessFromEnv } from '../lib/speech/stt/transcribe-access';
import { secretsManagerSecret } from '../lib/host/secrets';
import { authOptionsFromEnv, describeAuth, type AuthOptions } from '../lib/session/auth';
import { localResumeSecret } from './resume-secret';
import { consoleLog, startLocalRuntime } from './runtime';
import { startTracingFromEnv } from '../lib/observability/tracing';

/** `npm start`: the chat runner on this machine, on embedded defaults. */
async function main(): Promise<void> {
  // Lambda runs Node 22; on a laptop with Node 20 the SDK's upgrade notice is noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const env = readEnv(LocalEnv);
  const costEnv = readEnv(CostEnv);
  const mapPath = resolve(env.PARLEY_DIALOGUE_MAP);
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const nlu = await loadOrTrain(map, mapPath);
  if (nlu.trained) process.stdout.write(`Trained the NLU model for ${mapPath} in ${Math.round(nlu.ms)} ms (saved for next time).\n`);
  // Speech: the synthesizer PARLEY_TTS picks (the local eSpeak one is loaded only here, never from lib/), and the audio
  // cache of the map's static prompts, brought up to date before the runtime says it is ready.
  const synthesizer = await createSynthesizer(env.PARLEY_TTS, {
    local: () => import('./speech/espeak').then((m) => m.createEspeakSynthesizer()),
  });
  const speech: SpeechDeps | undefined = synthesizer
    ? { synthesizer, cache: await prepareAudioCache(map, synthesizer, env), voiceFor: voicesFor(map, synthesizer) }
    : undefined;
  // Resume tokens are HMACs of the session id: without PARLEY_RESUME_SECRET the secret is made once and kept in the
  // data folder, so tokens survive a restart as the sessions do.
  const fromEnv = authOptionsFromEnv(env, (secretId) => secretsManagerSecret(secretId));
  const auth: AuthOptions = { ...fromEnv, resumeSecret: fromEnv.resumeSecret ?? localResumeSecret(resolve(env.PARLEY_DATA_DIR)) };
  const log = consoleLog(env.PARLEY_LOG_LEVEL);
  const tracing = await startTracingFromEnv(env, log);
  // Voice input: your own recognizer (PARLEY_STT_BASE_URL) for uploads; Transcribe when AWS credentials and a role are set.
  const stt = { transcriber: transcriberFromEnv(env), access: transcribeAccessFromEnv({ ...env, AWS_REGION: process.env.AWS_REGION }) };
  const runtime = await startLocalRuntime({
    tracing: tracing !== undefined,
    map,
    nluModel: nlu.model,
    llm: llmPortsFactory(env)(env.OPENAI_API_KEY),
    speech,
    stt,
    ...(env.PARLEY_ACTIONS_BASE_URL ? { actionsBaseUrl: env.PARLEY_ACTIONS_BASE_URL } : {}),
    host: env.PARLEY_HOST,
    port: env.PARLEY_PORT,
    dynamoPort: env.PARLEY_DYNAMODB_PORT,
    dataDir: resolve(env.PARLEY_DATA_DIR),
    ...(env.PARLEY_DYNAMODB_ENDPOINT ? { dynamoEndpoint: env.PARLEY_DYNAMODB_ENDPOINT } : {}),
    tableName: env.PARLEY_TABLE,
    apiKeys: env.PARLEY_API_KEYS,
    auth,
    sessionTtlHours: env.PARLEY_SESSION_TTL_HOURS,
    limits: limitsFromEnv(env),
    prices: costEnv.PARLEY_PRICES,
    lambdaMemoryMb: costEnv.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    log,
    servePage: true,
  });
  const keyHint = env.PARLEY_API_KEYS.length ? '?apiKey=<one of PARLEY_API_KEYS>' : auth.apiKeyHashes?.length ? '?apiKey=<a key>' : auth.jwt ? '?token=<a JWT>' : '';
  process.stdout.write(
    [
      `Parley is running with "${map.name}" (${mapPath}), ${env.OPENAI_API_KEY ? `LLM ${env.OPENAI_MODEL}${env.OPENAI_BASE_URL ? ` at ${env.OPENAI_BASE_URL}` : ''}` : 'no LLM (set OPENAI_API_KEY)'}`,
      ``,
      `  Chat in the browser:   ${runtime.httpUrl}/`,
      `  Chat in the terminal:  npm run chat`,
      `  WebSocket:             ${runtime.wsUrl}/${keyHint}`,
      env.PARLEY_DYNAMODB_ENDPOINT
        ? `  DynamoDB:              ${runtime.dynamo.endpoint}  table "${runtime.tableName}"`
        : `  DynamoDB (dynalite):   ${runtime.dynamo.endpoint}  table "${runtime.tableName}", data in ${resolve(env.PARLEY_DATA_DIR)}`,
      `  Authentication:        ${describeAuth(auth)}`,
      `  Tracing:               ${tracing ? `OTLP to ${otlpTracesEndpoint()}` : 'off (PARLEY_TRACING=otlp turns it on)'}`,
      `  Speech:                ${!synthesizer ? 'off (text only; PARLEY_TTS)' : synthesizer.provider === 'polly' ? 'Amazon Polly' : 'eSpeak NG, local'}${synthesizer ? ' (the speaker button in the widget turns it on)' : ''}`,
      `  Voice input:           ${describeStt(stt, env.PARLEY_STT_BASE_URL)}`,
      ``,
      `Press Ctrl+C to stop.`,
      ``,
    ].join('\n'),
  );
  const stop = async () => {
    await runtime.close();
    await tracing?.shutdown();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

function describeStt(stt: { transcriber: unknown; access: unknown }, baseUrl: string | undefined): string {
  const ways = [...(stt.access ? ['Amazon Transcribe, live in the browser'] : []), ...(stt.transcriber ? [`uploads to ${baseUrl}`] : [])];
  return ways.length ? ways.join('; ') : 'off (set PARLEY_STT_BASE_URL to an OpenAI-compatible recognizer; the microphone still interrupts)';
}

/** Where the OTLP exporter sends spans, as it reads the standard variables. */
function otlpTracesEndpoint(): string {
  const specific = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (specific) return specific;
  const base = process.env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || 'http://localhost:4318';
  return `${base.replace(/\/$/, '')}/v1/traces`;
}

/**
 * Renders what the audio cache misses (like the NLU model: only when something changed, saved for
 * next time) and returns the cache. A failure is a warning: text works without audio, and a missed
 * prompt is synthesized when it is said.
 */
async function prepareAudioCache(
  map: DialogueMap,
  synthesizer: Synthesizer,
  env: { PARLEY_AUDIO_FORMATS?: string | undefined; PARLEY_AUDIO_CACHE_DIR?: string | undefined },
): Promise<AudioCache> {
  const { formats, dir } = audioCacheSettings(env, join(REPO_ROOT, 'build', 'audio'));
  const rel = relative(process.cwd(), dir);
  const show = rel && !rel.startsWith('..') ? rel : dir;
  try {
    const result = await buildAudioCache({ map, synthesizer, voiceFor: voicesFor(map, synthesizer), formats, dir });
    if (result.rendered) {
      process.stdout.write(`Rendered ${result.rendered} prompts to ${show} in ${Math.round(result.ms)} ms (${synthesizer.provider}; saved for next time).\n`);
    }
    const [first] = result.failed;
    if (first) {
      process.stderr.write(
        `Warning: ${result.failed.length} prompts could not be rendered to ${show} (${first.source}: ${first.error}); they are synthesized when said.\n`,
      );
    }
  } catch (err) {
    process.stderr.write(`Warning: the audio cache in ${show} could not be built (${err instanceof Error ? err.message : String(err)}); speech is synthesized when said.\n`);
  }
  return fileAudioCache(dir);
}

main().catch((err: unknown) => {
  const code = (err as NodeJS.ErrnoException).code;
  const message =
    err instanceof ParleyError
      ? err.message
      : code === 'EADDRINUSE'
        ? `port ${(err as { port?: number }).port ?? ''} is in use: stop what runs there or set PARLEY_PORT`
        : ((err as Error).stack ?? String(err));
  process.stderr.write(`${message}\n`);
  process.exit(1);
});
