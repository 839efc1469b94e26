import { GetItemCommand, PutItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoSessionStore, meteredSessionStore } from '../../lib/checkpoint/dynamo-store';
import type { TurnRecord } from '../../lib/checkpoint/record';
import { emptyCheckpoint } from '../../lib/checkpoint/schema';
import { itemBytes, numberBytes, writeUnitsOf } from '../../lib/cost/item-size';
import { DynamoMeter, meteredConnections, meteringClient } from '../../lib/cost/meter';
import { DynamoConnectionStore } from '../../lib/session/connections';
import { DynamoRateLimiter } from '../../lib/session/rate-limit';
import { ensureTable, startDynalite, type LocalDynamo } from '../../local/dynamodb';

/*
 * What the cost ledger's DynamoDB units rest on, against dynalite (which returns ConsumedCapacity as
 * DynamoDB does): the item size rule that prices a turn's own commit before it is written, and the
 * per-message meter that must not mix up messages handled at the same time.
 */
describe('DynamoDB units for the cost ledger', () => {
  let dynamo: LocalDynamo;
  const table = 'cost-test';
  const asked: Array<string | undefined> = [];
  const reported: number[] = [];

  beforeAll(async () => {
    dynamo = await startDynalite({});
    await ensureTable(dynamo.client, table);
    // What DynamoDB reports for every call, whoever made it: the independent tally the meters must match.
    dynamo.client.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { ReturnConsumedCapacity?: string };
        asked.push(input.ReturnConsumedCapacity);
        const out = await next(args);
        const c = (out.output as { ConsumedCapacity?: { CapacityUnits?: number } }).ConsumedCapacity;
        if (c) reported.push(c.CapacityUnits ?? 0);
        return out;
      },
      { step: 'initialize', name: 'testTally', priority: 'low' },
    );
  });
  afterAll(async () => {
    await dynamo?.close();
  });

  /** Puts `item` and returns the write units DynamoDB (dynalite) says it consumed. */
  async function consumedByPut(item: Record<string, AttributeValue>): Promise<number> {
    const out = await dynamo.client.send(new PutItemCommand({ TableName: table, Item: item, ReturnConsumedCapacity: 'TOTAL' }));
    return out.ConsumedCapacity!.CapacityUnits!;
  }

  // A small deterministic generator: the same items on every run.
  let seed = 42;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const ascii = (n: number) => Array.from({ length: n }, () => String.fromCharCode(32 + Math.floor(random() * 94))).join('');

  it('predicts the write units of items around the 1 KB steps exactly as DynamoDB counts them', async () => {
    const mismatches: string[] = [];
    for (let i = 0; i < 120; i += 1) {
      // Sizes cluster around 1, 2 and 3 KB so every boundary is crossed from both sides.
      const target = 1024 * (1 + (i % 3)) + Math.floor(random() * 64) - 32;
      const item: Record<string, AttributeValue> = {
        pk: { S: `ITEM#${i}` },
        sk: { S: 'X' },
        n: { N: String(Math.floor(random() * 10 ** (1 + (i % 12)))) },
        f: { N: (random() * 1000).toFixed(i % 6) },
        ...(i % 2 ? { b: { B: Buffer.from(ascii(40)) } } : {}),
      };
      item.s = { S: ascii(Math.max(0, target - itemBytes(item) - 1)) };
      const predicted = writeUnitsOf(item);
      const consumed = await consumedByPut(item);
      if (predicted !== consumed) mismatches.push(`${itemBytes(item)} bytes: predicted ${predicted}, consumed ${consumed}`);
    }
    expect(mismatches).toEqual([]);
  });

  it("sizes every kind of attribute as dynalite's own item size does (ASCII: dynalite counts UTF-16 units, DynamoDB UTF-8 bytes)", () => {
    const require = createRequire(import.meta.url);
    const dynaliteDb = require('dynalite/db/index.js') as { itemSize(item: unknown): number };
    // dynalite holds items in their wire form: binary as base64.
    const wire = (v: AttributeValue): unknown =>
      v.B ? { B: Buffer.from(v.B).toString('base64') } : v.L ? { L: v.L.map(wire) } : v.M ? { M: Object.fromEntries(Object.entries(v.M).map(([k, x]) => [k, wire(x)])) } : v;
    const numbers = ['0', '7', '-12', '0.05', '1795000000', '1795000001', '123456789012345678901234567890', '-0.000120', '1e5', '10', '100.5'];
    const value = (depth: number): AttributeValue => {
      const kind = Math.floor(random() * (depth > 1 ? 5 : 7));
      if (kind === 0) return { S: ascii(Math.floor(random() * 50)) };
      if (kind === 1) return { N: random() < 0.5 ? numbers[Math.floor(random() * numbers.length)]! : String(Math.floor(random() * 1e9) / 10 ** Math.floor(random() * 4)) };
      if (kind === 2) return { B: Buffer.from(ascii(Math.floor(random() * 30))) };
      if (kind === 3) return { BOOL: random() < 0.5 };
      if (kind === 4) return { NULL: true };
      if (kind === 5) return { L: Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1)) };
      return { M: Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, (_, k) => [`k${k}${ascii(3)}`, value(depth + 1)])) };
    };
    for (let i = 0; i < 400; i += 1) {
      const item = Object.fromEntries(Array.from({ length: 1 + Math.floor(random() * 5) }, (_, k) => [`a${k}`, value(0)]));
      const theirs = dynaliteDb.itemSize(Object.fromEntries(Object.entries(item).map(([k, v]) => [k, wire(v)])));
      expect(itemBytes(item), JSON.stringify(wire({ M: item }))).toBe(theirs);
    }
    expect(numberBytes('1795000000')).toBe(numberBytes('1795'));
    expect(numberBytes('-12')).toBe(numberBytes('12') + 1);
  });

  it("knows a turn record's commit units before the commit, plain and compressed, at any size", async () => {
    const store = new DynamoSessionStore({ client: dynamo.client, tableName: table, ttlSeconds: 30 * 86400 });
    const sessionId = crypto.randomUUID();
    const checked: Array<[number, number]> = [];
    for (let seq = 0; seq < 12; seq += 1) {
      const messages = Array.from({ length: seq * 6 }, (_, k) => ({ role: k % 2 ? ('assistant' as const) : ('user' as const), content: `${ascii(20 + k * 7)} ${k}` }));
      const record: TurnRecord = {
        seq,
        turnId: crypto.randomUUID(),
        status: 'completed',
        createdAt: new Date().toISOString(),
        input: { kind: 'text', text: ascii(30) },
        outputs: [{ type: 'response.text.done', turnId: 'x', text: ascii(200 + seq * 300) }],
        events: [],
        usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0, dynamoWriteUnits: seq },
        metrics: { runMs: 1, totalMs: 2 },
        checkpoint: { ...emptyCheckpoint(), currentNode: 'welcome', messages },
      };
      const predicted = store.recordWriteUnits(sessionId, record);
      const meter = new DynamoMeter();
      await store.commitTurn(sessionId, record, meter);
      checked.push([predicted, meter.writeUnits]);
    }
    expect(checked.map(([p]) => p)).toEqual(checked.map(([, c]) => c));
    // Small records and compressed large ones both occur.
    expect(Math.max(...checked.map(([p]) => p))).toBeGreaterThan(1);
  });

  it('meters each message apart, even when their calls interleave, and leaves unmetered calls alone', async () => {
    const store = new DynamoSessionStore({ client: dynamo.client, tableName: table, ttlSeconds: 3600 });
    const big: Record<string, AttributeValue> = { pk: { S: 'SESS#big' }, sk: { S: 'META' }, resumeTokenHash: { S: 'x'.repeat(5000) }, principal: { S: 'p' }, createdAt: { S: new Date().toISOString() }, metadata: { S: '{}' } };
    await dynamo.client.send(new PutItemCommand({ TableName: table, Item: big }));
    const pause = () => new Promise((resolve) => setTimeout(resolve, 1));
    const a = new DynamoMeter();
    const b = new DynamoMeter();
    const viewA = meteredSessionStore(store, a);
    const viewB = meteredSessionStore(store, b);
    await Promise.all([
      (async () => {
        for (let i = 0; i < 3; i += 1) {
          await viewA.getSession('big'); // 5 KB, strongly consistent: 2 read units each
          await pause();
        }
      })(),
      (async () => {
        await viewB.createSession({ sessionId: crypto.randomUUID(), resumeTokenHash: 'h', principal: 'p', createdAt: new Date().toISOString(), metadata: {} });
        await pause();
        await viewB.announceTurn('big', 't', 1);
      })(),
    ]);
    expect([a.readUnits, a.writeUnits]).toEqual([6, 0]);
    expect([b.readUnits, b.writeUnits]).toEqual([0, 2]);

    // Without a meter the call is what it was: no ConsumedCapacity is asked for.
    asked.length = 0;
    await store.getSession('big');
    expect(asked).toEqual([undefined]);
  });

  it('counts a failed conditional write as one unit: DynamoDB charges it but reports nothing', async () => {
    const store = new DynamoSessionStore({ client: dynamo.client, tableName: table, ttlSeconds: 3600 });
    const sessionId = crypto.randomUUID();
    await store.acquireTurn(sessionId, 'first', 1, 60_000);
    const meter = new DynamoMeter();
    const attempt = await store.acquireTurn(sessionId, 'second', 2, 60_000, meter); // held: refused, then the lease is read
    expect(attempt.acquired).toBe(false);
    expect(meter).toMatchObject({ writeUnits: 1, failedConditions: 1, readUnits: 1 });
  });

  it('meters a rate limiter made for the message, and counts connection calls as the units DynamoDB reports', async () => {
    const meter = new DynamoMeter();
    const limiter = new DynamoRateLimiter(meteringClient(dynamo.client, meter), table, { perSecond: 1, burst: 3 }, () => 1_000_000);
    reported.length = 0;
    expect(await limiter.take('c1')).toEqual({ allowed: true }); // a fresh bucket: one update
    expect(await limiter.take('c1')).toEqual({ allowed: true }); // the first condition fails, the second update passes
    expect(meter).toMatchObject({ writeUnits: 3, failedConditions: 1 });
    expect(reported).toEqual([1, 1]);

    const connections = new DynamoConnectionStore(dynamo.client, table);
    const counted = new DynamoMeter();
    const view = meteredConnections(connections, counted);
    reported.length = 0;
    asked.length = 0;
    // The view cannot ask for units (the store is not ours to change): it counts, and DynamoDB agrees.
    const withUnits = new DynamoConnectionStore(meteringClient(dynamo.client, new DynamoMeter()), table);
    const record = { connectionId: 'c1', phase: 'active' as const, principal: 'key-1', sessionId: crypto.randomUUID(), audio: { format: 'pcm' as const, sampleRate: 16000 as const }, connectedAt: new Date().toISOString() };
    await view.create(record);
    await view.get('c1');
    await view.get('missing');
    expect(await view.update({ ...record, phase: 'ready' })).toBe(true);
    expect(await view.update({ ...record, connectionId: 'gone' })).toBe(false);
    await view.delete('c1');
    expect(counted).toMatchObject({ readUnits: 2, writeUnits: 4 });
    reported.length = 0;
    await withUnits.create(record);
    await withUnits.get('c1');
    await withUnits.get('missing');
    await withUnits.update({ ...record, phase: 'ready' });
    await withUnits.delete('c1');
    expect(reported).toEqual([1, 1, 1, 1, 1]);
  });
});
