import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoSessionStore } from '../checkpoint/dynamo-store';
import { keywordClassifier } from '../flow/classifier';
import type { DialogueMap } from '../flow/map';
import type { Log } from '../observability/log';
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
  log: Log;
  clock?: Clock;
  ids?: Ids;
}

/** The adapters every host wires the same way; hosts differ only in the clients they pass. */
export function buildTurnDeps(options: HostOptions): TurnDeps {
  const clock = options.clock ?? systemClock;
  return {
    store: new DynamoSessionStore({
      client: options.dynamo,
      tableName: options.tableName,
      ttlSeconds: options.sessionTtlHours * 3600,
      now: () => clock.nowMs(),
    }),
    connections: new DynamoConnectionStore(options.dynamo, options.tableName, () => clock.nowMs()),
    map: options.map,
    classifier: keywordClassifier(options.map),
    auth: apiKeyAuth(options.apiKeys),
    clock,
    ids: options.ids ?? cryptoIds,
    log: options.log,
  };
}
