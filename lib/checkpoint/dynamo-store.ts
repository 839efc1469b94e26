import {
  ConditionalCheckFailedException,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand,
  type AttributeValue,
  type DynamoDBClient,
  type GetItemCommandInput,
  type PutItemCommandInput,
  type QueryCommandInput,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { writeUnitsOf } from '../cost/item-size';
import { metered, type DynamoMeter } from '../cost/meter';
import { ParleyError } from '../errors';
import { decodeBody, encodeBounded, TurnStatus, type TurnRecord } from './record';
import { cancelOf, type CancelReasonKind, type CancelRequest, type Lease, type LeaseAttempt, type SessionMeta, type SessionStore } from './store';

/*
 * Table layout (one table, pk/sk strings, TTL on `expiresAt`):
 *
 *   pk = SESS#<sessionId>  sk = META              session identity (resume token hash, principal)
 *   pk = SESS#<sessionId>  sk = TURN#0000000000   turn record 0: the greeting, checkpoint after it
 *   pk = SESS#<sessionId>  sk = TURN#0000000001   turn record 1 ...; the newest one is the head
 *   pk = SESS#<sessionId>  sk = LEASE             the running turn (turnId, leaseUntil, arrivedAt), the
 *                                                 newest input waiting (newest, newestTurnId), and the
 *                                                 last cancel (cancelTurnId, cancelReason, playedMs, requestedAt)
 *   pk = CONN#<connId>     sk = CONN              connection binding (lib/session/connections.ts)
 *
 * Commit of turn n:
 *
 *   Lambda A: load head (TURN#n-1) ── run ── PutItem TURN#n  if attribute_not_exists(pk) ── ok
 *   Lambda B: load head (TURN#n-1) ── run ──────────── PutItem TURN#n  ── ConditionalCheckFailed
 *                                                                          └─ turn.conflict
 *
 * One item per commit: atomic without transactions (which dynalite lacks), and a fork of the
 * chain is impossible because TURN#n can be written once.
 */

const SEQ_DIGITS = 10;
const sessionPk = (id: string) => `SESS#${id}`;
const turnSk = (seq: number) => `TURN#${String(seq).padStart(SEQ_DIGITS, '0')}`;
const TURN_PREFIX = 'TURN#';
const recordNotYetWritten = 'attribute_not_exists(pk)';
const LEASE_SK = 'LEASE';

export interface DynamoSessionStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  /** Records expire this long after they are written (DynamoDB TTL in AWS; filtered on read). */
  ttlSeconds: number;
  now?: () => number;
}

export class DynamoSessionStore implements SessionStore {
  private readonly client: DynamoDBClient;
  private readonly table: string;
  private readonly ttlSeconds: number;
  private readonly now: () => number;
  /**
   * The item of a record sized by recordWriteUnits, for its commit: encoding a record (brotli) is
   * most of a commit's CPU, and a turn sizes the very record it then commits. Keyed weakly by the
   * record object, which nothing mutates: an entry is gone with its turn.
   */
  private readonly sized = new WeakMap<TurnRecord, { sessionId: string; item: Record<string, AttributeValue> }>();

  constructor(options: DynamoSessionStoreOptions) {
    this.client = options.client;
    this.table = options.tableName;
    this.ttlSeconds = options.ttlSeconds;
    this.now = options.now ?? Date.now;
  }

  async createSession(meta: SessionMeta, meter?: DynamoMeter): Promise<void> {
    const input: PutItemCommandInput = {
      TableName: this.table,
      Item: {
        pk: { S: sessionPk(meta.sessionId) },
        sk: { S: 'META' },
        resumeTokenHash: { S: meta.resumeTokenHash },
        principal: { S: meta.principal },
        createdAt: { S: meta.createdAt },
        metadata: { S: JSON.stringify(meta.metadata) },
        expiresAt: { N: String(this.expiry()) },
      },
      ConditionExpression: recordNotYetWritten,
    };
    try {
      await metered(meter, 'write', input, () => this.client.send(new PutItemCommand(input)));
    } catch (err) {
      throw this.mapConflict(err, `session ${meta.sessionId} already exists`);
    }
  }

