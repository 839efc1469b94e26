import { DeleteItemCommand, ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTurnDeps } from '../../lib/host/deps';
import { memoryLog } from '../../lib/observability/log';
import { ErrorCode, PROTOCOL_VERSION, ServerEvent } from '../../lib/protocol/v1';
import type { ConnectionRecord } from '../../lib/session/connections';
import { handleClientMessage, type TurnDeps } from '../../lib/session/dispatch';
import type { ConnectionSender } from '../../lib/transport/sender';
import { ensureTable, startDynalite, type LocalDynamo } from '../../local/dynamodb';
import { sampleMap, sampleModel } from '../integration/harness';
import { hostileValue, mutatedMessage, rawBody, validMessage } from './arbitraries';
import { expectedParse } from './oracle';
import { recordFault } from '../support/fault-table';

/*
 * Property-based fuzzing of the turn handler (item 10 of issue 6): raw bodies sent on a connection in
 * each phase (open: before hello; ready: after hello; active: in a session) against a real DynamoDB
 * API (dynalite). The handler never throws, answers only with well-formed events, every error is
 * typed and none is server.internal, and any error leaves the table exactly as it was, item by item,
 * connection records included (README: "None of these errors changes stored state").
 *
 * A few hundred cases: each one is a real handler invocation with DynamoDB round trips and two scans.
 * FUZZ_SCALE multiplies the counts, as in protocol.fuzz.test.ts.
 */

const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const RUNS = { open: 200, ready: 200, active: 250, sessionReferences: 100 };
const runs = (n: number) => Math.ceil(n * SCALE);

const API_KEY = 'fuzz-api-key-0123456789';
const TABLE = 'fuzz';
const CODES = new Set<string>(ErrorCode.options);
const MESSAGE_TYPES = ['hello', 'session.start', 'input.text', 'response.cancel', 'session.stop'];

type Phase = 'open' | 'ready' | 'active';

/** What each message type may be answered with (no speech deps here, so no audio events). */
const TURN_EVENTS = ['turn.started', 'node.transition', 'response.text.delta', 'response.text.done', 'response.filler', 'response.status', 'session.ended', 'turn.completed'];
const ALLOWED: Record<string, string[]> = {
  hello: ['hello.ack', 'error'],
  'session.start': ['session.started', ...TURN_EVENTS, 'error'],
  'input.text': [...TURN_EVENTS, 'error'],
  'response.cancel': ['error'],
  'session.stop': ['session.stopped', 'error'],
};

function recordingSender(): ConnectionSender & { events: ServerEvent[]; closed: boolean } {
  const events: ServerEvent[] = [];
  const sender = {
    events,
    closed: false,
    gone: false,
    failure: undefined,
    send: async (event: ServerEvent) => void events.push(event),
    sendBatch: async (batch: ServerEvent[]) => void events.push(...batch),
    close: async () => {
      sender.closed = true;
    },
  };
  return sender;
}

type Item = Record<string, AttributeValue>;

/** Items added, removed or changed between two scans, named by their keys: an empty list when nothing changed. */
function tableChanges(before: Item[], after: Item[]): string[] {
  const keyOf = (i: Item) => `${i.pk?.S}|${i.sk?.S}`;
  const was = new Map(before.map((i) => [keyOf(i), JSON.stringify(i)]));
  const is = new Map(after.map((i) => [keyOf(i), JSON.stringify(i)]));
  const changes: string[] = [];
  for (const [key, item] of is) if (was.get(key) !== item) changes.push(`${was.has(key) ? 'changed' : 'added'} ${key}: ${item.slice(0, 400)}`);
  for (const key of was.keys()) if (!is.has(key)) changes.push(`removed ${key}`);
  return changes;
}

