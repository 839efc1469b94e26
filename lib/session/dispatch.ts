import { emptyCheckpoint } from '../checkpoint/schema';
import type { TurnInput, TurnRecord } from '../checkpoint/record';
import type { SessionStore } from '../checkpoint/store';
import { traceIdFor } from '../checkpoint/trace';
import { ParleyError, toWireError } from '../errors';
import type { DialogueMap } from '../flow/map';
import type { Log } from '../observability/log';
import {
  PROTOCOL_VERSION,
  parseClientMessage,
  type ClientMessage,
  type ServerEvent,
} from '../protocol/v1';
import type { Clock } from '../runner/ports';
import { runTurn, type TurnOutcome, type TurnPorts } from '../runner/run-turn';
import type { ConnectionSender } from '../transport/sender';
import { hashResumeToken, resumeTokenMatches, type ApiKeyAuth } from './auth';
import type { ConnectionRecord, ConnectionStore } from './connections';
import { watchCancellation } from './cancel-watch';
import type { Ids } from './ids';

/** Everything the turn handler needs, passed in: Lambda, the local runtime and tests differ only here. */
export interface TurnDeps extends Omit<TurnPorts, 'clock'> {
  store: SessionStore;
  connections: ConnectionStore;
  map: DialogueMap;
  auth: ApiKeyAuth;
  clock: Clock;
  ids: Ids;
  log: Log;
}

/** One client message as it arrived. */
export interface Inbound {
  connectionId: string;
  body: string;
  sender: ConnectionSender;
  /** Monotonic ms when the message reached the handler; turn metrics count from here. */
  receivedAtMs: number;
}

type Ctx = Inbound & {
  deps: TurnDeps;
  log: Log;
  connection: ConnectionRecord;
  /** The head of the session the message names, read while the connection was: used only if they agree. */
  preloaded?: { sessionId: string; head: Promise<TurnRecord | undefined> };
};

/**
 * Handles one client message: parse, check the protocol order stored on the connection, act, reply.
 * Every failure becomes a typed `error` event; nothing is committed for a message that fails.
 */
export async function handleClientMessage(deps: TurnDeps, inbound: Inbound): Promise<void> {
  const log = deps.log.with({ connectionId: inbound.connectionId });
  const parsed = parseClientMessage(inbound.body);
  if (!parsed.ok) {
    log.info('rejected message', { code: parsed.code });
    await inbound.sender.send({ type: 'error', code: parsed.code, message: parsed.message, ...(parsed.turnId ? { turnId: parsed.turnId } : {}) });
    return;
  }
  const message = parsed.message;
  try {
    // Both reads at once when the client names its session: one DynamoDB round trip less per turn.
    const named = message.type === 'input.text' ? message.sessionId : undefined;
    const head = named ? deps.store.loadHead(named) : undefined;
    head?.catch(() => undefined); // awaited (and its error surfaced) only when it is used
    const connection = await deps.connections.get(inbound.connectionId);
    if (!connection) {
      // $connect always writes the record first; without it the connection is already gone.
      log.warn('message for an unknown connection', { type: message.type });
      return;
    }
    const ctx: Ctx = {
      ...inbound,
      deps,
      connection,
      log: sessionLog(log, connection.sessionId),
      ...(named && head ? { preloaded: { sessionId: named, head } } : {}),
    };
    await dispatch(ctx, message);
  } catch (err) {
    // The client correlates a failed turn by its turnId, whichever layer failed.
    const turnId = 'turnId' in message ? message.turnId : undefined;
    const wire = { ...(turnId ? { turnId } : {}), ...toWireError(err) };
    if (wire.code === 'server.internal') log.error('message failed', { type: message.type, turnId, error: describe(err) });
    else log.info('message refused', { type: message.type, turnId, code: wire.code });
    await inbound.sender.send({ type: 'error', ...wire });
  }
}

async function dispatch(ctx: Ctx, message: ClientMessage): Promise<void> {
  if (message.type === 'hello') return hello(ctx, message);
  if (ctx.connection.phase === 'open') throw new ParleyError('protocol.order', `send hello before ${message.type}`);
  if (message.type === 'session.start') return startSession(ctx, message);
  if (ctx.connection.phase !== 'active' || !ctx.connection.sessionId) {
    throw new ParleyError('protocol.order', `send session.start before ${message.type}`);
  }
  const sessionId = ctx.connection.sessionId;
  switch (message.type) {
    case 'input.text':
      return textTurn(ctx, sessionId, message);
    case 'response.cancel':
      // The turn runs in another invocation: it sees this marker on its next poll and stops.
      await ctx.deps.store.requestCancel(sessionId, message.turnId, message.playedMs);
      ctx.log.info('cancel requested', { turnId: message.turnId, playedMs: message.playedMs });
      return;
    case 'session.stop':
      return stopSession(ctx, sessionId, message.reason ?? 'client_requested');
  }
}

