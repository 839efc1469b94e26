import { Logger } from '@aws-lambda-powertools/logger';
import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { createConnectHandler } from '../functions/connect/create';
import { createDisconnectHandler } from '../functions/disconnect/create';
import { createTurnHandler } from '../functions/turn/create';
import type { PriceTable } from '../lib/cost/prices';
import type { DialogueMap } from '../lib/flow/map';
import { buildTurnDeps, type HostOptions } from '../lib/host/deps';
import { SDK_CLIENT_DEFAULTS } from '../lib/host/sdk';
import { powertoolsLog, silentLog, type Log, type RedactOptions } from '../lib/observability/log';
import { FunctionEnv, readEnv } from '../lib/config/env';
import type { Clock } from '../lib/runner/ports';
import type { AuthOptions } from '../lib/session/auth';
import type { Ids } from '../lib/session/ids';
import { ApiGatewaySender } from '../lib/transport/sender';
import { connectDynamo, ensureTable, LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite, type LocalDynamo } from './dynamodb';
import { startLocalGateway, type GatewayOptions } from './gateway';
import { webAssets } from './web-assets';
import { demoKitchen } from './demo-kitchen';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NluModel } from '../lib/nlu/train';
import type { LlmPorts } from '../lib/runner/llm-turn';
import { logMetricsSink } from '../lib/observability/metrics';
import type { SpeechDeps } from '../lib/session/dispatch';
import { NO_LIMITS, type LimitSettings } from '../lib/session/limits';
import type { LeaseTiming } from '../lib/session/turn-lease';

export interface LocalRuntimeOptions {
  map: DialogueMap;
  /** The NLU model of `map` (lib/nlu/model-file.ts loadOrTrain). */
  nluModel: NluModel;
  /** Base of relative webhook URLs; defaults to this runtime's own URL (which serves /demo/orders). */
  actionsBaseUrl?: string;
  host?: string;
  port?: number;
  dynamoPort?: number;
  /** LevelDB folder for dynalite; in memory when absent. */
  dataDir?: string;
  /** Use this DynamoDB endpoint instead of starting dynalite in this process. */
  dynamoEndpoint?: string;
  tableName?: string;
  apiKeys?: readonly string[];
  /** API key hashes, JWTs and the resume secret (lib/session/auth.ts). */
  auth?: AuthOptions;
  sessionTtlHours?: number;
  /** Message rate, turns per session, session age (npm start passes the environment's). Default: none. */
  limits?: LimitSettings;
  /** The cost ledger's prices (npm start passes PARLEY_PRICES). Default: lib/cost/prices.ts DEFAULT_PRICES. */
  prices?: PriceTable;
  /** Lambda memory the turns are priced with (AWS_LAMBDA_FUNCTION_MEMORY_SIZE). Default: the stack's 256 MB. */
  lambdaMemoryMb?: number;
  log?: Log;
  clock?: Clock;
  ids?: Ids;
  /** Serve the chat widget on its demo page at `/` (bundled on start with esbuild). */
  servePage?: boolean;
  /** Serve the sample bot's order webhook at /demo/orders (default true). */
  serveDemoKitchen?: boolean;
  /** Injected into webhook actions (tests). */
  fetch?: typeof fetch;
  /** The LLM, when one is configured (OPENAI_API_KEY). */
  llm?: LlmPorts | undefined;
  /** Speech output: the synthesizer (eSpeak locally), the audio cache, the voices. Without it sessions are text only. */
  speech?: SpeechDeps | undefined;
  /** Voice input: a recognizer for uploaded utterances (PARLEY_STT_BASE_URL), Transcribe access (PARLEY_TRANSCRIBE_ROLE_ARN). */
  stt?: HostOptions['stt'];
  /** The session lease's timings (tests shorten them). */
  leaseTiming?: Partial<LeaseTiming>;
  /** Decorate the ports with OpenTelemetry spans; they are recorded once startTracing has run (lib/observability/tracing.ts). */
  tracing?: boolean;
  gateway?: Pick<GatewayOptions, 'idleTimeoutMs' | 'maxConnectionMs' | 'onInvoke' | 'integrationTimeoutMs' | 'asyncRoutes'>;
}

