/*
 * Metering DynamoDB per invocation. The stores are shared by every message a process handles (the
 * local runtime runs turns concurrently), so a counter on a store would mix turns up. Instead each
 * client message runs inside its own meter scope (an AsyncLocalStorage, like a trace context), and
 * a middleware on the DynamoDB client asks every call for its ConsumedCapacity and adds it to the
 * meter of the message that made the call. Nothing is read or written for it: the units ride on
 * the responses the calls get anyway.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ConsumedCapacity, DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** The request units one client message's DynamoDB calls consumed, as DynamoDB reported them. */
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
}

const scope = new AsyncLocalStorage<DynamoMeter>();

/** Runs `fn` (the handling of one client message) with a meter of its own. */
export function withDynamoMeter<T>(fn: () => T, meter: DynamoMeter = new DynamoMeter()): T {
  return scope.run(meter, fn);
}

/** The meter of the message being handled; undefined outside any (tests calling a turn directly). */
export const currentDynamoMeter = (): DynamoMeter | undefined => scope.getStore();

const READS = new Set(['GetItemCommand', 'QueryCommand', 'ScanCommand', 'BatchGetItemCommand', 'TransactGetItemsCommand']);
const WRITES = new Set(['PutItemCommand', 'UpdateItemCommand', 'DeleteItemCommand', 'BatchWriteItemCommand', 'TransactWriteItemsCommand']);

/**
 * Adds the metering middleware to `client` (once: adding it again replaces it). Calls made outside
 * a meter scope (the connect function, scripts) are left exactly as they were.
 */
export function meterDynamoDb<C extends Pick<DynamoDBClient, 'middlewareStack'>>(client: C): C {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const meter = scope.getStore();
      const kind = READS.has(context.commandName ?? '') ? 'read' : WRITES.has(context.commandName ?? '') ? 'write' : undefined;
      if (!meter || !kind) return next(args);
      try {
        const result = await next({ ...args, input: { ...(args.input as object), ReturnConsumedCapacity: 'TOTAL' } as typeof args.input });
        meter.add(kind, (result.output as { ConsumedCapacity?: ConsumedCapacity | ConsumedCapacity[] }).ConsumedCapacity);
        return result;
      } catch (err) {
        // Initialize runs outside the SDK's retries: one failed condition per call, whatever was retried.
        if (kind === 'write' && (err as { name?: unknown }).name === 'ConditionalCheckFailedException') {
          meter.failedConditions += 1;
          meter.writeUnits += 1;
        }
        throw err;
      }
    },
    { step: 'initialize', name: 'parleyConsumedCapacity', override: true },
  );
  return client;
}
