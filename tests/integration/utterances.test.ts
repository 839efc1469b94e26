import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DynamoUtteranceStore } from '../../lib/speech/stt/utterances';
import { ensureTable, startDynalite, type LocalDynamo } from '../../local/dynamodb';

/*
 * The chunks of an uploaded utterance in the sessions table, against dynalite: what a commit reads
 * back is exactly what was put, however many query pages it takes, for that turn only, and not
 * what expired or was discarded.
 */
describe('DynamoUtteranceStore (dynalite)', () => {
  let dynamo: LocalDynamo;
  const table = 'utterances-test';
  /** DynamoDB calls by command name, as the client sent them. */
  let calls: string[] = [];
  let store: DynamoUtteranceStore;
  let run = 0;
  /** A session id of its own for each test: nothing one test stores is seen by another. */
  let session = '';

  beforeAll(async () => {
    dynamo = await startDynalite({});
    await ensureTable(dynamo.client, table);
    dynamo.client.middlewareStack.add(
      (next, context) => async (args) => {
        calls.push(context.commandName ?? '?');
        return next(args);
      },
      { step: 'initialize', name: 'testCalls' },
    );
    store = new DynamoUtteranceStore(dynamo.client, table);
  });
  afterAll(async () => {
    await dynamo?.close();
  });
  beforeEach(() => {
    calls = [];
    session = `sess-${++run}`;
  });

  // Deterministic bytes covering every value (0..255): binary must survive as it is.
  let seed = 1;
  const bytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = (seed = (seed * 1103515245 + 12345) % 2 ** 31) >>> 23;
    return out;
  };
  const same = (a: Uint8Array | undefined, b: Uint8Array) => !!a && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

  /** Puts chunks `seqs` of the turn, a few at a time. */
  async function putAll(s: DynamoUtteranceStore, sessionId: string, turnId: string, chunks: Map<number, Uint8Array>) {
    const entries = [...chunks];
    for (let i = 0; i < entries.length; i += 20) {
      await Promise.all(entries.slice(i, i + 20).map(([seq, audio]) => s.put(sessionId, turnId, seq, audio)));
    }
  }

  it('reads back 200 chunks of ~10 KB (more than one 1 MB query page) byte for byte, by sequence number', async () => {
    const sent = new Map<number, Uint8Array>();
    for (let seq = 0; seq < 200; seq++) sent.set(seq, bytes(10_000 + seq * 7));
    await putAll(store, session, 'turn-1', sent);
    calls = [];

    const got = await store.chunks(session, 'turn-1');
    expect(got.size).toBe(200);
    expect([...got.keys()].sort((a, b) => a - b)).toEqual([...sent.keys()]);
    const wrong = [...sent].filter(([seq, audio]) => !same(got.get(seq), audio)).map(([seq]) => seq);
    expect(wrong).toEqual([]);
    // ~2 MB: the reader followed LastEvaluatedKey past the first page.
    expect(calls.filter((c) => c === 'QueryCommand').length).toBeGreaterThanOrEqual(2);
  });

  it('a resent chunk replaces the one stored before it', async () => {
    const first = bytes(500);
    const resent = bytes(700);
    await store.put(session, 'turn-1', 0, bytes(100));
    await store.put(session, 'turn-1', 3, first);
    await store.put(session, 'turn-1', 3, resent);
    const got = await store.chunks(session, 'turn-1');
    expect([...got.keys()].sort()).toEqual([0, 3]);
    expect(same(got.get(3), resent)).toBe(true);
    expect(same(got.get(3), first)).toBe(false);
  });

  it('returns only the chunks of its own session and turn', async () => {
    const mine = bytes(64);
    const otherTurn = bytes(64);
    const otherSession = bytes(64);
    await store.put(session, 'turn-1', 0, mine);
    await store.put(session, 'turn-2', 0, otherTurn);
    await store.put(session, 'turn-2', 1, otherTurn);
    await store.put(`${session}-other`, 'turn-1', 5, otherSession);
    // A turn id that is a prefix of another's is still another turn.
    await store.put(session, 'turn-10', 7, otherTurn);

    const got = await store.chunks(session, 'turn-1');
    expect([...got.keys()]).toEqual([0]);
    expect(same(got.get(0), mine)).toBe(true);
    expect([...(await store.chunks(session, 'turn-2')).keys()].sort()).toEqual([0, 1]);
    expect([...(await store.chunks(`${session}-other`, 'turn-1')).keys()]).toEqual([5]);
    expect((await store.chunks(session, 'turn-3')).size).toBe(0);
  });

  it('discard removes the chunks named, in batches of 25, and leaves the rest and other turns alone', async () => {
    const sent = new Map<number, Uint8Array>();
    for (let seq = 0; seq < 80; seq++) sent.set(seq, bytes(200));
    await putAll(store, session, 'turn-1', sent);
    await store.put(session, 'turn-2', 0, bytes(10));
    calls = [];

    // 60 of the 80: three BatchWriteItem calls (25 + 25 + 10).
    await store.discard(session, 'turn-1', Array.from({ length: 60 }, (_, i) => i));
    expect(calls.filter((c) => c === 'BatchWriteItemCommand')).toHaveLength(3);
    const left = await store.chunks(session, 'turn-1');
    expect([...left.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => 60 + i));
    expect(same(left.get(70), sent.get(70)!)).toBe(true);
    expect((await store.chunks(session, 'turn-2')).size).toBe(1);

    // The rest, from any iterable; discarding nothing sends nothing.
    calls = [];
    await store.discard(session, 'turn-1', new Set(left.keys()));
    await store.discard(session, 'turn-1', []);
    expect(calls.filter((c) => c === 'BatchWriteItemCommand')).toHaveLength(1);
    expect((await store.chunks(session, 'turn-1')).size).toBe(0);
  });

  it('a chunk whose expiry passed is not returned, though dynalite never deletes it', async () => {
    const start = Date.now();
    const elevenMinutesAgo = new DynamoUtteranceStore(dynamo.client, table, () => start - 11 * 60_000);
    const nineMinutesAgo = new DynamoUtteranceStore(dynamo.client, table, () => start - 9 * 60_000);
    await elevenMinutesAgo.put(session, 'turn-1', 0, bytes(50));
    await nineMinutesAgo.put(session, 'turn-1', 1, bytes(50));
    const fresh = bytes(50);
    await store.put(session, 'turn-1', 2, fresh);

    const got = await store.chunks(session, 'turn-1');
    expect([...got.keys()].sort()).toEqual([1, 2]);
    expect(same(got.get(2), fresh)).toBe(true);
    // Read at the time it was written, the old chunk is there: it is the clock that hides it.
    expect([...(await elevenMinutesAgo.chunks(session, 'turn-1')).keys()].sort()).toEqual([0, 1, 2]);
    // Read later still, the nine-minute-old one has expired too.
    const later = new DynamoUtteranceStore(dynamo.client, table, () => start + 2 * 60_000);
    expect([...(await later.chunks(session, 'turn-1')).keys()]).toEqual([2]);
  });
});
