import { emptyCheckpoint, rememberTurn } from '../checkpoint/schema';
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
import { isCue, runTurn, sessionLanguage, type TurnOutcome, type TurnPorts } from '../runner/run-turn';
import type { ConnectionSender } from '../transport/sender';
import { Outbox } from '../transport/outbox';
import type { TurnMetricsSink } from '../observability/metrics';
import { localize } from '../flow/map';
import type { AudioCache } from '../speech/audio-cache';
import type { AudioFormat } from '../speech/format';
import { cutToHeard } from '../speech/heard';
import { Player, type PlayerReport, type PlayerTiming } from '../speech/player';
import type { Synthesizer, Voice } from '../speech/tts/port';
import { RESUME_TOKEN_HMAC, resumeTokenMatches, type Auth } from './auth';
import type { ConnectionRecord, ConnectionStore } from './connections';
import { stopReasonOf, watchTurn } from './cancel-watch';
import { DEFAULT_LEASE_TIMING, takeLease, type LeaseTiming } from './turn-lease';
import type { Ids } from './ids';
import { enforceRate, enforceSessionLimits, type Limits } from './limits';

/** Everything the turn handler needs, passed in: Lambda, the local runtime and tests differ only here. */
export interface TurnDeps extends Omit<TurnPorts, 'clock'> {
  store: SessionStore;
  connections: ConnectionStore;
  map: DialogueMap;
  auth: Auth;
  clock: Clock;
  ids: Ids;
  log: Log;
  /** Speech output; without it every session is text only. */
  speech?: SpeechDeps | undefined;
  /** Where each turn's t1..t6 go (CloudWatch EMF in Lambda). */
  metrics?: TurnMetricsSink | undefined;
  /** Message rate, turns and session age (lib/session/limits.ts); without it nothing is limited. */
  limits?: Limits | undefined;
  /** The session lease's timings (tests shorten them). */
  leaseTiming?: Partial<LeaseTiming> | undefined;
}

/** What the player needs from the host: a synthesizer (Polly or the local one), the audio cache, the voice per language. */
export interface SpeechDeps {
  synthesizer: Synthesizer | undefined;
  cache: AudioCache;
  voiceFor(language: string): Voice;
  /** Tests shorten the player's waits. */
  timing?: Partial<PlayerTiming>;
}

type RunnableInput = Exclude<TurnInput, { kind: 'interrupt' }>;

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
  await enforceRate(ctx.deps, ctx.connectionId); // rate.limited: nothing below runs
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
      return cancelTurn(ctx, sessionId, message.turnId, message.playedMs);
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
    const auth = await deps.auth.authenticate(message.auth);
    if (!auth.ok) {
      await sender.send({ type: 'error', code: auth.code, message: auth.message });
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
    // The token is HMAC(secret, session id): whether it is the one issued for this id needs no read.
    const [issued, meta] = await Promise.all([deps.auth.resumeTokenIssued(message.sessionId, message.resumeToken), deps.store.getSession(message.sessionId)]);
    // One answer for a wrong token, an unknown id and someone else's session: none reveals whether the
    // session exists. Only the holder of the issued token learns that its session is gone.
    const refused = new ParleyError('auth.invalid', 'the resume token does not match this session');
    if (!meta) throw issued ? new ParleyError('session.not_found', `no session ${message.sessionId}`) : refused;
    // Sessions from before HMAC tokens keep the SHA-256 of a random token in META: either token resumes them.
    if (!(issued || resumeTokenMatches(message.resumeToken, meta.resumeTokenHash)) || meta.principal !== principal) throw refused;
    const head = await deps.store.loadHead(meta.sessionId);
    if (head?.checkpoint.ended) throw new ParleyError('session.ended', 'this session has ended; start a new one');
    const audio = negotiateAudio(deps, message.audio);
    await updateConnection(ctx, { ...withoutAudio(connection), phase: 'active', sessionId: meta.sessionId, ...(audio ? { audio } : {}) });
    sessionLog(ctx.log, meta.sessionId).info('session resumed', { seq: head?.seq ?? null });
    await sender.send({
      type: 'session.started',
      sessionId: meta.sessionId,
      resumeToken: await deps.auth.resumeToken(meta.sessionId),
      traceId: traceIdFor(meta.sessionId),
      resumed: true,
      node: head?.checkpoint.currentNode ?? deps.map.initial_state,
      audio,
    });
    await resendMissed(ctx, meta.sessionId, message.lastTurnId);
    return;
  }

  const sessionId = deps.ids.uuid();
  const resumeToken = await deps.auth.resumeToken(sessionId);
  await deps.store.createSession({
    sessionId,
    // Nothing to store: the token is derived from the id, and only the server holds the secret.
    resumeTokenHash: RESUME_TOKEN_HMAC,
    principal,
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    metadata: message.metadata ?? {},
  });
  const audio = negotiateAudio(deps, message.audio);
  await updateConnection(ctx, { ...withoutAudio(connection), phase: 'active', sessionId, ...(audio ? { audio } : {}) });
  const log = sessionLog(ctx.log, sessionId);
  log.info('session started');
  await sender.send({
    type: 'session.started',
    sessionId,
    resumeToken,
    traceId: traceIdFor(sessionId),
    resumed: false,
    node: deps.map.initial_state,
    audio,
  });
  // The greeting is turn 0: it is committed like any turn, so the session's first checkpoint exists.
  const greeting = deps.ids.uuid();
  await takeLease(deps.store, sessionId, { at: deps.clock.nowMs(), turnId: greeting }, deps.clock, leaseTiming(deps));
  await executeTurn({ ...ctx, log }, sessionId, undefined, greeting, { kind: 'start', ...(message.metadata ? { metadata: message.metadata } : {}) });
}

