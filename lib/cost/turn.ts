/*
 * A turn's own usage of AWS, metered while it runs and priced when its record is made. The record
 * holds the whole turn, its own commit included, so the quantities that happen after the record is
 * made are known in advance: the put of the record (its size, by DynamoDB's rule), the release of
 * the lease (one unit: the lease item is far below 1 KB) and turn.completed (one message).
 */
import { meteredSessionStore } from '../checkpoint/dynamo-store';
import type { TurnRecord } from '../checkpoint/record';
import type { Usage } from '../protocol/v1';
import type { ConnectionSender } from '../transport/sender';
import { billedMessagesOf } from '../transport/sender';
import { costOf } from './ledger';
import type { TurnDeps } from '../session/context';
import type { RateLimiter } from '../session/rate-limit';
import { DynamoMeter, meteredConnections } from './meter';
import type { PriceTable } from './prices';
import type { CostLedger } from './schema';
import { addMetered, ttsEngineOf, type MeteredUsage } from './usage';

/** What a host gives the turn to price itself (TurnDeps.cost). */
export interface TurnCosting {
  prices: PriceTable;
  /** The turn function's memory: AWS_LAMBDA_FUNCTION_MEMORY_SIZE in Lambda. */
  memoryMb: number;
  /** The write units committing this record will consume (DynamoSessionStore.recordWriteUnits). */
  recordWriteUnits(sessionId: string, record: TurnRecord): number;
  /** The connection's rate bucket (deps.limits.rate) with its calls metered; absent without a rate limit. */
  meteredRate?: ((meter: DynamoMeter) => RateLimiter) | undefined;
  /** The meter of the client message being handled: set per message by meteredDeps. */
  meter?: DynamoMeter | undefined;
}

/**
 * The ports for one client message, metering its DynamoDB units into a meter of its own: the
 * adapters stay shared, the views hand the meter to each call (lib/cost/meter.ts says why).
 */
export function meteredDeps(deps: TurnDeps, meter: DynamoMeter = new DynamoMeter()): TurnDeps {
  const cost = deps.cost;
  if (!cost) return deps;
  const rate = cost.meteredRate && deps.limits?.rate ? cost.meteredRate(meter) : undefined;
  return {
    ...deps,
    store: meteredSessionStore(deps.store, meter),
    connections: meteredConnections(deps.connections, meter),
    ...(rate && deps.limits ? { limits: { ...deps.limits, rate } } : {}),
    cost: { ...cost, meter },
  };
}

/** The lease release after the commit: an update of an item far below 1 KB. */
const RELEASE_WRITE_UNITS = 1;

export interface TurnReading {
  sessionId: string;
  /** The record as the turn made it, usage without the metered fields. */
  draft: TurnRecord;
  /** Who spoke the turn's characters, if anyone. */
  voice: { provider: string; engine?: string | undefined } | undefined;
  /** The client message that started the invocation (API Gateway bills it too). */
  inboundBody: string;
  sender: ConnectionSender;
  /** Since the message reached the handler. */
  elapsedMs: number;
  /** A turn.completed follows the commit (every turn but a stop). */
  completes: boolean;
  /** The record before this one: its size is the first guess at this one's. */
  previous?: TurnRecord | undefined;
}

/**
 * The record with the turn's metered usage, the session's usage with it, and `cost`. The record's
 * own write units depend on its size, which the numbers in it change by a byte or two: the units are
 * found by trying until the record's size agrees with what it says. Each try encodes the record (the
 * store keeps the last encoding for the commit), so the first guess is the previous record's units:
 * records grow slowly, and one try is the rule.
 */
export function meterTurn(costing: TurnCosting, reading: TurnReading): TurnRecord {
  const { draft, sender } = reading;
  const { meter } = costing;
  const lambdaMs = Math.ceil(reading.elapsedMs);
  const engine = reading.voice && ttsEngineOf(reading.voice);
  const outbound = sender.billedMessages;
  const completed = reading.completes && !sender.gone ? 1 : 0;
  const known: MeteredUsage = {
    ...(engine && draft.usage.ttsCharacters > 0 ? { ttsCharactersByEngine: { [engine]: draft.usage.ttsCharacters } } : {}),
    ...(draft.input.kind === 'text' && draft.input.stt && draft.usage.sttSeconds > 0 ? { sttSecondsByProvider: { [draft.input.stt.provider]: draft.usage.sttSeconds } } : {}),
    lambdaRequests: 1,
    lambdaMs,
    lambdaGbSeconds: (lambdaMs / 1000) * (costing.memoryMb / 1024),
    ...(meter ? { dynamoReadUnits: meter.readUnits } : {}),
    ...(outbound === undefined ? {} : { apiGatewayMessages: billedMessagesOf(Buffer.byteLength(reading.inboundBody)) + outbound + completed }),
  };
  const withCommit = (commitUnits: number): TurnRecord => {
    const metered: MeteredUsage = {
      ...known,
      ...(meter ? { dynamoWriteUnits: meter.writeUnits + commitUnits + RELEASE_WRITE_UNITS, dynamoRecordWriteUnits: commitUnits } : {}),
    };
    const usage: Usage = { ...draft.usage, ...metered };
    const session = addMetered(draft.checkpoint.usage, metered);
    return { ...draft, usage, checkpoint: { ...draft.checkpoint, usage: session }, cost: costOf(usage, costing.prices) };
  };
  if (!meter) return withCommit(0);
  let units = reading.previous?.usage.dynamoRecordWriteUnits ?? 1;
  for (let attempt = 0; attempt < 4; attempt += 1) {
    const record = withCommit(units);
    const actual = costing.recordWriteUnits(reading.sessionId, record);
    if (actual === units) return record;
    // Alternating at a KB boundary (rare): the larger count, at most one unit more than the put's.
    units = attempt < 2 ? actual : Math.max(units, actual);
  }
  return withCommit(units);
}

/** turn.completed's cost fields for a committed record. */
export function completedCost(costing: TurnCosting | undefined, record: TurnRecord): { cost?: CostLedger; sessionCost?: CostLedger } {
  if (!costing || !record.cost) return {};
  return { cost: record.cost, sessionCost: costOf(record.checkpoint.usage, costing.prices) };
}
