import { afterEach, describe, expect, it } from 'vitest';
import { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import type { ServerEvent, ServerEventOf } from '../../lib/protocol/v1';
import type { Clock } from '../../lib/runner/ports';
import { DynamoConnectionStore } from '../../lib/session/connections';
import { NO_LIMITS, type LimitSettings } from '../../lib/session/limits';
import { DynamoRateLimiter, takeToken } from '../../lib/session/rate-limit';
import type { LocalRuntime } from '../../local/runtime';
import { recordFault } from '../support/fault-table';
import { sessionItems, startRuntime, tableSnapshot, TestClient } from './harness';

/*
 * Limits through the real gateway, handlers and dynalite. Time is the wall clock plus an offset the
 * tests move forward: the handlers, the stores and the rate limiter all read it.
 */

class SkippingClock implements Clock {
  offsetMs = 0;
  nowMs(): number {
    return Date.now() + this.offsetMs;
  }
  monotonicMs(): number {
    return performance.now();
  }
}

let runtime: LocalRuntime | undefined;
const clients: TestClient[] = [];

afterEach(async () => {
  clients.splice(0).forEach((c) => c.close());
  await runtime?.close();
  runtime = undefined;
});

async function start(limits: Partial<LimitSettings>, more: { sessionTtlHours?: number } = {}) {
  const clock = new SkippingClock();
  runtime = await startRuntime({ clock, limits: { ...NO_LIMITS, ...limits }, ...more });
  const store = new DynamoSessionStore({ client: runtime.dynamo.client, tableName: runtime.tableName, ttlSeconds: (more.sessionTtlHours ?? 720) * 3600, now: () => clock.nowMs() });
  return { clock, runtime, store };
}

async function connect(): Promise<TestClient> {
  const client = await TestClient.connect(runtime!.wsUrl);
  clients.push(client);
  return client;
}

const isError = (e: ServerEvent): e is ServerEventOf<'error'> => e.type === 'error';

/** Lets the previous turn's lease release land before a snapshot. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 300));

describe('message rate per connection (token bucket in DynamoDB)', () => {
  it('a burst: the excess gets rate.limited with a retry hint and is not stored; later messages pass again', async () => {
    // 3 at once, then one every 5 s: hello and session.start take two, one is left for the burst.
    const { clock, store } = await start({ ratePerSecond: 0.2, rateBurst: 3 });
    const client = await connect();
    const { started } = await client.open();

    const turnIds = Array.from({ length: 6 }, () => crypto.randomUUID());
    for (const [i, turnId] of turnIds.entries()) client.send({ type: 'input.text', turnId, text: i % 2 ? 'what time do you open?' : 'a small tea', sessionId: started.sessionId });
    const errors: ServerEventOf<'error'>[] = [];
    const completed: string[] = [];
    while (errors.length + completed.length < turnIds.length) {
      const event = await client.take();
      if (isError(event)) errors.push(event);
      if (event.type === 'turn.completed') completed.push(event.turnId);
    }
    expect(completed).toHaveLength(1);
    expect(errors).toHaveLength(5);
    for (const error of errors) {
      expect(error).toMatchObject({ code: 'rate.limited', retryAfterMs: 5000, message: expect.stringContaining('retry in 5000 ms') });
      expect(turnIds).toContain(error.turnId);
    }
    expect(new Set([...completed, ...errors.map((e) => e.turnId)]).size).toBe(6);

    // Only the turn that passed is stored: the greeting and that one.
    const records = await store.listTurns(started.sessionId);
    expect(records.map((r) => r.turnId).slice(1)).toEqual(completed);
    for (const error of errors) expect(records.some((r) => r.turnId === error.turnId)).toBe(false);

    // Still empty: one more is refused and changes nothing.
    await settle();
    const before = await sessionItems(runtime!);
    expect(await client.say('a small tea')).toEqual([expect.objectContaining({ type: 'error', code: 'rate.limited' })]);
    expect(await sessionItems(runtime!)).toEqual(before);

    // A token every 5 s: after it, one message passes, the next is refused again.
    clock.offsetMs += 5000;
    expect((await client.say('a small tea')).at(-1)).toMatchObject({ type: 'turn.completed' });
    expect((await client.say('yes')).at(-1)).toMatchObject({ type: 'error', code: 'rate.limited' });
    clock.offsetMs += 5000;
    expect((await client.say('yes')).at(-1)).toMatchObject({ type: 'turn.completed' });
    expect(await store.listTurns(started.sessionId)).toHaveLength(4);
    recordFault({
      area: 'limits',
      fault: '6 inputs at once on a connection with one token left (0.2/s, burst 3)',
      outcome: `${completed.length} of ${turnIds.length} runs, ${errors.length} get \`${errors[0]?.code}\` (retryAfterMs ${errors[0]?.retryAfterMs}) and are not stored; later messages pass again as tokens come`,
    });
  });

  it('every message counts, hello included, and each connection has its own bucket', async () => {
    await start({ ratePerSecond: 0.2, rateBurst: 2 });
    const a = await connect();
    a.send({ type: 'hello', version: '1' });
    await a.next('hello.ack');
    a.send({ type: 'hello', version: '1' });
    await expect(a.next('error')).resolves.toMatchObject({ code: 'protocol.order' }); // passed the bucket, refused by the order
    a.send({ type: 'session.start' });
    await expect(a.next('error')).resolves.toMatchObject({ code: 'rate.limited' });

    const b = await connect();
    await b.open(); // a fresh bucket: hello and session.start pass
    recordFault({ area: 'limits', fault: 'a third message on a connection with a burst of 2 (hello and bad input count too)', outcome: '`rate.limited`; another connection has a bucket of its own' });
  });

  it('the DynamoDB bucket decides as the pure one does, message for message', async () => {
    await start({});
    let now = 1_000_000;
    const settings = { perSecond: 4, burst: 5 };
    const limiter = new DynamoRateLimiter(runtime!.dynamo.client, runtime!.tableName, settings, () => now);
    let tat: number | undefined;
    // Bursts, pauses and a steady trickle, in 10 ms steps.
    const gaps = [0, 0, 0, 0, 0, 0, 0, 10, 240, 0, 0, 260, 250, 250, 100, 100, 100, 2000, 0, 0, 0, 0, 0, 0, 0, 70, 180, 10, 240];
    for (const gap of gaps) {
      now += gap;
      const expected = takeToken(tat, now, settings);
      const got = await limiter.take('conn-1');
      expect(got.allowed, `at ${now}`).toBe(expected.allowed);
      if (expected.allowed) tat = expected.tat;
      else expect((got as { retryAfterMs: number }).retryAfterMs).toBeGreaterThanOrEqual(expected.retryAfterMs);
    }
    // Racing invocations cannot share the last tokens: 5 in a bucket, 12 at once, 5 pass.
    const fresh = await Promise.all(Array.from({ length: 12 }, () => limiter.take('conn-2')));
    expect(fresh.filter((d) => d.allowed)).toHaveLength(5);
    // The item is RATE#<connection>, with a TTL.
    const items = (await tableSnapshot(runtime!)).filter((i) => i.pk?.S?.startsWith('RATE#'));
    expect(items.map((i) => [i.pk?.S, i.sk?.S, typeof i.expiresAt?.N])).toEqual([
      ['RATE#conn-1', 'RATE', 'string'],
      ['RATE#conn-2', 'RATE', 'string'],
    ]);
  });
});

describe('turns per session and session age', () => {
  it('text longer than 4,000 characters is refused by the protocol, storing nothing', async () => {
    await start({});
    const client = await connect();
    await client.open();
    await settle();
    const before = await sessionItems(runtime!);
    const turnId = crypto.randomUUID();
    expect(await client.say('x'.repeat(4001), turnId)).toEqual([expect.objectContaining({ type: 'error', code: 'protocol.invalid_message', turnId })]);
    expect(await sessionItems(runtime!)).toEqual(before);
    recordFault({ area: 'limits', fault: 'input.text of 4,001 characters', outcome: '`protocol.invalid_message` with the turnId; nothing stored' });
  });

  it('refuses input beyond the turn limit with session.limit, storing nothing; a retried turn still gets its outcome', async () => {
    const { store } = await start({ maxTurns: 2 });
    const client = await connect();
    const { started } = await client.open();
    expect((await client.say('a small tea')).at(-1)).toMatchObject({ type: 'turn.completed' });
    const last = crypto.randomUUID();
    expect((await client.say('yes', last)).at(-1)).toMatchObject({ type: 'turn.completed' });
    await settle();
    const before = await sessionItems(runtime!);

    const refused = crypto.randomUUID();
    const events = await client.say('and a cookie', refused);
    expect(events).toEqual([
      expect.objectContaining({ type: 'error', code: 'session.limit', turnId: refused, message: 'this session reached its limit of 2 turns; start a new session' }),
    ]);
    expect(await sessionItems(runtime!)).toEqual(before);
    expect((await store.listTurns(started.sessionId)).map((r) => r.seq)).toEqual([0, 1, 2]);
    // A client retry of a committed turn is no new turn: its stored outcome comes back.
    expect((await client.say('yes', last)).at(-1)).toMatchObject({ type: 'turn.completed', turnId: last });
    expect(await sessionItems(runtime!)).toEqual(before);

    // The limit is on new turns: stopping still works, and a new session starts fresh.
    client.send({ type: 'session.stop' });
    await client.until('session.stopped');
    client.send({ type: 'session.start' });
    await client.next('session.started');
    await client.until('turn.completed');
    expect((await client.say('a small tea')).at(-1)).toMatchObject({ type: 'turn.completed' });
    recordFault({
      area: 'limits',
      fault: 'input beyond the turn limit (2 turns)',
      outcome: `\`${events[0]?.type === 'error' ? events[0].code : events[0]?.type}\`; nothing stored; a retried committed turn id still gets its outcome; session.stop and a new session work`,
    });
  });

  it('refuses input to a session older than the age limit, whether its last turn is old or recent', async () => {
    const { clock, store } = await start({ maxSessionAgeMs: 3600_000 });
    const client = await connect();
    const { started } = await client.open();
    clock.offsetMs += 50 * 60_000;
    expect((await client.say('a small tea')).at(-1)).toMatchObject({ type: 'turn.completed' }); // 50 minutes old

    // 70 minutes after the start but 20 after the last turn: the start comes from the session's META item.
    clock.offsetMs += 20 * 60_000;
    await settle();
    const before = await sessionItems(runtime!);
    const turnId = crypto.randomUUID();
    expect(await client.say('yes', turnId)).toEqual([
      expect.objectContaining({ type: 'error', code: 'session.limit', turnId, message: 'this session is older than 1 hour; start a new session' }),
    ]);
    expect(await sessionItems(runtime!)).toEqual(before);
    expect(await store.listTurns(started.sessionId)).toHaveLength(2);

    // A new session on a new connection is not affected.
    const fresh = await connect();
    await fresh.open();
    expect((await fresh.say('a small tea')).at(-1)).toMatchObject({ type: 'turn.completed' });
    recordFault({ area: 'limits', fault: 'input to a session older than the age limit (its last turn recent)', outcome: '`session.limit`; nothing stored; a new session is not affected' });
  });

  it('an old last turn alone is enough to refuse (no read of the start needed)', async () => {
    const { clock } = await start({ maxSessionAgeMs: 3600_000 });
    const client = await connect();
    await client.open();
    clock.offsetMs += 61 * 60_000;
    expect((await client.say('a small tea')).at(-1)).toMatchObject({ type: 'error', code: 'session.limit' });
  });
});

describe('idle expiry: TTL in AWS, filtered on every read', () => {
  it('an idle-expired session cannot be resumed, though dynalite never deletes its items', async () => {
    const { clock, store } = await start({}, { sessionTtlHours: 1 });
    const client = await connect();
    const { started } = await client.open();
    expect((await client.say('a small tea')).at(-1)).toMatchObject({ type: 'turn.completed' });
    await store.requestCancel(started.sessionId, crypto.randomUUID(), 100);
    client.close();
    await client.closed;

    // Within the TTL the session resumes.
    clock.offsetMs += 50 * 60_000;
    const back = await connect();
    const { started: resumed } = await back.open({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken });
    expect(resumed).toMatchObject({ resumed: true, sessionId: started.sessionId });
    back.close();
    await back.closed;

    // Two hours idle: every item of the session is past its TTL, still in the table, and ignored.
    clock.offsetMs += 2 * 3600_000;
    const items = await sessionItems(runtime!);
    expect(items.map((i) => i.sk?.S)).toEqual(expect.arrayContaining(['META', 'LEASE', 'TURN#0000000000', 'TURN#0000000001']));
    const nowSeconds = clock.nowMs() / 1000;
    for (const item of items) expect(Number(item.expiresAt?.N)).toBeLessThan(nowSeconds);

    const late = await connect();
    late.send({ type: 'hello', version: '1' });
    await late.next('hello.ack');
    late.send({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken });
    await expect(late.next('error')).resolves.toMatchObject({ code: 'session.not_found' });

    // Each read path of the store treats the expired items as gone.
    expect(await store.getSession(started.sessionId)).toBeUndefined();
    expect(await store.loadHead(started.sessionId)).toBeUndefined();
    expect(await store.listTurns(started.sessionId)).toEqual([]);
    const cancelled = crypto.randomUUID();
    const before = clock.offsetMs;
    clock.offsetMs = 0;
    await store.requestCancel(started.sessionId, cancelled, 5);
    expect(await store.cancelRequested(started.sessionId, cancelled)).toMatchObject({ playedMs: 5 });
    clock.offsetMs = before;
    expect(await store.cancelRequested(started.sessionId, cancelled)).toBeUndefined(); // the LEASE item expired
    recordFault({ area: 'limits', fault: 'resume of a session idle past its TTL (its items still in the table, as dynalite never deletes them)', outcome: '`session.not_found`; every read treats the expired items as gone' });
  });

  it('an expired connection record is a closed connection', async () => {
    const { clock } = await start({});
    const client = await connect();
    await client.open();
    const [connectionId] = runtime!.connectionIds();
    const connections = new DynamoConnectionStore(runtime!.dynamo.client, runtime!.tableName, () => clock.nowMs());
    expect(await connections.get(connectionId!)).toMatchObject({ phase: 'active' });
    clock.offsetMs += 4 * 3600_000; // the record lives 3 hours past its last write
    expect(await connections.get(connectionId!)).toBeUndefined();
    // A message on it is dropped as one for an unknown connection: no answer, nothing stored.
    const before = await sessionItems(runtime!);
    client.send({ type: 'input.text', turnId: crypto.randomUUID(), text: 'a small tea' });
    await settle();
    expect(client.events).toEqual([]);
    expect(await sessionItems(runtime!)).toEqual(before);
    recordFault({ area: 'limits', fault: 'a message on a connection whose record expired', outcome: `dropped as one for an unknown connection: ${client.events.length} answers, nothing stored` });
  });
});
