/* Barge-in after the fact: cutting a turn's stored answer to what the user heard. */
import type { TurnRecord } from '../checkpoint/record';
import { cutToHeard, wordMarksFrom } from '../speech/heard';
import { leaseTiming, round, type Ctx } from './context';

/**
 * `response.cancel`: the turn may still run in another invocation (it sees the cancel on the lease
 * within one poll and cuts its own answer), or it may have committed already; then its answer is
 * cut to what was heard by a record of its own.
 */
export async function cancelTurn(ctx: Ctx, sessionId: string, turnId: string, playedMs: number | undefined): Promise<void> {
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
export async function interruptCommitted(ctx: Ctx, sessionId: string, cutTurn: TurnRecord, playedMs: number): Promise<void> {
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
    const cut = await cutToHeard({ checkpoint: head.checkpoint, spoken: cutTurn.speech.items, playedMs, marksFor: wordMarksFrom(deps.speech?.synthesizer, cutTurn.speech.voice) });
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