async function textTurn(ctx: Ctx, sessionId: string, message: Extract<ClientMessage, { type: 'input.text' }>): Promise<void> {
  const { deps } = ctx;
  const arrivedAt = deps.clock.nowMs();
  // The client's hint counts only when it names the session this connection is bound to.
  let head = ctx.preloaded?.sessionId === sessionId ? await ctx.preloaded.head : await deps.store.loadHead(sessionId);
  // A turn id seen before (a reconnect, a client retry, an async-invoke retry): its stored outcome, not a second run.
  if (await resendOutcome(ctx, sessionId, head, message.turnId)) return;
  if (head?.checkpoint.ended) throw new ParleyError('session.ended', 'this session has ended; start a new one', { turnId: message.turnId });
  await enforceSessionLimits(ctx.deps, sessionId, head, message.turnId); // session.limit: too many turns, or too old

  // One turn at a time per session: a running older turn is asked to stop, and this one waits for it.
  const taken = await takeLease(deps.store, sessionId, { at: arrivedAt, turnId: message.turnId }, deps.clock, leaseTiming(deps), head?.seq);
  try {
    if (taken.headStale) {
      // Whatever ran meanwhile has committed: run on its checkpoint (or find that it was this very turn).
      head = await deps.store.loadHead(sessionId);
      if (await resendOutcome(ctx, sessionId, head, message.turnId)) return void (await deps.store.endTurn(sessionId, message.turnId));
      if (head?.checkpoint.ended) throw new ParleyError('session.ended', 'this session has ended; start a new one', { turnId: message.turnId });
    }
    if (taken.superseded) return await recordSuperseded(ctx, sessionId, head, message.turnId, message.text);
  } catch (err) {
    await deps.store.endTurn(sessionId, message.turnId).catch(() => undefined);
    throw err;
  }
  await executeTurn(ctx, sessionId, head, message.turnId, { kind: 'text', text: message.text });
}

/**
 * A client back on a new connection gets what it missed of the last turn: a turn still running
 * (its events went to the old connection) is waited for, then the last turn's outcome is re-sent
 * unless the client says it has it.
 */
async function resendMissed(ctx: Ctx, sessionId: string, lastTurnId: string | undefined): Promise<void> {
  const { deps } = ctx;
  const timing = leaseTiming(deps);
  const giveUpAt = deps.clock.nowMs() + timing.waitMs;
  for (;;) {
    const lease = await deps.store.readLease(sessionId);
    if (!lease.turnId || (lease.leaseUntil ?? 0) < deps.clock.nowMs() || deps.clock.nowMs() > giveUpAt) break;
    await new Promise((resolve) => setTimeout(resolve, timing.pollMs));
  }
  const head = await deps.store.loadHead(sessionId);
  if (!head || head.turnId === lastTurnId || head.input.kind === 'stop') return;
  // An interrupt record stands for the turn it cut: that turn is the one the client may have missed.
  if (head.input.kind === 'interrupt' && head.input.turnId === lastTurnId) return;
  const turnId = head.input.kind === 'interrupt' ? head.input.turnId : head.turnId;
  await resendOutcome(ctx, sessionId, head, turnId);
}