async function hello(ctx: Ctx, message: Extract<ClientMessage, { type: 'hello' }>): Promise<void> {
  const { connection, deps, sender } = ctx;
  if (connection.phase !== 'open') throw new ParleyError('protocol.order', 'hello was already received');
  if (message.version !== PROTOCOL_VERSION) {
    await sender.send({
      type: 'error',
      code: 'protocol.version_unsupported',
      message: `protocol version '${message.version}' is not supported; this server speaks '${PROTOCOL_VERSION}'`,
    });
    return sender.close();
  }
  let principal = connection.principal;
  if (principal === null) {
    const auth = deps.auth.check(message.auth?.apiKey);
    if (!auth.ok) {
      const text = auth.code === 'auth.required' ? 'an API key is required (hello.auth.apiKey or ?apiKey=)' : 'the API key is not valid';
      await sender.send({ type: 'error', code: auth.code, message: text });
      return sender.close();
    }
    principal = auth.principal;
  }
  await updateConnection(ctx, { ...connection, phase: 'ready', principal });
  await sender.send({ type: 'hello.ack', version: PROTOCOL_VERSION });
}

async function startSession(ctx: Ctx, message: Extract<ClientMessage, { type: 'session.start' }>): Promise<void> {
  const { connection, deps, sender } = ctx;
  if (connection.phase === 'active' && !(await boundSessionEnded(ctx))) {
    throw new ParleyError('protocol.order', 'a session is already running on this connection; send session.stop first');
  }
  const principal = connection.principal ?? 'public';

  if (message.sessionId && message.resumeToken) {
    const meta = await deps.store.getSession(message.sessionId);
    if (!meta) throw new ParleyError('session.not_found', `no session ${message.sessionId}`);
    // One answer for a wrong token and for someone else's session: neither reveals the other.
    if (!resumeTokenMatches(message.resumeToken, meta.resumeTokenHash) || meta.principal !== principal) {
      throw new ParleyError('auth.invalid', 'the resume token does not match this session');
    }
    const head = await deps.store.loadHead(meta.sessionId);
    if (head?.checkpoint.ended) throw new ParleyError('session.ended', 'this session has ended; start a new one');
    await updateConnection(ctx, { ...connection, phase: 'active', sessionId: meta.sessionId });
    sessionLog(ctx.log, meta.sessionId).info('session resumed', { seq: head?.seq ?? null });
    await sender.send({
      type: 'session.started',
      sessionId: meta.sessionId,
      resumeToken: message.resumeToken,
      traceId: traceIdFor(meta.sessionId),
      resumed: true,
      node: head?.checkpoint.currentNode ?? deps.map.initial_state,
      audio: null,
    });
    return;
  }

  const sessionId = deps.ids.uuid();
  const resumeToken = deps.ids.secret();
  await deps.store.createSession({
    sessionId,
    resumeTokenHash: hashResumeToken(resumeToken),
    principal,
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    metadata: message.metadata ?? {},
  });
  await updateConnection(ctx, { ...connection, phase: 'active', sessionId });
  const log = sessionLog(ctx.log, sessionId);
  log.info('session started');
  await sender.send({
    type: 'session.started',
    sessionId,
    resumeToken,
    traceId: traceIdFor(sessionId),
    resumed: false,
    node: deps.map.initial_state,
    audio: null,
  });
  // The greeting is turn 0: it is committed like any turn, so the session's first checkpoint exists.
  await executeTurn({ ...ctx, log }, sessionId, undefined, deps.ids.uuid(), { kind: 'start', ...(message.metadata ? { metadata: message.metadata } : {}) });
}

async function textTurn(ctx: Ctx, sessionId: string, message: Extract<ClientMessage, { type: 'input.text' }>): Promise<void> {
  // The client's hint counts only when it names the session this connection is bound to.
  const head = ctx.preloaded?.sessionId === sessionId ? await ctx.preloaded.head : await ctx.deps.store.loadHead(sessionId);
  if (head?.turnId === message.turnId) {
    // A client retry of the turn that already committed (even the one that ended the session): its
    // stored outcome, not a second run.
    ctx.log.info('turn already committed; re-sending its outcome', { turnId: message.turnId, seq: head.seq });
    for (const event of head.outputs) await ctx.sender.send(event);
    await ctx.sender.send({ type: 'turn.completed', turnId: head.turnId, usage: head.usage, metrics: head.metrics });
    return;
  }
  if (head?.checkpoint.ended) throw new ParleyError('session.ended', 'this session has ended; start a new one', { turnId: message.turnId });
  await executeTurn(ctx, sessionId, head, message.turnId, { kind: 'text', text: message.text });
}

