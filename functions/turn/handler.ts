import mapJson from '../../dialogue_map.json';
// Trained at build time (npm run build:nlu, run by `npm install` and before every synth).
import nluModel from '../../build/nlu/dialogue_map.nlu.json';
import { ParleyError } from '../../lib/errors';
import { loadDialogueMap } from '../../lib/flow/map';
import { buildTurnDeps } from '../../lib/host/deps';
import { CostEnv, readEnv } from '../../lib/config/env';
import { authOptions, dynamo, env, log, metrics, senderFor } from '../../lib/host/lambda';
import { SDK_CLIENT_DEFAULTS } from '../../lib/host/sdk';
import type { NluModel } from '../../lib/nlu/train';
import { llmKeyFrom, llmKeyMiddlewares } from '../../lib/host/llm-key';
import { flushTraces } from '../../lib/host/middleware';
import { startTracingFromEnv, tracedLlmPorts } from '../../lib/observability/tracing';
import { llmPortsFactory } from '../../lib/llm/configure';
import { fileAudioCache, resolveAudioCacheDir } from '../../lib/speech/audio-cache';
import { lazySynthesizer } from '../../lib/speech/tts/lazy';
import { pollySupports } from '../../lib/speech/tts/polly-formats';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { SpeechDeps } from '../../lib/session/dispatch';
import { limitsFromEnv } from '../../lib/session/limits';
import { transcriberFromEnv } from '../../lib/speech/stt/openai-transcriber';
import { transcribeAccessFromEnv } from '../../lib/speech/stt/transcribe-access';
import { createTurnHandler } from './create';

/** The cost ledger's prices (PARLEY_PRICES) and the function's memory: only turns are priced, so only this function reads them; a bad price table stops its cold start. */
const costEnv = readEnv(CostEnv);

// The map is bundled into the function and compiled once per container, never per turn.
const map = loadDialogueMap(mapJson);

if (env.PARLEY_TTS === 'local') throw new ParleyError('config.invalid', 'PARLEY_TTS=local: the local synthesizer exists only in npm start; use polly, auto or off');

/** Polly speaks (the function's role may call SynthesizeSpeech); the audio cache ships in the function's code. */
const speech: SpeechDeps | undefined =
  env.PARLEY_TTS === 'off'
    ? undefined
    : {
        // The Polly client loads with the first audio request: a text-only cold start never pays for it.
        synthesizer: lazySynthesizer('polly', pollySupports, async () => {
          const [{ PollyClient }, { PollySynthesizer }] = await Promise.all([import('@aws-sdk/client-polly'), import('../../lib/speech/tts/polly')]);
          return new PollySynthesizer(new PollyClient({ ...SDK_CLIENT_DEFAULTS }));
        }),
        cache: fileAudioCache(resolveAudioCacheDir(env.PARLEY_AUDIO_CACHE_DIR ?? 'audio')),
        voiceFor: (language) => voiceFor(map, language, 'polly'),
      };

// Voice input: Transcribe access for live clients (the STS client is made now, cheap; it connects on first use),
// and an OpenAI-compatible recognizer for uploaded utterances.
const stt = {
  access: transcribeAccessFromEnv({ PARLEY_TRANSCRIBE_ROLE_ARN: env.PARLEY_TRANSCRIBE_ROLE_ARN, AWS_REGION: process.env.AWS_REGION }),
  transcriber: transcriberFromEnv(env),
};

// PARLEY_TRACING=otlp: the SDK loads while the container initializes; off (the default), nothing loads.
const tracing = startTracingFromEnv(env, log);

const deps = buildTurnDeps({
  tracing: tracing !== undefined,
  dynamo,
  tableName: env.PARLEY_TABLE,
  apiKeys: env.PARLEY_API_KEYS,
  auth: authOptions,
  sessionTtlHours: env.PARLEY_SESSION_TTL_HOURS,
  limits: limitsFromEnv(env),
  prices: costEnv.PARLEY_PRICES,
  lambdaMemoryMb: costEnv.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  map,
  nluModel: nluModel as NluModel,
  ...(env.PARLEY_ACTIONS_BASE_URL ? { actionsBaseUrl: env.PARLEY_ACTIONS_BASE_URL } : {}),
  log,
  metrics,
  ...(speech ? { speech } : {}),
  stt,
});

const llmFor = llmPortsFactory(env, { log });

export const handler = createTurnHandler(deps, senderFor, {
  before: [...(tracing ? [flushTraces(tracing)] : []), ...llmKeyMiddlewares(env)],
  llmFor: (context) => {
    const ports = llmFor(llmKeyFrom(context, env));
    return tracing ? tracedLlmPorts(ports) : ports;
  },
});