/** Sends the stored outcome of a turn that already committed; false when `turnId` is new. */
async function resendOutcome(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string): Promise<boolean> {
  if (!head) return false;
  const seq = head.turnId === turnId ? head.seq : head.checkpoint.recentTurns.find((t) => t.turnId === turnId)?.seq;
  if (seq === undefined) return false;
  const record = seq === head.seq ? head : await ctx.deps.store.loadTurn(sessionId, seq);
  if (!record) return false;
  ctx.log.info('turn already committed; re-sending its outcome', { turnId, seq });
  await ctx.sender.sendBatch([...record.outputs, { type: 'turn.completed', turnId, usage: record.usage, metrics: record.metrics }]);
  return true;
}

/**
 * An input a newer one overtook before it ran: its message is stored (so no message is ever lost
 * or stored twice) and the newer input answers it. Nothing runs for it.
 */
async function recordSuperseded(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string, text: string): Promise<void> {
  const { deps } = ctx;
  const seq = head ? head.seq + 1 : 0;
  const before = head?.checkpoint ?? emptyCheckpoint();
  const record: TurnRecord = {
    seq,
    turnId,
    status: 'cancelled',
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    input: { kind: 'text', text },
    outputs: [],
    events: [{ type: 'cancelled', reason: 'superseded', atMs: 0 }],
    usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 },
    metrics: { runMs: 0, totalMs: round(deps.clock.monotonicMs() - ctx.receivedAtMs) },
    checkpoint: rememberTurn({ ...before, messages: [...before.messages, { role: 'user', content: text }], turnState: 'user' }, turnId, seq),
  };
  let committed = false;
  try {
    await deps.store.commitTurn(sessionId, record);
    committed = true;
  } finally {
    await deps.store.endTurn(sessionId, turnId, committed ? seq : undefined).catch(() => undefined);
  }
  ctx.log.info('input superseded by a newer one; stored without running', { turnId, seq });
  await ctx.sender.send({ type: 'turn.completed', turnId, usage: record.usage, metrics: record.metrics });
}

const leaseTiming = (deps: TurnDeps): LeaseTiming => ({ ...DEFAULT_LEASE_TIMING, ...deps.leaseTiming });

async function stopSession(ctx: Ctx, sessionId: string, reason: string): Promise<void> {
  const { deps } = ctx;
  const turnId = deps.ids.uuid();
  // A stop supersedes a running turn like any newer input; then the stop record ends the chain.
  await takeLease(deps.store, sessionId, { at: deps.clock.nowMs(), turnId }, deps.clock, leaseTiming(deps));
  const head = await deps.store.loadHead(sessionId);
  if (!head?.checkpoint.ended) await executeTurn(ctx, sessionId, head, turnId, { kind: 'stop', reason });
  else await deps.store.endTurn(sessionId, turnId);
  await updateConnection(ctx, { ...withoutAudio(ctx.connection), phase: 'ready', sessionId: undefined });
  ctx.log.info('session stopped', { reason });
  await ctx.sender.send({ type: 'session.stopped', reason });
}

/**
 * Runs the turn, streaming its events, then commits record head+1 with one conditional put.
 *
 * The runner's events go out through one outbox: what it yields back to back travels as one
 * message, and nothing waits for the next event. Its speech cues go to the player, which makes the
 * audio (cache or synthesizer) and sends it through the same outbox. The turn holds the session's
 * lease item while it runs and watches it for a cancel; the commit waits for the player, so the
 * stored answer is what was said (cut to what was heard when the client cancelled).
 */
