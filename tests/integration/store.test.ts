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

  describe('the session lease: where a running turn and its cancel meet', () => {
    it('a cancel while the turn holds the lease says running, and the turn sees it with what was played', async () => {
      const sessionId = crypto.randomUUID();
      const turnId = crypto.randomUUID();
      await store().beginTurn(sessionId, turnId, 60_000);
      expect(await store().cancelRequested(sessionId, turnId)).toBeUndefined();
      expect(await store().requestCancel(sessionId, turnId, 1234)).toBe('running');
      expect(await store().cancelRequested(sessionId, turnId)).toEqual({ playedMs: 1234, requestedAtMs: now });
      // Another turn's cancel is not this turn's.
      expect(await store().cancelRequested(sessionId, crypto.randomUUID())).toBeUndefined();
    });

    it('a cancel after the release says not running; one between the last poll and the release comes back from endTurn', async () => {
      const sessionId = crypto.randomUUID();
      const turnId = crypto.randomUUID();
      await store().beginTurn(sessionId, turnId, 60_000);
      expect(await store().endTurn(sessionId, turnId)).toBeUndefined();
      expect(await store().requestCancel(sessionId, turnId, 10)).toBe('not_running');

      const late = crypto.randomUUID();
      await store().beginTurn(sessionId, late, 60_000);
      expect(await store().requestCancel(sessionId, late, 500)).toBe('running');
      expect(await store().endTurn(sessionId, late)).toEqual({ playedMs: 500, requestedAtMs: now });
    });

    it('a cancel that arrives before its turn began is found by the turn\'s first poll', async () => {
      const sessionId = crypto.randomUUID();
      const turnId = crypto.randomUUID();
      expect(await store().requestCancel(sessionId, turnId, undefined)).toBe('not_running');
      await store().beginTurn(sessionId, turnId, 60_000);
      expect(await store().cancelRequested(sessionId, turnId)).toEqual({ requestedAtMs: now });
    });

    it('a newer turn owns the lease: the older one\'s release changes nothing', async () => {
      const sessionId = crypto.randomUUID();
      const older = crypto.randomUUID();
      const newer = crypto.randomUUID();
      await store().beginTurn(sessionId, older, 60_000);
      await store().beginTurn(sessionId, newer, 60_000);
      expect(await store().endTurn(sessionId, older)).toBeUndefined();
      expect(await store().requestCancel(sessionId, newer, 1)).toBe('running');
    });
  });
});