  async getSession(sessionId: string, meter?: DynamoMeter): Promise<SessionMeta | undefined> {
    const input: GetItemCommandInput = { TableName: this.table, Key: { pk: { S: sessionPk(sessionId) }, sk: { S: 'META' } }, ConsistentRead: true };
    const { Item } = await metered(meter, 'read', input, () => this.client.send(new GetItemCommand(input)));
    if (!Item || this.expired(Item)) return undefined;
    return {
      sessionId,
      resumeTokenHash: str(Item, 'resumeTokenHash'),
      principal: str(Item, 'principal'),
      createdAt: str(Item, 'createdAt'),
      metadata: JSON.parse(str(Item, 'metadata')) as Record<string, unknown>,
    };
  }

  /**
   * The sessions the table holds, newest first, with when each started. A scan of the whole table:
   * for tools (`parley sessions`), never on a turn's path.
   */
  async listSessions(limit: number): Promise<Array<{ sessionId: string; createdAt: string }>> {
    const sessions: Array<{ sessionId: string; createdAt: string }> = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: this.table,
          FilterExpression: 'sk = :meta',
          ExpressionAttributeValues: { ':meta': { S: 'META' } },
          ProjectionExpression: 'pk, createdAt',
          ExclusiveStartKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const pk = item.pk?.S ?? '';
        if (pk.startsWith(sessionPk(''))) sessions.push({ sessionId: pk.slice(sessionPk('').length), createdAt: item.createdAt?.S ?? '' });
      }
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return sessions.sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, limit);
  }

  async loadHead(sessionId: string, meter?: DynamoMeter): Promise<TurnRecord | undefined> {
    const input: QueryCommandInput = {
      TableName: this.table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :turn)',
      ExpressionAttributeValues: { ':pk': { S: sessionPk(sessionId) }, ':turn': { S: TURN_PREFIX } },
      ScanIndexForward: false,
      Limit: 1,
      ConsistentRead: true,
    };
    const { Items } = await metered(meter, 'read', input, () => this.client.send(new QueryCommand(input)));
    const item = Items?.[0];
    return item && !this.expired(item) ? fromItem(item) : undefined;
  }

  async commitTurn(sessionId: string, record: TurnRecord, meter?: DynamoMeter): Promise<void> {
    const sized = this.sized.get(record);
    const item = sized?.sessionId === sessionId ? sized.item : this.turnItem(sessionId, record);
    const input: PutItemCommandInput = { TableName: this.table, Item: item, ConditionExpression: recordNotYetWritten };
    try {
      await metered(meter, 'write', input, () => this.client.send(new PutItemCommand(input)));
    } catch (err) {
      // A put whose answer was lost is retried by the SDK and then fails its own condition: if the
      // record there is this turn's, the commit succeeded.
      if (err instanceof ConditionalCheckFailedException && (await this.loadTurn(sessionId, record.seq, meter).catch(() => undefined))?.turnId === record.turnId) return;
      throw this.mapConflict(err, `turn ${record.seq} of session ${sessionId} was committed by another turn`, record.turnId);
    }
  }

  /**
   * The write request units committing `record` will consume: a turn's cost ledger counts its own
   * commit, so the record has to know them before it is written (one item, one unit per started KB).
   */
  recordWriteUnits(sessionId: string, record: TurnRecord): number {
    const item = this.turnItem(sessionId, record);
    this.sized.set(record, { sessionId, item });
    return writeUnitsOf(item);
  }

  private turnItem(sessionId: string, record: TurnRecord): Record<string, AttributeValue> {
    const { body } = encodeBounded(record);
    // The expiry counts from the record's own time, not the put's: so the item, and its size, are
    // known before the put (recordWriteUnits), whatever the clock says by then.
    const createdMs = Date.parse(record.createdAt);
    return {
      pk: { S: sessionPk(sessionId) },
      sk: { S: turnSk(record.seq) },
      turnId: { S: record.turnId },
      status: { S: record.status },
      createdAt: { S: record.createdAt },
      node: { S: record.checkpoint.currentNode ?? '' },
      expiresAt: { N: String(Number.isFinite(createdMs) ? this.expiryFrom(createdMs) : this.expiry()) },
      ...('json' in body ? { body: { S: body.json } } : { bodyZ: { B: body.compressed } }),
    };
  }

  async listTurns(sessionId: string, meter?: DynamoMeter): Promise<TurnRecord[]> {
    const records: TurnRecord[] = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const input: QueryCommandInput = {
        TableName: this.table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :turn)',
        ExpressionAttributeValues: { ':pk': { S: sessionPk(sessionId) }, ':turn': { S: TURN_PREFIX } },
        ConsistentRead: true,
        ExclusiveStartKey,
      };
      const page = await metered(meter, 'read', input, () => this.client.send(new QueryCommand(input)));
      for (const item of page.Items ?? []) if (!this.expired(item)) records.push(fromItem(item));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    return records;
  }

  async loadTurn(sessionId: string, seq: number, meter?: DynamoMeter): Promise<TurnRecord | undefined> {
    const input: GetItemCommandInput = { TableName: this.table, Key: { pk: { S: sessionPk(sessionId) }, sk: { S: turnSk(seq) } }, ConsistentRead: true };
    const { Item } = await metered(meter, 'read', input, () => this.client.send(new GetItemCommand(input)));
    return Item && !this.expired(Item) ? fromItem(Item) : undefined;
  }

  async acquireTurn(sessionId: string, turnId: string, arrivedAt: number, leaseMs: number, meter?: DynamoMeter): Promise<LeaseAttempt> {
    const now = this.now();
    // Only the holder's attributes: a cancel that came first stays, and the first poll finds it.
    const input: UpdateItemCommandInput = {
      TableName: this.table,
      Key: this.leaseKey(sessionId),
      UpdateExpression: 'SET turnId = :t, leaseUntil = :u, arrivedAt = :a, expiresAt = :e',
      ConditionExpression: 'attribute_not_exists(turnId) OR leaseUntil < :now',
      ExpressionAttributeValues: {
        ':t': { S: turnId },
        ':u': { N: String(now + leaseMs) },
        ':a': { N: String(arrivedAt) },
        ':now': { N: String(now) },
        ':e': { N: String(this.expiry()) },
      },
      // What was there before: a holder whose lease expired (it died), the last seq released, the newest waiting.
      ReturnValues: 'ALL_OLD',
    };
    try {
      const { Attributes } = await metered(meter, 'write', input, () => this.client.send(new UpdateItemCommand(input)));
      return { acquired: true, lease: leaseOf(Attributes ?? {}) };
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
      return { acquired: false, lease: await this.readLease(sessionId, meter) };
    }
  }

  async announceTurn(sessionId: string, turnId: string, arrivedAt: number, meter?: DynamoMeter): Promise<void> {
    const input: UpdateItemCommandInput = {
      TableName: this.table,
      Key: this.leaseKey(sessionId),
      UpdateExpression: 'SET newest = :a, newestTurnId = :t, expiresAt = :e',
      // Only a newer input moves the mark (ties broken by turn id, so every caller agrees).
      ConditionExpression: 'attribute_not_exists(newest) OR newest < :a OR (newest = :a AND newestTurnId < :t)',
      ExpressionAttributeValues: { ':a': { N: String(arrivedAt) }, ':t': { S: turnId }, ':e': { N: String(this.expiry()) } },
    };
    try {
      await metered(meter, 'write', input, () => this.client.send(new UpdateItemCommand(input)));
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  async renewTurn(sessionId: string, turnId: string, leaseMs: number, meter?: DynamoMeter): Promise<Lease | undefined> {
    const input: UpdateItemCommandInput = {
      TableName: this.table,
      Key: this.leaseKey(sessionId),
      UpdateExpression: 'SET leaseUntil = :u',
      ConditionExpression: 'turnId = :t',
      ExpressionAttributeValues: { ':t': { S: turnId }, ':u': { N: String(this.now() + leaseMs) } },
      ReturnValues: 'ALL_NEW',
    };
    try {
      const { Attributes } = await metered(meter, 'write', input, () => this.client.send(new UpdateItemCommand(input)));
      return leaseOf(Attributes ?? {});
    } catch (err) {
      // The lease expired and another turn took it: this turn no longer holds the session.
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  async readLease(sessionId: string, meter?: DynamoMeter): Promise<Lease> {
    const input: GetItemCommandInput = { TableName: this.table, Key: this.leaseKey(sessionId), ConsistentRead: true };
    const { Item } = await metered(meter, 'read', input, () => this.client.send(new GetItemCommand(input)));
    return Item && !this.expired(Item) ? leaseOf(Item) : {};
  }

  async requestCancel(sessionId: string, turnId: string, playedMs: number | undefined, reason: CancelReasonKind = 'client', meter?: DynamoMeter): Promise<'running' | 'not_running'> {
    const input: UpdateItemCommandInput = {
      TableName: this.table,
      Key: this.leaseKey(sessionId),
      UpdateExpression: `SET cancelTurnId = :c, requestedAt = :r, cancelReason = :why, expiresAt = :e${playedMs === undefined ? ' REMOVE playedMs' : ', playedMs = :p'}`,
      ExpressionAttributeValues: {
        ':c': { S: turnId },
        ':r': { N: String(this.now()) },
        ':why': { S: reason },
        ':e': { N: String(this.expiry()) },
        ...(playedMs === undefined ? {} : { ':p': { N: String(playedMs) } }),
      },
      ReturnValues: 'ALL_NEW',
    };
    const { Attributes } = await metered(meter, 'write', input, () => this.client.send(new UpdateItemCommand(input)));
    const lease = leaseOf(Attributes ?? {});
    return lease.turnId === turnId && (lease.leaseUntil ?? 0) >= this.now() ? 'running' : 'not_running';
  }

  async cancelRequested(sessionId: string, turnId: string, meter?: DynamoMeter): Promise<CancelRequest | undefined> {
    return cancelOf(await this.readLease(sessionId, meter), turnId);
  }

  async endTurn(sessionId: string, turnId: string, committedSeq?: number, meter?: DynamoMeter): Promise<CancelRequest | undefined> {
    const input: UpdateItemCommandInput = {
      TableName: this.table,
      Key: this.leaseKey(sessionId),
      UpdateExpression: `REMOVE turnId, leaseUntil${committedSeq === undefined ? '' : ' SET lastSeq = :s'}`,
      ConditionExpression: 'turnId = :t',
      ExpressionAttributeValues: { ':t': { S: turnId }, ...(committedSeq === undefined ? {} : { ':s': { N: String(committedSeq) } }) },
      ReturnValues: 'ALL_OLD',
    };
    try {
      const { Attributes } = await metered(meter, 'write', input, () => this.client.send(new UpdateItemCommand(input)));
      return Attributes ? cancelOf(leaseOf(Attributes), turnId) : undefined;
    } catch (err) {
      // Another turn holds the lease now: it took over, nothing of ours to release.
      if (err instanceof ConditionalCheckFailedException) return undefined;
      throw err;
    }
  }

  private leaseKey(sessionId: string): Record<string, AttributeValue> {
    return { pk: { S: sessionPk(sessionId) }, sk: { S: LEASE_SK } };
  }

  private expiry(): number {
    return this.expiryFrom(this.now());
  }

  private expiryFrom(ms: number): number {
    return Math.floor(ms / 1000) + this.ttlSeconds;
  }

  // DynamoDB deletes expired items lazily (and dynalite never): an expired item is treated as gone.
  private expired(item: Record<string, AttributeValue>): boolean {
    const at = item.expiresAt?.N;
    return at !== undefined && Number(at) * 1000 < this.now();
  }

  private mapConflict(err: unknown, message: string, turnId?: string): unknown {
    if (err instanceof ConditionalCheckFailedException) {
      return new ParleyError('turn.conflict', message, turnId ? { turnId, cause: err } : { cause: err });
    }
    return err;
  }
}

function leaseOf(item: Record<string, AttributeValue>): Lease {
  const num = (name: string) => (item[name]?.N === undefined ? undefined : Number(item[name].N));
  const text = (name: string) => item[name]?.S;
  const lease: Lease = {};
  const set = <K extends keyof Lease>(key: K, value: Lease[K] | undefined) => {
    if (value !== undefined) lease[key] = value;
  };
  set('turnId', text('turnId'));
  set('leaseUntil', num('leaseUntil'));
  set('arrivedAt', num('arrivedAt'));
  set('newest', num('newest'));
  set('newestTurnId', text('newestTurnId'));
  set('cancelTurnId', text('cancelTurnId'));
  set('cancelReason', text('cancelReason') as CancelReasonKind | undefined);
  set('playedMs', num('playedMs'));
  set('requestedAt', num('requestedAt'));
  set('lastSeq', num('lastSeq'));
  return lease;
}

function str(item: Record<string, AttributeValue>, name: string): string {
  const value = item[name]?.S;
  if (value === undefined) throw new ParleyError('checkpoint.invalid', `stored item lacks ${name}`);
  return value;
}

function fromItem(item: Record<string, AttributeValue>): TurnRecord {
  const sk = str(item, 'sk');
  const compressed = item.bodyZ?.B;
  const body = decodeBody(compressed ? { compressed } : { json: str(item, 'body') });
  return {
    seq: Number(sk.slice(TURN_PREFIX.length)),
    turnId: str(item, 'turnId'),
    status: TurnStatus.parse(str(item, 'status')),
    createdAt: str(item, 'createdAt'),
    ...body,
  };
}

/**
 * The store for one client message: every call hands `meter` on, so the units it consumes count for
 * that message's turn (lib/cost/turn.ts). `store` may be anything that implements the port (a test
 * wraps the adapter to inject faults); DynamoSessionStore takes the meter as its methods' last
 * argument, others ignore it.
 */
export function meteredSessionStore(store: SessionStore, meter: DynamoMeter): SessionStore {
  const s = store as SessionStore & MeterAware;
  return {
    createSession: (meta) => s.createSession(meta, meter),
    getSession: (sessionId) => s.getSession(sessionId, meter),
    loadHead: (sessionId) => s.loadHead(sessionId, meter),
    commitTurn: (sessionId, record) => s.commitTurn(sessionId, record, meter),
    listTurns: (sessionId) => s.listTurns(sessionId, meter),
    loadTurn: (sessionId, seq) => s.loadTurn(sessionId, seq, meter),
    acquireTurn: (sessionId, turnId, arrivedAt, leaseMs) => s.acquireTurn(sessionId, turnId, arrivedAt, leaseMs, meter),
    announceTurn: (sessionId, turnId, arrivedAt) => s.announceTurn(sessionId, turnId, arrivedAt, meter),
    renewTurn: (sessionId, turnId, leaseMs) => s.renewTurn(sessionId, turnId, leaseMs, meter),
    readLease: (sessionId) => s.readLease(sessionId, meter),
    requestCancel: (sessionId, turnId, playedMs, reason) => s.requestCancel(sessionId, turnId, playedMs, reason, meter),
    cancelRequested: (sessionId, turnId) => s.cancelRequested(sessionId, turnId, meter),
    endTurn: (sessionId, turnId, committedSeq) => s.endTurn(sessionId, turnId, committedSeq, meter),
  };
}

/** The port's methods as DynamoSessionStore implements them: a meter after the port's own arguments. */
type MeterAware = {
  [K in keyof SessionStore]: SessionStore[K] extends (...args: infer A) => infer R ? (...args: [...Required<A> | A, DynamoMeter]) => R : never;
};

