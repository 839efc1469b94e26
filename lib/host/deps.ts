import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { webhookRunner } from '../actions/webhook';
import { DynamoSessionStore } from '../checkpoint/dynamo-store';
import { buildFaqIndex } from '../faq/minisearch-index';
import type { DialogueMap } from '../flow/map';
import { loadNluClassifier } from '../nlu/load';
import type { NluModel } from '../nlu/train';
import type { Log } from '../observability/log';
import type { LlmPorts } from '../runner/llm-turn';
import { systemClock, type Clock } from '../runner/ports';
import { apiKeyAuth } from '../session/auth';
import { DynamoConnectionStore } from '../session/connections';
import type { TurnDeps } from '../session/dispatch';
import { cryptoIds, type Ids } from '../session/ids';

export interface HostOptions {
  dynamo: DynamoDBClient;
  tableName: string;
  apiKeys: readonly string[];
  sessionTtlHours: number;
  map: DialogueMap;
  /** The NLU model trained from `map` at build time (npm run build:nlu). */
  nluModel: NluModel;
  /** Relative webhook URLs in the map resolve against this (PARLEY_ACTIONS_BASE_URL); a function when known late. */
  actionsBaseUrl?: string | (() => string);
  log: Log;
  /** The LLM, when one is configured. */
  llm?: LlmPorts | undefined;
  clock?: Clock;
  ids?: Ids;
  fetch?: typeof fetch;
}

/** The adapters every host wires the same way; hosts differ only in the clients they pass. */
export function buildTurnDeps(options: HostOptions): TurnDeps {
  const clock = options.clock ?? systemClock;
  const baseFetch = options.fetch ?? fetch;
  const base = options.actionsBaseUrl;
  const baseUrl = typeof base === 'function' ? base : () => base;
  return {
    store: new DynamoSessionStore({
      client: options.dynamo,
      tableName: options.tableName,
      ttlSeconds: options.sessionTtlHours * 3600,
      now: () => clock.nowMs(),
    }),
    connections: new DynamoConnectionStore(options.dynamo, options.tableName, () => clock.nowMs()),
    map: options.map,
    classifier: loadNluClassifier(options.map, options.nluModel),
    faq: buildFaqIndex(options.map),
    actions: webhookRunner(options.map, {
      log: options.log,
      // A map can name its webhooks relative to the deployment (`/orders`), so one map serves every stage.
      fetch: (url: Parameters<typeof fetch>[0], init?: RequestInit) => {
        const root = baseUrl();
        return baseFetch(root && typeof url === 'string' && url.startsWith('/') ? new URL(url, root) : url, init);
      },
    }),
    llm: options.llm,
    auth: apiKeyAuth(options.apiKeys),
    clock,
    ids: options.ids ?? cryptoIds,
    log: options.log,
  };
}