describe('the turn handler under fuzzing (real dynalite)', () => {
  let dynamo: LocalDynamo;
  let deps: TurnDeps;
  const log = memoryLog();
  /** Each phase's connection as the handler left it after the messages that got it there. */
  const fixtures = new Map<Phase, ConnectionRecord>();
  let counter = 0;
  /** The table as the last case left it: the next case's `before` (nothing else writes in between). */
  let lastSnapshot: Record<string, AttributeValue>[] | undefined;

  async function snapshot(): Promise<Record<string, AttributeValue>[]> {
    const items: Record<string, AttributeValue>[] = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await dynamo.client.send(new ScanCommand({ TableName: TABLE, ExclusiveStartKey, ConsistentRead: true }));
      items.push(...(page.Items ?? []));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    const key = (i: Record<string, AttributeValue>) => `${i.pk?.S}|${i.sk?.S}`;
    return items.sort((a, b) => key(a).localeCompare(key(b)));
  }

  async function send(connectionId: string, body: string) {
    const sender = recordingSender();
    try {
      await handleClientMessage(deps, { connectionId, sender, receivedAtMs: performance.now(), body });
    } catch (err) {
      throw new Error(`handleClientMessage threw on ${JSON.stringify(body.slice(0, 300))}: ${err instanceof Error ? err.stack : String(err)}`);
    }
    return sender;
  }

  /**
   * A connection brought to `phase` by the real messages (hello with the API key, session.start).
   * The connection it replaces is deleted with its session (unless another fixture uses it), so the
   * table, scanned twice per case, stays small.
   */
  async function prepare(phase: Phase, options: { keepOld?: boolean } = {}): Promise<ConnectionRecord> {
    const old = fixtures.get(phase);
    if (old && !options.keepOld) await retire(old);
    const connectionId = `fuzz-${phase}-${++counter}=`;
    await deps.connections.create({ connectionId, phase: 'open', principal: null, connectedAt: new Date().toISOString() });
    if (phase !== 'open') {
      const hello = await send(connectionId, JSON.stringify({ type: 'hello', version: PROTOCOL_VERSION, auth: { apiKey: API_KEY } }));
      expect(hello.events.map((e) => e.type)).toEqual(['hello.ack']);
    }
    if (phase === 'active') {
      const start = await send(connectionId, JSON.stringify({ type: 'session.start' }));
      expect(start.events.map((e) => e.type)).toContain('turn.completed');
      sessions.set(connectionId, start.events.find((e): e is Extract<ServerEvent, { type: 'session.started' }> => e.type === 'session.started')!);
    }
    const record = (await deps.connections.get(connectionId))!;
    expect(record.phase).toBe(phase);
    fixtures.set(phase, record);
    lastSnapshot = undefined;
    return record;
  }
  const sessions = new Map<string, Extract<ServerEvent, { type: 'session.started' }>>();
  /** Sessions other tests still name, never deleted. */
  const keepSessions = new Set<string>();

  async function retire(record: ConnectionRecord): Promise<void> {
    const now = await deps.connections.get(record.connectionId);
    const inUse = new Set([...keepSessions, ...[...fixtures.values()].filter((f) => f !== record).map((f) => f.sessionId)]);
    const doomed = new Set([`CONN#${record.connectionId}`]);
    for (const sessionId of [record.sessionId, now?.sessionId]) if (sessionId && !inUse.has(sessionId)) doomed.add(`SESS#${sessionId}`);
    for (const item of await snapshot()) {
      if (doomed.has(item.pk!.S!)) await dynamo.client.send(new DeleteItemCommand({ TableName: TABLE, Key: { pk: item.pk!, sk: item.sk! } }));
    }
    lastSnapshot = undefined;
  }

  beforeAll(async () => {
    dynamo = await startDynalite({});
    await ensureTable(dynamo.client, TABLE);
    deps = buildTurnDeps({ dynamo: dynamo.client, tableName: TABLE, apiKeys: [API_KEY], sessionTtlHours: 1, map: sampleMap(), nluModel: await sampleModel(), log });
    for (const phase of ['open', 'ready', 'active'] as const) await prepare(phase);
  });
  afterAll(async () => {
    await dynamo?.close();
  });

  /** Is a schema-valid message in order on a connection in this phase (README: Protocol v1, protocol.order)? */
  function inOrder(phase: Phase, type: string): boolean {
    if (phase === 'open') return type === 'hello';
    if (phase === 'ready') return type === 'session.start';
    // An active session that has not ended: a second session.start is out of order.
    return type === 'input.text' || type === 'response.cancel' || type === 'session.stop';
  }

  /** Sends one body on the phase's connection and checks everything a single answer must satisfy. */
  async function check(phase: Phase, body: string): Promise<void> {
    const connection = fixtures.get(phase)!;
    const before = lastSnapshot ?? (await snapshot());
    const logged = log.lines.length;
    const sender = await send(connection.connectionId, body);
    const after = await snapshot();
    lastSnapshot = after;

    for (const event of sender.events) {
      const wellFormed = ServerEvent.safeParse(event);
      expect(wellFormed.success, `not a server event: ${JSON.stringify(event).slice(0, 300)}`).toBe(true);
    }
    const errors = sender.events.filter((e): e is Extract<ServerEvent, { type: 'error' }> => e.type === 'error');
    for (const error of errors) {
      expect(CODES.has(error.code)).toBe(true);
      expect(error.code, `server.internal for ${JSON.stringify(body.slice(0, 300))}: ${error.message}`).not.toBe('server.internal');
    }
    expect(log.lines.slice(logged).filter((l) => l.level === 'error')).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(Object.prototype)).toEqual([]);

    const expected = expectedParse(body);
    if (!expected.ok) {
      // Refused by the parser: exactly one typed error, and nothing stored or changed.
      expect(sender.events).toHaveLength(1);
      expect(errors[0]).toMatchObject({ type: 'error', code: expected.code });
    } else if (!inOrder(phase, String(expected.message.type))) {
      // Legit but out of order: one protocol.order error (hello in `open` is in order by definition).
      expect(sender.events).toHaveLength(1);
      expect(errors[0]).toMatchObject({ type: 'error', code: 'protocol.order' });
    }
    // Every error leaves the table as it was; a valid message that went through may write.
    if (errors.length > 0 || !expected.ok) expect(tableChanges(before, after), `the table changed for ${JSON.stringify(body.slice(0, 300))}`).toEqual([]);
    if (expected.ok) {
      const allowed = ALLOWED[String(expected.message.type)]!;
      const unexpected = sender.events.filter((e) => !allowed.includes(e.type));
      expect(unexpected, `unexpected events for ${String(expected.message.type)}`).toEqual([]);
    }

    // A message that changed something moved the connection or its session on: start that phase afresh.
    if (JSON.stringify(after) !== JSON.stringify(before) || sender.closed) await prepare(phase);
  }

  /** Mostly hostile bodies, some plain valid messages of every type (in and out of order). */
  const body = fc.oneof(
    { weight: 6, arbitrary: rawBody },
    { weight: 2, arbitrary: mutatedMessage.map((m) => JSON.stringify(m)) },
    { weight: 1, arbitrary: validMessage.map((m) => JSON.stringify(m)) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...MESSAGE_TYPES), hostileValue).map(([type, v]) => JSON.stringify({ type, v })) },
  );

  for (const phase of ['open', 'ready', 'active'] as const) {
    it(`any body on a connection in phase '${phase}': typed errors, never server.internal, nothing stored for an error`, async () => {
      await fc.assert(
        fc.asyncProperty(body, (raw) => check(phase, raw)),
        { numRuns: runs(RUNS[phase]) },
      );
      recordFault({
        area: 'protocol (fuzz)',
        fault: `any body on a connection in phase '${phase}' (raw, mutated and valid messages, in and out of order), against the turn handler and dynalite`,
        outcome: 'the handler never throws; every error is typed, none server.internal, none logged as an error; the table unchanged by every error',
      });
    }, 60_000 * SCALE);
  }

  it('messages naming real sessions (resume with a wrong token, a foreign session hint, a replayed turn id): typed answers, nothing stored for an error', async () => {
    // A second session on another connection, to name from this one.
    const other = await prepare('active');
    const otherSession = sessions.get(other.connectionId)!;
    keepSessions.add(otherSession.sessionId);
    await prepare('active', { keepOld: true });
    const reference = fc.record({
      phase: fc.constantFrom('ready', 'active') as fc.Arbitrary<Phase>,
      session: fc.constantFrom('own', 'other', 'random'),
      token: fc.oneof(fc.constantFrom('own', 'other'), fc.string({ minLength: 16, maxLength: 40 })),
      kind: fc.constantFrom('resume', 'input', 'cancel', 'replay'),
      text: fc.oneof(fc.constantFrom('coffee', 'hi', 'bye', '\uD800', 'a\u0000b', ' x '), fc.string({ minLength: 1, maxLength: 50 })),
      playedMs: fc.option(fc.nat({ max: 100_000 }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(reference, async (r) => {
        const own = sessions.get(fixtures.get('active')!.connectionId)!;
        const session = r.session === 'own' ? own : r.session === 'other' ? otherSession : undefined;
        const sessionId = session?.sessionId ?? crypto.randomUUID();
        const token = r.token === 'own' ? own.resumeToken : r.token === 'other' ? otherSession.resumeToken : r.token;
        const message =
          r.kind === 'resume'
            ? { type: 'session.start', sessionId, resumeToken: token }
            : r.kind === 'input'
              ? { type: 'input.text', turnId: crypto.randomUUID(), text: r.text, sessionId }
              : r.kind === 'cancel'
                ? { type: 'response.cancel', turnId: crypto.randomUUID(), ...(r.playedMs === undefined ? {} : { playedMs: r.playedMs }) }
                : { type: 'input.text', turnId: (await deps.store.loadHead(sessionId))?.turnId ?? crypto.randomUUID(), text: r.text };
        await check(r.phase, JSON.stringify(message));
      }),
      { numRuns: runs(RUNS.sessionReferences) },
    );
    recordFault({
      area: 'protocol (fuzz)',
      fault: 'messages naming real sessions: resume with a wrong or foreign token, a foreign session hint, a replayed turn id',
      outcome: 'typed answers only, never server.internal; the table unchanged by every error',
    });
  }, 60_000 * SCALE);
});