async function executeTurn(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string, input: RunnableInput): Promise<void> {
  const { deps, log } = ctx;
  const at = () => round(deps.clock.monotonicMs() - ctx.receivedAtMs);
  const outbox = new Outbox(ctx.sender);
  const outputs: ServerEvent[] = [];
  const emit = (event: ServerEvent) => {
    // Deltas are in the done events (text) or not worth storing (audio).
    if (event.type !== 'response.text.delta' && event.type !== 'response.audio.delta') outputs.push(event);
    outbox.push(event);
  };
  const checkpoint = head?.checkpoint ?? emptyCheckpoint();
  // The caller holds the session's lease; the watch renews it and stops the turn on a cancel.
  const watch = input.kind === 'stop' ? undefined : watchTurn(deps.store, sessionId, turnId, { ...leaseTiming(deps), pollMs: CANCEL_POLL_MS }, () => deps.clock.nowMs());
  const signal = watch?.signal ?? new AbortController().signal;
  const format = ctx.connection.audio ?? null;
  const language = sessionLanguage(deps.map, input, checkpoint);
  const voice = deps.speech?.voiceFor(language);
  // The player also stops when the turn fails: no synthesis or filler loop outlives its turn.
  const failed = new AbortController();
  const player = newPlayer(deps, { turnId, format: voice ? format : null, voice, language, at, emit, signal: AbortSignal.any([signal, failed.signal]) });
  const t3 = at();
  let t4: number | undefined;
  const turn = runTurn({
    turnId,
    input,
    checkpoint,
    sessionId,
    map: deps.map,
    classifier: deps.classifier,
    faq: deps.faq,
    actions: deps.actions,
    clock: deps.clock,
    llm: deps.llm,
    signal,
  });
  let outcome: TurnOutcome;
  let report: PlayerReport;
  try {
    let step = await turn.next();
    while (!step.done) {
      const event = step.value;
      if (!isCue(event)) emit(event);
      else if (event.type === 'cue.say') player.say(event);
      else {
        if (event.on === 'llm') t4 ??= at();
        player.waiting();
      }
      step = await turn.next();
    }
    outcome = step.value;
    report = await player.finish();
  } catch (err) {
    failed.abort(err);
    await deps.store.endTurn(sessionId, turnId).catch(() => undefined);
    throw err;
  } finally {
    await watch?.stop();
  }

  const stopped = stopReasonOf(signal);
  const cancel = stopped?.kind === 'cancel' ? stopped : undefined;
  let { checkpoint: after, events, status } = outcome;
  events = [...events, ...report.events];
  if (stopped) {
    status = 'cancelled';
    const recorded = events.find((e) => e.type === 'cancelled');
    const cancelled = {
      type: 'cancelled' as const,
      reason: stopped.kind === 'cancel' ? stopped.reason : stopped.kind,
      ...(cancel?.playedMs === undefined ? {} : { playedMs: cancel.playedMs }),
      ...(cancel ? { detectMs: cancel.detectMs } : {}),
      atMs: recorded?.atMs ?? at(),
    };
    events = recorded ? events.map((e) => (e === recorded ? cancelled : e)) : [...events, cancelled];
    if (cancel?.playedMs !== undefined && format) {
      const cut = await cutToHeard({ checkpoint: after, spoken: report.spoken, playedMs: cancel.playedMs, marksFor: marksFor(deps, voice) });
      after = cut.checkpoint;
      events.push({ type: 'interrupted', playedMs: cancel.playedMs, heardWords: cut.heardWords, marks: cut.marks, atMs: at() });
    }
  }
  // Seed 004: while its speech plays the turn is the bot's; a cancel hands it to the user.
  after = { ...after, turnState: report.spoken.length && !stopped ? 'bot' : 'user' };
  const usage = { ...outcome.usage, ttsCharacters: outcome.usage.ttsCharacters + report.ttsCharacters };
  const stageMetrics = {
    t1: 0,
    t2: 0,
    t3,
    ...(t4 === undefined ? {} : { t4 }),
    ...(report.firstChunkAtMs === undefined ? {} : { t5: report.firstChunkAtMs }),
    ...(report.firstSentAtMs === undefined ? {} : { t6: report.firstSentAtMs }),
  };
  const seq = head ? head.seq + 1 : 0;
  const record: TurnRecord = {
    seq,
    turnId,
    status,
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    input,
    outputs,
    events,
    usage,
    metrics: { runMs: outcome.runMs, totalMs: at(), ...stageMetrics },
    checkpoint: rememberTurn({ ...after, usage: { ...after.usage, ttsCharacters: after.usage.ttsCharacters + report.ttsCharacters } }, turnId, seq),
    ...(voice && report.spoken.length ? { speech: { voice, items: report.spoken } } : {}),
  };
  // The last burst is posted first, then the commit is written while it travels: a turn that did
  // no I/O (a cached reply) would otherwise hold its first audio until the put was on its way.
  const drained = outbox.drain();
  const commitStarted = deps.clock.monotonicMs();
  const [commit] = await Promise.allSettled([deps.store.commitTurn(sessionId, record).then(() => deps.clock.monotonicMs()), drained]);
  if (commit.status === 'rejected') {
    await deps.store.endTurn(sessionId, turnId).catch(() => undefined);
    throw commit.reason;
  }
  const committed = commit.value;
  const metrics = { ...record.metrics, commitMs: round(committed - commitStarted), totalMs: round(committed - ctx.receivedAtMs) };
  log.info('turn committed', { turnId, seq: record.seq, node: record.checkpoint.currentNode, status: record.status, metrics });
  if (ctx.sender.gone && ctx.sender.failure) log.warn('client unreachable during the turn', { error: describe(ctx.sender.failure) });
  // A bot author's mistake the lint could not see (a variable only some paths set): make it loud.
  for (const e of record.events) {
    if (e.type === 'template_missing') log.warn('playlist item left out: its template reads unset variables', { source: e.source, missing: e.missing });
    if (e.type === 'tts_error') log.warn('speech synthesis failed; the text went out without audio', { source: e.source, code: e.code, detail: e.detail });
  }
  // The turn is stored: a failing send is logged, never turned into a failed (and retried) invocation.
  const completed =
    input.kind === 'stop'
      ? Promise.resolve()
      : ctx.sender.send({ type: 'turn.completed', turnId, usage: record.usage, sessionUsage: record.checkpoint.usage, metrics }).catch((err: unknown) => {
          log.warn('could not send turn.completed', { turnId, error: describe(err) });
        });
  // A cancel written after the last poll but before the release is ours to apply, now that the turn is stored.
  const late = await deps.store.endTurn(sessionId, turnId, seq).catch((err: unknown) => {
    log.warn('could not release the turn lease', { error: describe(err) });
    return undefined;
  });
  await completed;
  deps.metrics?.publish({ traceId: traceIdFor(sessionId), sessionId, turnId, status: record.status, inputKind: input.kind, metrics });
  if (late && !stopped && late.playedMs !== undefined) await interruptCommitted(ctx, sessionId, record, late.playedMs);
}