async function stopSession(ctx: Ctx, sessionId: string, reason: string): Promise<void> {
  const head = await ctx.deps.store.loadHead(sessionId);
  if (!head?.checkpoint.ended) {
    // The stop record ends the chain: a later resume finds an ended session.
    await executeTurn(ctx, sessionId, head, ctx.deps.ids.uuid(), { kind: 'stop', reason });
  }
  await updateConnection(ctx, { ...ctx.connection, phase: 'ready', sessionId: undefined });
  ctx.log.info('session stopped', { reason });
  await ctx.sender.send({ type: 'session.stopped', reason });
}

/**
 * Runs the turn, streaming its events, then commits record head+1 with one conditional put.
 *
 * Events the runner yields back to back form a burst and go out as one message; whenever the runner
 * pauses (waiting on an LLM, say) what it produced so far is flushed, so streaming stays live. The
 * last burst is posted while the commit is written: neither waits for the other.
 */
async function executeTurn(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string, input: TurnInput): Promise<void> {
  const { deps, sender, log } = ctx;
  const outputs: ServerEvent[] = [];
  const burst: ServerEvent[] = [];
  // Only turns that can stream from the LLM last long enough for a cancel to matter.
  const watch = deps.llm && input.kind === 'text' ? watchCancellation(deps.store, sessionId, turnId, CANCEL_POLL_MS) : undefined;
  const turn = runTurn({
    turnId,
    input,
    checkpoint: head?.checkpoint ?? emptyCheckpoint(),
    sessionId,
    map: deps.map,
    classifier: deps.classifier,
    faq: deps.faq,
    actions: deps.actions,
    clock: deps.clock,
    llm: deps.llm,
    ...(watch ? { signal: watch.signal } : {}),
  });
  let outcome: TurnOutcome;
  try {
    let pending = turn.next();
    let step = await pending;
    while (!step.done) {
      const event = step.value;
      if (event.type !== 'response.text.delta') outputs.push(event);
      burst.push(event);
      pending = turn.next();
      if (!(await settlesBeforeIo(pending))) await sender.sendBatch(burst.splice(0));
      step = await pending;
    }
    outcome = step.value;
  } finally {
    watch?.stop();
  }

  const record: TurnRecord = {
    seq: head ? head.seq + 1 : 0,
    turnId,
    status: outcome.status,
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    input,
    outputs,
    events: outcome.events,
    usage: outcome.usage,
    metrics: { runMs: outcome.runMs, totalMs: round(deps.clock.monotonicMs() - ctx.receivedAtMs) },
    checkpoint: outcome.checkpoint,
  };
  const commitStarted = deps.clock.monotonicMs();
  const [commit] = await Promise.allSettled([
    deps.store.commitTurn(sessionId, record).then(() => deps.clock.monotonicMs()),
    sender.sendBatch(burst),
  ]);
  if (commit.status === 'rejected') throw commit.reason;
  const committed = commit.value;
  const metrics = { ...record.metrics, commitMs: round(committed - commitStarted), totalMs: round(committed - ctx.receivedAtMs) };
  log.info('turn committed', { turnId, seq: record.seq, node: record.checkpoint.currentNode, status: record.status, metrics });
  if (sender.gone && sender.failure) log.warn('client unreachable during the turn', { error: describe(sender.failure) });
  // A bot author's mistake the lint could not see (a variable only some paths set): make it loud.
  for (const e of record.events) {
    if (e.type === 'template_missing') log.warn('playlist item left out: its template reads unset variables', { source: e.source, missing: e.missing });
  }
  if (input.kind !== 'stop') {
    await sender.send({ type: 'turn.completed', turnId, usage: record.usage, sessionUsage: record.checkpoint.usage, metrics });
  }
}

/**
 * Whether a promise settles before the event loop gets to I/O: true for a runner step that needed
 * no I/O (it resolves within the microtask queue), false for one that waits on the network.
 */
function settlesBeforeIo(promise: Promise<unknown>): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setImmediate(() => resolve(false));
    const settled = () => {
      clearImmediate(timer);
      resolve(true);
    };
    promise.then(settled, settled);
  });
}

/** After END_CALL the connection stays bound to the ended session until a new one starts. */
async function boundSessionEnded(ctx: Ctx): Promise<boolean> {
  const sessionId = ctx.connection.sessionId;
  if (!sessionId) return true;
  const head = await ctx.deps.store.loadHead(sessionId);
  return head?.checkpoint.ended === true;
}

async function updateConnection(ctx: Ctx, record: ConnectionRecord): Promise<void> {
  const stillThere = await ctx.deps.connections.update(record);
  if (!stillThere) ctx.log.info('connection closed while its message was handled');
  ctx.connection = record;
}

function sessionLog(log: Log, sessionId: string | undefined): Log {
  return sessionId ? log.with({ sessionId, traceId: traceIdFor(sessionId) }) : log;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** How often a running LLM turn looks for a cancel marker: the worst-case delay of a barge-in. */
const CANCEL_POLL_MS = 150;

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
