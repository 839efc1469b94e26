import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { webhookRunner } from '../actions/webhook';
import { DynamoSessionStore } from '../checkpoint/dynamo-store';
import { meteringClient } from '../cost/meter';
import { DEFAULT_LAMBDA_MEMORY_MB, DEFAULT_PRICES, type PriceTable } from '../cost/prices';
import type { TurnCosting } from '../cost/turn';
import { buildFaqIndex } from '../faq/minisearch-index';
import type { IntentClassifier } from '../flow/classifier';
import type { DialogueMap } from '../flow/map';
import { ParleyError } from '../errors';
import { isModelCurrent } from '../nlu/model';
import type { NluModel } from '../nlu/train';
import type { Log } from '../observability/log';
import { noMetricsSink, type TurnMetricsSink } from '../observability/metrics';
import { traceDynamo, tracedActions, tracedLlmPorts, tracedSynthesizer } from '../observability/tracing';
import type { LlmPorts } from '../runner/llm-turn';
import { systemClock, type Clock } from '../runner/ports';
import { createAuth, type AuthOptions } from '../session/auth';
import { DynamoConnectionStore } from '../session/connections';
import type { SpeechDeps, SttDeps, TurnDeps } from '../session/dispatch';
import { EarlyWork } from '../session/early-work';
import { DynamoUtteranceStore } from '../speech/stt/utterances';
import type { LeaseTiming } from '../session/turn-lease';
import { cryptoIds, type Ids } from '../session/ids';
import { createLimits, NO_LIMITS, type LimitSettings } from '../session/limits';
import { DynamoRateLimiter } from '../session/rate-limit';

export interface HostOptions {
  dynamo: DynamoDBClient;
  tableName: string;
  apiKeys: readonly string[];
  /** API key hashes, JWTs and the resume secret (lib/session/auth.ts); `apiKeys` above are added to it. */
  auth?: AuthOptions;
  sessionTtlHours: number;
  map: DialogueMap;
  /** The NLU model trained from `map` at build time (npm run build:nlu). */
  nluModel: NluModel;
  /** Relative webhook URLs in the map resolve against this (PARLEY_ACTIONS_BASE_URL); a function when known late. */
  actionsBaseUrl?: string | (() => string);
  log: Log;
  /** Where each committed turn's timings go (CloudWatch EMF in Lambda). Default: nowhere. */
  metrics?: TurnMetricsSink;
  /** Speech output (a synthesizer, the audio cache, voices); without it sessions are text only. */
  speech?: SpeechDeps;
  /**
   * Voice input: Transcribe access for live transcription on the client (PARLEY_TRANSCRIBE_ROLE_ARN)
   * and a recognizer for uploaded utterances (PARLEY_STT_BASE_URL). Without either, a session asking
   * for voice input gets `stt.unavailable`.
   */
  stt?: Omit<SttDeps, 'utterances'>;
  /** The session lease's timings (tests shorten them). */
  leaseTiming?: Partial<LeaseTiming>;
  /** The LLM, when one is configured. */
  llm?: LlmPorts | undefined;
  clock?: Clock;
  ids?: Ids;
  fetch?: typeof fetch;
  /** Rate, turns and session age (PARLEY_RATE_*, PARLEY_MAX_*: limitsFromEnv). Default: none; the hosts pass the environment's. */
  limits?: LimitSettings;
  /** The cost ledger's prices (PARLEY_PRICES). Default: lib/cost/prices.ts DEFAULT_PRICES. */
  prices?: PriceTable;
  /** The turn function's memory, for Lambda GB-seconds (AWS_LAMBDA_FUNCTION_MEMORY_SIZE). Default: the stack's 256 MB. */
  lambdaMemoryMb?: number;
  /**
   * Decorate the ports with OpenTelemetry spans (PARLEY_TRACING; lib/observability/tracing.ts). Spans
   * are recorded once startTracing has run; without this flag the ports are the bare adapters.
   */
  tracing?: boolean;
}

/**
 * nlp.js and the model load on the first classification, not at import: the invocations a session
 * starts with (hello, session.start) never classify, and the load is a one-time cost of ~10 ms plus
 * ~30 ms of module import that every cold start would otherwise pay up front.
 */
