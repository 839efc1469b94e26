import { ApiGatewayManagementApiClient } from '@aws-sdk/client-apigatewaymanagementapi';
import { createConnectHandler } from '../../functions/connect/create';
import { createDisconnectHandler } from '../../functions/disconnect/create';
import { createTurnHandler } from '../../functions/turn/create';
import { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import type { DialogueMap } from '../../lib/flow/map';
import { buildTurnDeps } from '../../lib/host/deps';
import type { WebSocketEvent } from '../../lib/host/events';
import { SDK_CLIENT_DEFAULTS } from '../../lib/host/sdk';
import type { NluModel } from '../../lib/nlu/train';
import { memoryLog, type Log } from '../../lib/observability/log';
import type { LlmPorts } from '../../lib/runner/llm-turn';
import type { SpeechDeps, TurnDeps } from '../../lib/session/dispatch';
import type { LeaseTiming } from '../../lib/session/turn-lease';
import { ApiGatewaySender } from '../../lib/transport/sender';
import { connectDynamo, ensureTable, LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite, type LocalDynamo } from '../../local/dynamodb';
import { demoKitchen } from '../../local/demo-kitchen';
import { startLocalGateway } from '../../local/gateway';
import { faultyDeps, faultySender, Faults } from './faults';

/**
 * Two "Lambdas" over one table, behind the real local gateway: every client message runs in the
 * healthy one, except the turns a test routes to the faulty one (by turn id), whose ports are the
 * same real adapters behind `faults`. So a turn can die in one invocation and the next input be
 * handled by another, as in AWS, with nothing shared between them but DynamoDB.
 */
export interface TwoLambdas {
  wsUrl: string;
  httpUrl: string;
  /** A store of its own over the table, for the test's reads. */
  store: DynamoSessionStore;
  faults: Faults;
  healthy: TurnDeps;
  faulty: TurnDeps;
  /** The faulty Lambda's log (every line of it). */
  faultyLog: Log & { lines: Array<Record<string, unknown>> };
  /** Runs the message of this turn id in the faulty Lambda. */
  routeToFaulty(turnId: string): void;
  /** Resolves once every invocation of the faulty Lambda has returned; rejects if one threw (a handler crash). */
  faultyIdle(): Promise<void>;
  close(): Promise<void>;
}

export interface TwoLambdasOptions {
  map: DialogueMap;
  nluModel: NluModel;
  leaseTiming: Partial<LeaseTiming>;
  /** A fresh LLM per Lambda (each builds its own clients). */
  llm?: () => LlmPorts | undefined;
  speech?: SpeechDeps;
  log?: Log;
  /** Changes a Lambda's deps before the faults go on (the faulty one's) or as they are (the healthy one's). */
  wrap?: (deps: TurnDeps, lambda: 'healthy' | 'faulty') => TurnDeps;
}

export async function startTwoLambdas(options: TwoLambdasOptions): Promise<TwoLambdas> {
  const dynamo: LocalDynamo = await startDynalite({});
  const tableName = 'faults';
  await ensureTable(dynamo.client, tableName);
  const faults = new Faults();
  const faultyLog = memoryLog();
  let ownUrl = '';
  const clients: LocalDynamo[] = [];
  const lambda = (log: Log): TurnDeps => {
    const own = connectDynamo(dynamo.endpoint); // each Lambda has its own SDK client
    clients.push(own);
    return buildTurnDeps({
      dynamo: own.client,
      tableName,
      apiKeys: [],
      sessionTtlHours: 1,
      map: options.map,
      nluModel: options.nluModel,
      log,
      llm: options.llm?.(),
      actionsBaseUrl: () => ownUrl,
      leaseTiming: options.leaseTiming,
      ...(options.speech ? { speech: options.speech } : {}),
    });
  };
  const wrap = options.wrap ?? ((deps) => deps);
  const healthy = wrap(lambda(options.log ?? memoryLog()), 'healthy');
  const faulty = faultyDeps(wrap(lambda(faultyLog), 'faulty'), faults);

  let management: ApiGatewayManagementApiClient | undefined;
  const sender = (event: WebSocketEvent) => new ApiGatewaySender(management!, event.requestContext.connectionId, () => crypto.randomUUID());
  const healthyTurn = createTurnHandler(healthy, sender);
  const faultyTurn = createTurnHandler(faulty, (event) => faultySender(sender(event), faults));
  const faultyTurns = new Set<string>();
  const running = new Set<Promise<unknown>>();
  const crashes: unknown[] = [];
  const kitchen = demoKitchen();

  const gateway = await startLocalGateway({
    handlers: {
      $connect: createConnectHandler({ connections: healthy.connections, auth: healthy.auth, clock: healthy.clock, log: healthy.log }),
      $disconnect: createDisconnectHandler({ connections: healthy.connections, log: healthy.log }),
      $default: async (event, context) => {
        if (!faultyTurns.has(turnIdOf(event.body))) return healthyTurn(event, context);
        const invocation = faultyTurn(event, context);
        running.add(invocation);
        try {
          const result = await invocation;
          // middy's last line of defence answers a handler that threw with a 500: that is a crash too.
          if (result && result.statusCode >= 500) crashes.push(new Error(`status ${result.statusCode}`));
          return result;
        } catch (err) {
          crashes.push(err);
          throw err;
        } finally {
          running.delete(invocation);
        }
      },
    },
    serveHttp: kitchen,
  });
  ownUrl = gateway.httpUrl;
  management = new ApiGatewayManagementApiClient({ endpoint: gateway.callbackUrl, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS, ...SDK_CLIENT_DEFAULTS });

  return {
    wsUrl: gateway.wsUrl,
    httpUrl: gateway.httpUrl,
    store: new DynamoSessionStore({ client: dynamo.client, tableName, ttlSeconds: 3600 }),
    faults,
    healthy,
    faulty,
    faultyLog,
    routeToFaulty: (turnId) => void faultyTurns.add(turnId),
    async faultyIdle() {
      while (running.size) await Promise.allSettled([...running]);
      if (crashes.length) throw new Error(`the faulty Lambda's handler crashed: ${String(crashes[0])}`);
    },
    async close() {
      faults.reset();
      await gateway.close();
      management?.destroy();
      for (const c of clients) await c.close();
      await dynamo.close();
    },
  };
}

function turnIdOf(body: string | undefined): string {
  try {
    const parsed: unknown = JSON.parse(body ?? '');
    return parsed && typeof parsed === 'object' && 'turnId' in parsed && typeof parsed.turnId === 'string' ? parsed.turnId : '';
  } catch {
    return '';
  }
}