/**
 * `response.cancel`: the turn may still run in another invocation (it sees the cancel on the lease
 * within one poll and cuts its own answer), or it may have committed already; then its answer is
 * cut to what was heard by a record of its own.
 */
async function cancelTurn(ctx: Ctx, sessionId: string, turnId: string, playedMs: number | undefined): Promise<void> {
  const running = await ctx.deps.store.requestCancel(sessionId, turnId, playedMs);
  ctx.log.info('cancel requested', { turnId, playedMs, running: running === 'running' });
  if (running === 'running' || playedMs === undefined) return;
  const head = await ctx.deps.store.loadHead(sessionId);
  // Only the newest turn can still be playing; an older one (or one never run) has nothing to cut.
  if (head?.turnId === turnId) await interruptCommitted(ctx, sessionId, head, playedMs);
}

/**
 * Cuts a committed turn's answer to what was heard: one more record, the interrupt, on top of it.
 * It takes the session's lease like a turn, without waiting: if another turn holds it, a newer
 * input is running and the interrupt is moot (that input already interrupted the answer).
 */
async function interruptCommitted(ctx: Ctx, sessionId: string, cutTurn: TurnRecord, playedMs: number): Promise<void> {
  const { deps } = ctx;
  if (!cutTurn.speech) return; // text only: what was sent was read
  const started = deps.clock.monotonicMs();
  const turnId = deps.ids.uuid();
  const lease = await deps.store.acquireTurn(sessionId, turnId, deps.clock.nowMs(), leaseTiming(deps).leaseMs);
  if (!lease.acquired) return ctx.log.info('interrupt skipped: a newer turn is running', { turnId: cutTurn.turnId });
  let committedSeq: number | undefined;
  try {
    const head = await deps.store.loadHead(sessionId);
    if (head?.turnId !== cutTurn.turnId) return ctx.log.info('interrupt skipped: the conversation moved on', { turnId: cutTurn.turnId });
    const cut = await cutToHeard({ checkpoint: head.checkpoint, spoken: cutTurn.speech.items, playedMs, marksFor: marksFor(deps, cutTurn.speech.voice) });
    const record: TurnRecord = {
      seq: head.seq + 1,
      turnId,
      status: 'completed',
      createdAt: new Date(deps.clock.nowMs()).toISOString(),
      input: { kind: 'interrupt', turnId: head.turnId, playedMs },
      outputs: [],
      events: [{ type: 'interrupted', playedMs, heardWords: cut.heardWords, marks: cut.marks, atMs: 0 }],
      usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 },
      metrics: { runMs: round(deps.clock.monotonicMs() - started), totalMs: round(deps.clock.monotonicMs() - ctx.receivedAtMs) },
      checkpoint: { ...cut.checkpoint, turnState: 'user' },
    };
    await deps.store.commitTurn(sessionId, record);
    committedSeq = record.seq;
    ctx.log.info('committed turn cut to what was heard', { turnId: head.turnId, playedMs, heardWords: cut.heardWords, marks: cut.marks });
  } finally {
    await deps.store.endTurn(sessionId, turnId, committedSeq).catch(() => undefined);
  }
}