export interface LocalRuntime {
  httpUrl: string;
  wsUrl: string;
  /** The @connections endpoint (what the handlers' management client posts to). */
  callbackUrl: string;
  /** Ids of the open WebSocket connections, newest last. */
  connectionIds(): string[];
  dynamo: LocalDynamo;
  tableName: string;
  close(): Promise<void>;
}

/**
 * The whole product on one machine: dynalite, the local API Gateway, and the very handlers the
 * Lambda functions export, wired with local endpoints instead of AWS ones.
 */
export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const tableName = options.tableName ?? 'parley';
  const log = options.log ?? silentLog;
  const dynamo = options.dynamoEndpoint
    ? connectDynamo(options.dynamoEndpoint)
    : await startDynalite({ host: options.host, port: options.dynamoPort, dataDir: options.dataDir });
  try {
    await ensureTable(dynamo.client, tableName);
    // The gateway's URL is known once it listens; relative webhooks resolve against it lazily.
    let ownUrl = '';
    const deps = buildTurnDeps({
      nluModel: options.nluModel,
      llm: options.llm,
      actionsBaseUrl: () => options.actionsBaseUrl ?? ownUrl,
      ...(options.fetch ? { fetch: options.fetch } : {}),
      dynamo: dynamo.client,
      tableName,
      apiKeys: options.apiKeys ?? [],
      ...(options.auth ? { auth: options.auth } : {}),
      sessionTtlHours: options.sessionTtlHours ?? 24 * 30,
      limits: options.limits ?? NO_LIMITS,
      ...(options.prices ? { prices: options.prices } : {}),
      ...(options.lambdaMemoryMb ? { lambdaMemoryMb: options.lambdaMemoryMb } : {}),
      map: options.map,
      log,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.ids ? { ids: options.ids } : {}),
      ...(options.speech ? { speech: options.speech } : {}),
      ...(options.stt ? { stt: options.stt } : {}),
      ...(options.leaseTiming ? { leaseTiming: options.leaseTiming } : {}),
      metrics: logMetricsSink(log),
      ...(options.tracing ? { tracing: true } : {}),
    });
    // The management client needs the gateway's port, known only once it listens.
    let management: ApiGatewayManagementApiClient | undefined;
    const page = options.servePage ? await webAssets() : undefined;
    const kitchen = options.serveDemoKitchen === false ? undefined : demoKitchen();
    const serveHttp = async (req: IncomingMessage, res: ServerResponse) =>
      (kitchen ? await kitchen(req, res) : false) || (page ? page(req, res) : false);
    const gateway = await startLocalGateway({
      ...options.gateway,
      host: options.host,
      port: options.port,
      handlers: {
        $connect: createConnectHandler({ connections: deps.connections, auth: deps.auth, clock: deps.clock, log }),
        $disconnect: createDisconnectHandler({ connections: deps.connections, log }),
        $default: createTurnHandler(deps, (event) => new ApiGatewaySender(management!, event.requestContext.connectionId, deps.ids.uuid)),
      },
      serveHttp,
    });
    ownUrl = gateway.httpUrl;
    management = new ApiGatewayManagementApiClient({
      endpoint: gateway.callbackUrl,
      region: LOCAL_REGION,
      credentials: LOCAL_CREDENTIALS,
      ...SDK_CLIENT_DEFAULTS,
    });
    return {
      httpUrl: gateway.httpUrl,
      wsUrl: gateway.wsUrl,
      callbackUrl: gateway.callbackUrl,
      connectionIds: () => gateway.connectionIds(),
      dynamo,
      tableName,
      async close() {
        await gateway.close();
        management?.destroy();
        await dynamo.close();
      },
    };
  } catch (err) {
    await dynamo.close();
    throw err;
  }
}

/** Powertools JSON lines on the console, redacted like Lambda's (PARLEY_LOG_REDACT_TEXT read from the environment unless given). */
export function consoleLog(level: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'SILENT', options: RedactOptions = { redactText: readEnv(FunctionEnv.pick({ PARLEY_LOG_REDACT_TEXT: true })).PARLEY_LOG_REDACT_TEXT }): Log {
  return level === 'SILENT' ? silentLog : powertoolsLog(new Logger({ serviceName: 'parley-local', logLevel: level }), options);
}
