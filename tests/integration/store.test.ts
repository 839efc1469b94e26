import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import type { TurnRecord } from '../../lib/checkpoint/record';
import { emptyCheckpoint } from '../../lib/checkpoint/schema';
import { ParleyError } from '../../lib/errors';
import { ensureTable, startDynalite, type LocalDynamo } from '../../local/dynamodb';

/** The checkpoint store against dynalite over HTTP. */
describe('DynamoSessionStore', () => {
  let dynamo: LocalDynamo;
  let now = Date.parse('2026-11-21T10:00:00Z');
  const table = 'store-test';
  const store = () => new DynamoSessionStore({ client: dynamo.client, tableName: table, ttlSeconds: 3600, now: () => now });

  beforeAll(async () => {
    dynamo = await startDynalite({});
    await ensureTable(dynamo.client, table);
  });
  afterAll(async () => {
    await dynamo?.close();
  });

  const record = (seq: number, patch: Partial<TurnRecord> = {}): TurnRecord => ({
    seq,
    turnId: crypto.randomUUID(),
    status: 'completed',
    createdAt: new Date(now).toISOString(),
    input: { kind: 'text', text: `turn ${seq}` },
    outputs: [{ type: 'turn.started', turnId: 'x' }],
    events: [],
    usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 },
    metrics: { runMs: 1, totalMs: 2 },
    checkpoint: { ...emptyCheckpoint(), currentNode: `node-${seq}` },
    ...patch,
  });

  it('lets exactly one of two racing commits of the same turn win; the loser gets turn.conflict', async () => {
    const sessionId = crypto.randomUUID();
    await store().commitTurn(sessionId, record(0));
    const a = record(1, { checkpoint: { ...emptyCheckpoint(), currentNode: 'a' } });
    const b = record(1, { checkpoint: { ...emptyCheckpoint(), currentNode: 'b' } });
    const results = await Promise.allSettled([store().commitTurn(sessionId, a), store().commitTurn(sessionId, b)]);
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]!.reason).toBeInstanceOf(ParleyError);
    expect((rejected[0]!.reason as ParleyError).code).toBe('turn.conflict');
    const turns = await store().listTurns(sessionId);
    expect(turns.map((t) => t.seq)).toEqual([0, 1]);
    const head = await store().loadHead(sessionId);
    const winner = results[0]!.status === 'fulfilled' ? a : b;
    expect(head?.turnId).toBe(winner.turnId);
  });

  it('returns the newest record as the head, past the tenth turn (zero-padded sort keys)', async () => {
    const sessionId = crypto.randomUUID();
    for (let seq = 0; seq < 12; seq++) await store().commitTurn(sessionId, record(seq));
    expect((await store().loadHead(sessionId))?.checkpoint.currentNode).toBe('node-11');
  });

  it('stores a large record compressed and reads it back unchanged', async () => {
    const sessionId = crypto.randomUUID();
    const messages = Array.from({ length: 200 }, (_, i) => ({ role: 'user' as const, content: `message number ${i} about coffee` }));
    const big = record(0, { checkpoint: { ...emptyCheckpoint(), messages } });
    await store().commitTurn(sessionId, big);
    const { Item } = await dynamo.client.send(
      new GetItemCommand({ TableName: table, Key: { pk: { S: `SESS#${sessionId}` }, sk: { S: 'TURN#0000000000' } } }),
    );
    expect(Item?.body).toBeUndefined();
    expect(Item?.bodyZ?.B?.length).toBeLessThan(JSON.stringify(messages).length / 3);
    expect((await store().loadHead(sessionId))?.checkpoint).toEqual(big.checkpoint);
  });

  it('treats expired items as gone (dynalite has no TTL; DynamoDB deletes lazily)', async () => {
    const sessionId = crypto.randomUUID();
    await store().createSession({ sessionId, resumeTokenHash: 'ab', principal: 'public', createdAt: 'x', metadata: {} });
    await store().commitTurn(sessionId, record(0));
    const saved = now;
    now += 3601 * 1000;
    expect(await store().loadHead(sessionId)).toBeUndefined();
    expect(await store().getSession(sessionId)).toBeUndefined();
    now = saved;
    expect(await store().getSession(sessionId)).toMatchObject({ sessionId, principal: 'public' });
  });

  it('refuses to create a session whose id exists', async () => {
    const meta = { sessionId: crypto.randomUUID(), resumeTokenHash: 'ab', principal: 'public', createdAt: 'x', metadata: {} };
    await store().createSession(meta);
    await expect(store().createSession(meta)).rejects.toMatchObject({ code: 'turn.conflict' });
  });

  describe('the session lease: one turn at a time, and where a running turn and its cancel meet', () => {
    const take = (sessionId: string, turnId: string, arrivedAt = now) => store().acquireTurn(sessionId, turnId, arrivedAt, 60_000);

    it('a cancel while the turn holds the lease says running, and the turn sees it with what was played', async () => {
      const sessionId = crypto.randomUUID();
      const turnId = crypto.randomUUID();
      expect((await take(sessionId, turnId)).acquired).toBe(true);
      expect(await store().cancelRequested(sessionId, turnId)).toBeUndefined();
      expect(await store().requestCancel(sessionId, turnId, 1234)).toBe('running');
      expect(await store().cancelRequested(sessionId, turnId)).toEqual({ playedMs: 1234, requestedAtMs: now, reason: 'client' });
      // Another turn's cancel is not this turn's.
      expect(await store().cancelRequested(sessionId, crypto.randomUUID())).toBeUndefined();
    });

    it('a cancel after the release says not running; one between the last poll and the release comes back from endTurn', async () => {
      const sessionId = crypto.randomUUID();
      const turnId = crypto.randomUUID();
      await take(sessionId, turnId);
      expect(await store().endTurn(sessionId, turnId)).toBeUndefined();
      expect(await store().requestCancel(sessionId, turnId, 10)).toBe('not_running');

      const late = crypto.randomUUID();
      await take(sessionId, late);
      expect(await store().requestCancel(sessionId, late, 500)).toBe('running');
      expect(await store().endTurn(sessionId, late)).toEqual({ playedMs: 500, requestedAtMs: now, reason: 'client' });
    });

    it("a cancel that arrives before its turn began is found by the turn's first poll", async () => {
      const sessionId = crypto.randomUUID();
      const turnId = crypto.randomUUID();
      expect(await store().requestCancel(sessionId, turnId, undefined)).toBe('not_running');
      await take(sessionId, turnId);
      expect(await store().cancelRequested(sessionId, turnId)).toEqual({ requestedAtMs: now, reason: 'client' });
    });

    it('a held lease refuses a second turn and says who holds it; released or expired, it is free again', async () => {
      const sessionId = crypto.randomUUID();
      const first = crypto.randomUUID();
      const second = crypto.randomUUID();
      // Acquired: the lease as it was before (nobody held it).
      expect(await take(sessionId, first, now - 5)).toEqual({ acquired: true, lease: {} });
      expect(await take(sessionId, second)).toMatchObject({ acquired: false, lease: { turnId: first, arrivedAt: now - 5 } });
      // The holder's release frees it; a stranger's release changes nothing.
      await store().endTurn(sessionId, second);
      expect((await take(sessionId, second)).acquired).toBe(false);
      await store().endTurn(sessionId, first, 4);
      // The release noted the seq it committed.
      expect(await take(sessionId, second)).toMatchObject({ acquired: true, lease: { lastSeq: 4 } });
      // A holder that stops renewing (a crash) loses the lease once it expires; the next one sees it took over.
      const third = crypto.randomUUID();
      now += 61_000;
      expect(await take(sessionId, third)).toMatchObject({ acquired: true, lease: { turnId: second } });
      expect(await store().renewTurn(sessionId, second, 60_000)).toBeUndefined();
      expect(await store().renewTurn(sessionId, third, 60_000)).toMatchObject({ turnId: third, leaseUntil: now + 60_000 });
    });

    it('only a newer input moves the newest-waiting mark (ties broken by turn id)', async () => {
      const sessionId = crypto.randomUUID();
      await store().announceTurn(sessionId, 'b', 100);
      await store().announceTurn(sessionId, 'a', 90);
      expect(await store().readLease(sessionId)).toMatchObject({ newest: 100, newestTurnId: 'b' });
      await store().announceTurn(sessionId, 'a', 100);
      expect(await store().readLease(sessionId)).toMatchObject({ newest: 100, newestTurnId: 'b' });
      await store().announceTurn(sessionId, 'c', 100);
      expect(await store().readLease(sessionId)).toMatchObject({ newest: 100, newestTurnId: 'c' });
    });

    it('loads any committed record by its seq', async () => {
      const sessionId = crypto.randomUUID();
      const zero = record(0);
      await store().commitTurn(sessionId, zero);
      await store().commitTurn(sessionId, record(1));
      expect((await store().loadTurn(sessionId, 0))?.turnId).toBe(zero.turnId);
      expect(await store().loadTurn(sessionId, 7)).toBeUndefined();
    });
  });
});
