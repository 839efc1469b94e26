/* A user's text turn: idempotency, the session lease (racing inputs), superseded inputs, and what a resuming client missed. */
import { committedSeq, type TurnRecord } from '../checkpoint/record';
import { emptyCheckpoint, rememberTurn } from '../checkpoint/schema';
import { addTurnLines } from '../checkpoint/transcript';
import { ParleyError } from '../errors';
import type { ClientMessage } from '../protocol/v1';
import { headOf, leaseTiming, round, type Ctx, type RunnableInput, type SpokenInput } from './context';
import { executeTurn } from './execute-turn';
import { enforceSessionLimits } from './limits';
import { takeLease } from './turn-lease';
import { setTimeout as sleep } from 'node:timers/promises';

/** A text turn: typed, or spoken (`spoken`: transcribed live on the client or from an upload here). */
export async function textTurn(ctx: Ctx, sessionId: string, message: Pick<Extract<ClientMessage, { type: 'input.text' }>, 'turnId' | 'text'>, spoken?: SpokenInput): Promise<void> {
  const { deps } = ctx;
  const arrivedAt = deps.clock.nowMs();
  const input: Extract<RunnableInput, { kind: 'text' }> = { kind: 'text', text: message.text, ...(spoken ? { source: 'speech', stt: spoken.stt } : {}) };
  // The client's hint counts only when it names the session this connection is bound to.
  let head = await headOf(ctx, sessionId);
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
    if (taken.superseded) return await recordSuperseded(ctx, sessionId, head, message.turnId, input);
  } catch (err) {
    await deps.store.endTurn(sessionId, message.turnId).catch(() => undefined);
    throw err;
  }
  await executeTurn(ctx, sessionId, head, message.turnId, input, spoken?.stages);
}

/**
 * A client back on a new connection gets what it missed of the last turn: a turn still running
 * (its events went to the old connection) is waited for, then the last turn's outcome is re-sent
 * unless the client says it has it. A client that asked for the history gets the whole
 * conversation instead, the missed turn included.
 */
export async function resendMissed(
  ctx: Ctx,
  sessionId: string,
  options: { lastTurnId?: string | undefined; history?: boolean | undefined },
  known: TurnRecord | undefined,
): Promise<void> {
  const { lastTurnId } = options;
  const { deps } = ctx;
  const timing = leaseTiming(deps);
  const giveUpAt = deps.clock.nowMs() + timing.waitMs;
  let waited = false;
  let lastSeq: number | undefined;
  for (;;) {
    const lease = await deps.store.readLease(sessionId);
    lastSeq = lease.lastSeq;
    if (!lease.turnId || (lease.leaseUntil ?? 0) < deps.clock.nowMs() || deps.clock.nowMs() > giveUpAt) break;
    waited = true;
    await sleep(timing.pollMs);
  }
  // The head the resume already read is still the head unless a turn ran or committed since.
  const head = !waited && known && lastSeq === known.seq ? known : await deps.store.loadHead(sessionId);
  if (options.history) {
    await ctx.sender.send({ type: 'session.history', messages: head?.checkpoint.transcript ?? [], earlier: head?.checkpoint.transcriptCut ?? false });
    return;
  }
  if (!head || head.turnId === lastTurnId || head.input.kind === 'stop') return;
  // An interrupt record stands for the turn it cut: that turn is the one the client may have missed.
  if (head.input.kind === 'interrupt' && head.input.turnId === lastTurnId) return;
  const turnId = head.input.kind === 'interrupt' ? head.input.turnId : head.turnId;
  await resendOutcome(ctx, sessionId, head, turnId);
}

/** Sends the stored outcome of a turn that already committed; false when `turnId` is new. */
async function resendOutcome(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string): Promise<boolean> {
  const seq = committedSeq(head, turnId);
  if (!head || seq === undefined) return false;
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
async function recordSuperseded(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string, input: Extract<RunnableInput, { kind: 'text' }>): Promise<void> {
  const { deps } = ctx;
  const { text } = input;
  const seq = head ? head.seq + 1 : 0;
  const before = head?.checkpoint ?? emptyCheckpoint();
  const record: TurnRecord = {
    seq,
    turnId,
    status: 'cancelled',
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    input,
    outputs: [],
    events: [{ type: 'cancelled', reason: 'superseded', atMs: 0 }],
    usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 },
    metrics: { runMs: 0, totalMs: round(deps.clock.monotonicMs() - ctx.receivedAtMs) },
    checkpoint: rememberTurn(addTurnLines({ ...before, messages: [...before.messages, { role: 'user', content: text }], turnState: 'user' }, text, ''), turnId, seq),
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