function newPlayer(
  deps: TurnDeps,
  o: { turnId: string; format: AudioFormat | null; voice: Voice | undefined; language: string; at: () => number; emit: (e: ServerEvent) => void; signal: AbortSignal },
): Player {
  const { map } = deps;
  const neutralKey = map.fillers.neutral;
  const neutralText = neutralKey ? map.prompts[neutralKey] : undefined;
  return new Player({
    turnId: o.turnId,
    format: o.format,
    voice: o.voice ?? { provider: 'none', id: 'none', language: o.language },
    synthesizer: deps.speech?.synthesizer,
    cache: deps.speech?.cache ?? { get: async () => undefined },
    neutralFiller: neutralKey && neutralText ? { text: localize(neutralText, o.language, map.language), source: neutralKey } : null,
    maxWaitMs: map.fillers.max_wait_ms,
    safeResponse: map.llm ? { text: localize(map.llm.safe_response, o.language, map.language), source: 'llm:safe_response' } : null,
    clock: deps.clock,
    at: o.at,
    emit: o.emit,
    newId: () => deps.ids.uuid(),
    signal: o.signal,
    ...(deps.speech?.timing ? { timing: deps.speech.timing } : {}),
  });
}

/** Word timings for the item a cancel fell in: a second synthesizer request (Polly speech marks), no audio. */
function marksFor(deps: TurnDeps, voice: Voice | undefined) {
  const synthesizer = deps.speech?.synthesizer;
  if (!voice || !synthesizer?.wordMarks) return undefined;
  return (item: { text: string }) => synthesizer.wordMarks!({ text: item.text, voice });
}

/**
 * The audio a session gets: what it asked for when the synthesizer makes it, else PCM at the asked
 * rate (or 16 kHz); null without speech, or when the client asked for none.
 */
function negotiateAudio(deps: TurnDeps, asked: AudioFormat | undefined): AudioFormat | null {
  const synthesizer = deps.speech?.synthesizer;
  if (!asked || !deps.speech) return null;
  if (!synthesizer || synthesizer.supports(asked)) return asked;
  const pcm: AudioFormat = { format: 'pcm', sampleRate: asked.sampleRate };
  return synthesizer.supports(pcm) ? pcm : { format: 'pcm', sampleRate: 16000 };
}

const withoutAudio = (record: ConnectionRecord): ConnectionRecord => {
  const { audio: _audio, ...rest } = record;
  return rest;
};

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

/** How often a running turn reads its lease for a cancel: the barge-in bound is this plus one read (<= 250 ms). */
const CANCEL_POLL_MS = 150;


function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