function lazyClassifier(map: DialogueMap, model: NluModel): IntentClassifier {
  // A model trained for another map is still refused at cold start: the check is cheap, the load is not.
  if (!isModelCurrent(map, model)) throw new ParleyError('map.invalid', 'the NLU model does not match the dialogue map; run `npm run build:nlu`');
  let loaded: Promise<IntentClassifier> | undefined;
  return {
    async classify(text, options) {
      loaded ??= import('../nlu/load').then((nlu) => nlu.loadNluClassifier(map, model));
      return (await loaded).classify(text, options);
    },
  };
}


/** The adapters every host wires the same way; hosts differ only in the clients they pass. */
export function buildTurnDeps(options: HostOptions): TurnDeps {
  const clock = options.clock ?? systemClock;
  const deps = buildPorts(options, clock);
  if (!options.tracing) return deps;
  // The one place the ports get their spans: the runner never knows. The DynamoDB client is shared
  // by every store (and by the host's own connection lookups), so its middleware covers them all.
  traceDynamo(options.dynamo);
  const synthesizer = deps.speech?.synthesizer;
  return {
    ...deps,
    actions: tracedActions(deps.actions),
    llm: tracedLlmPorts(deps.llm),
    speech: deps.speech && synthesizer ? { ...deps.speech, synthesizer: tracedSynthesizer(synthesizer) } : deps.speech,
  };
}

/** A message's own rate limiter over the shared bucket, its calls metered (a limiter is two fields: cheap per message). */
function rateLimiter(options: HostOptions, clock: Clock): TurnCosting['meteredRate'] {
  const settings = options.limits ?? NO_LIMITS;
  if (settings.ratePerSecond <= 0) return undefined;
  const rate = { perSecond: settings.ratePerSecond, burst: settings.rateBurst };
  return (meter) => new DynamoRateLimiter(meteringClient(options.dynamo, meter), options.tableName, rate, () => clock.nowMs());
}

function buildPorts(options: HostOptions, clock: Clock): TurnDeps {
  const store = new DynamoSessionStore({
    client: options.dynamo,
    tableName: options.tableName,
    ttlSeconds: options.sessionTtlHours * 3600,
    now: () => clock.nowMs(),
  });
  return {
    store,
    connections: new DynamoConnectionStore(options.dynamo, options.tableName, () => clock.nowMs()),
    map: options.map,
    classifier: lazyClassifier(options.map, options.nluModel),
    faq: buildFaqIndex(options.map),
    actions: webhookRunner(options.map, {
      log: options.log,
      // A map can name its webhooks relative to the deployment (`/orders`), so one map serves every stage.
      baseUrl: options.actionsBaseUrl,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    }),
    llm: options.llm,
    auth: createAuth({ ...options.auth, apiKeys: [...new Set([...options.apiKeys, ...(options.auth?.apiKeys ?? [])])] }),
    clock,
    ids: options.ids ?? cryptoIds,
    log: options.log,
    metrics: options.metrics ?? noMetricsSink,
    limits: createLimits(options.limits ?? NO_LIMITS, { client: options.dynamo, tableName: options.tableName, now: () => clock.nowMs() }),
    speech: options.speech,
    ...voiceInput(options, clock),
    leaseTiming: options.leaseTiming,
    cost: {
      prices: options.prices ?? DEFAULT_PRICES,
      memoryMb: options.lambdaMemoryMb ?? DEFAULT_LAMBDA_MEMORY_MB,
      recordWriteUnits: (sessionId, record) => store.recordWriteUnits(sessionId, record),
      meteredRate: rateLimiter(options, clock),
    },
  };
}

/** Voice input when a recognizer or Transcribe access is configured: where uploads wait, and the work partials prepare. */
function voiceInput(options: HostOptions, clock: Clock): Pick<TurnDeps, 'stt' | 'early'> {
  if (!options.stt?.access && !options.stt?.transcriber) return {};
  return {
    stt: { ...options.stt, utterances: new DynamoUtteranceStore(options.dynamo, options.tableName, () => clock.nowMs()) },
    // Only what partial transcripts prepared lives here: this host's memory, bounded, never a conversation's state.
    early: new EarlyWork({ now: () => clock.nowMs() }),
  };
}
