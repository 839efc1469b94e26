/*
 * Metering DynamoDB per client message. The adapters are shared by every message a process handles
 * (the local runtime runs turns concurrently), so a counter inside them would mix turns up; and an
 * ambient context (AsyncLocalStorage) costs every promise of the process a hook: measured at about
 * 2.5 ms of CPU per turn. So the meter is passed explicitly: each message gets views of the stores
 * that hand its meter to every call (lib/cost/turn.ts meteredDeps). A metered call asks DynamoDB
 * for its ConsumedCapacity, which comes with the answer the call gets anyway: no extra I/O.
 */
import {
  BatchGetItemCommand,
  GetItemCommand,
  QueryCommand,
  ScanCommand,
  TransactGetItemsCommand,
  type ConsumedCapacity,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { ConnectionStore } from '../session/connections';

/** The request units one client message's DynamoDB calls consumed. */
export class DynamoMeter {
  readUnits = 0;
  writeUnits = 0;
  /** Conditional writes that failed: DynamoDB charges them but reports no units (counted as one each). */
  failedConditions = 0;

  add(kind: 'read' | 'write', capacity: ConsumedCapacity | ConsumedCapacity[] | undefined): void {
    for (const c of Array.isArray(capacity) ? capacity : capacity ? [capacity] : []) {
      const units = kind === 'read' ? (c.ReadCapacityUnits ?? c.CapacityUnits) : (c.WriteCapacityUnits ?? c.CapacityUnits);
      if (kind === 'read') this.readUnits += units ?? 0;
      else this.writeUnits += units ?? 0;
    }
  }

  failedCondition(): void {
    this.failedConditions += 1;
    this.writeUnits += 1;
  }
}

type Metered = { ConsumedCapacity?: ConsumedCapacity | ConsumedCapacity[] | undefined };

/**
 * Runs one DynamoDB call for `meter` (none: the call as it was): asks for the units on `input`
 * before `send` builds the command from it, and adds what the answer reports.
 */
export async function metered<T extends Metered>(
  meter: DynamoMeter | undefined,
  kind: 'read' | 'write',
  input: { ReturnConsumedCapacity?: string | undefined },
  send: () => Promise<T>,
): Promise<T> {
  if (!meter) return send();
  input.ReturnConsumedCapacity = 'TOTAL';
  try {
    const out = await send();
    meter.add(kind, out.ConsumedCapacity);
    return out;
  } catch (err) {
    if (kind === 'write' && (err as { name?: unknown }).name === 'ConditionalCheckFailedException') meter.failedCondition();
    throw err;
  }
}

const READS = [GetItemCommand, QueryCommand, ScanCommand, BatchGetItemCommand, TransactGetItemsCommand];

/**
 * `client` for one message: every item call it sends is metered. For adapters that take a client and
 * are cheap to make per message (the rate limiter); the shared client itself is never changed.
 */
export function meteringClient(client: DynamoDBClient, meter: DynamoMeter): DynamoDBClient {
  const send = (command: { input: object }) =>
    metered(meter, READS.some((C) => command instanceof C) ? 'read' : 'write', command.input as { ReturnConsumedCapacity?: string }, () =>
      (client.send as (c: unknown) => Promise<Metered>)(command),
    );
  return { send } as unknown as DynamoDBClient;
}

/**
 * The connection store for one message, counting its calls: a connection item is a few hundred
 * bytes, so each read is one unit (strongly consistent, even when nothing is found) and each write
 * one unit (a failed condition too). Counted when a call settles; one that throws was not billed.
 */
export function meteredConnections(connections: ConnectionStore, meter: DynamoMeter): ConnectionStore {
  const count = async <T>(kind: 'read' | 'write', call: Promise<T>): Promise<T> => {
    const result = await call;
    if (kind === 'read') meter.readUnits += 1;
    else meter.writeUnits += 1;
    return result;
  };
  return {
    create: (record) => count('write', connections.create(record)),
    get: (connectionId) => count('read', connections.get(connectionId)),
    update: (record) => count('write', connections.update(record)),
    delete: (connectionId) => count('write', connections.delete(connectionId)),
  };
}
