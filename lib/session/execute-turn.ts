/* Running one turn: the runner, the player and the outbox together, the lease watch, the commit. */
import type { RecordedEvent, TurnRecord } from '../checkpoint/record';
import { emptyAudioCache } from '../speech/audio-cache';
import { withPrepared, type PreparedTurn } from './early-work';
import { emptyCheckpoint, rememberTurn } from '../checkpoint/schema';
import { addTurnLines } from '../checkpoint/transcript';
import { traceIdFor } from '../checkpoint/trace';
import { completedCost, meterTurn } from '../cost/turn';
import { inTurnSpan, type TurnSpan } from '../observability/tracing';
import { localize } from '../flow/map';
import type { ServerEvent } from '../protocol/v1';
import { isCue, runTurn, sessionLanguage, type TurnOutcome } from '../runner/run-turn';
import type { AudioFormat } from '../speech/format';
import { cutToHeard, wordMarksFrom } from '../speech/heard';
import { Player, type PlayerReport } from '../speech/player';
import type { Voice } from '../speech/tts/port';
import { Outbox } from '../transport/outbox';
import { handOver } from '../transport/sender';
import { stopReasonOf, watchTurn } from './cancel-watch';
import { describe, leaseTiming, round, type Ctx, type RunnableInput, type SpeechStages, type TurnDeps } from './context';
import { interruptCommitted } from './interrupt';

/**
 * Runs the turn, streaming its events, then commits record head+1 with one conditional put.
 *
 * The runner's events go out through one outbox: what it yields back to back travels as one
 * message, and nothing waits for the next event. Its speech cues go to the player, which makes the
 * audio (cache or synthesizer) and sends it through the same outbox. The turn holds the session's
 * lease item while it runs and watches it for a cancel; the commit waits for the player, so the
 * stored answer is what was said (cut to what was heard when the client cancelled).
 */
export async function executeTurn(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string, input: RunnableInput, stages?: SpeechStages): Promise<void> {
  // The turn's span (a no-op with tracing off): everything below, provider calls included, runs inside it.
  const start = { sessionId, turnId, seq: head ? head.seq + 1 : 0, inputKind: input.kind, nodeBefore: head?.checkpoint.currentNode ?? null };
  try {
    await inTurnSpan(start, (span) => runAndCommit(ctx, sessionId, head, turnId, input, stages, span));
  } finally {
    ctx.deps.early?.forget(sessionId, turnId);
  }
}

async function runAndCommit(ctx: Ctx, sessionId: string, head: TurnRecord | undefined, turnId: string, input: RunnableInput, stages: SpeechStages | undefined, span: TurnSpan): Promise<void> {
  const { deps, log } = ctx;
  // What partial transcripts prepared for this turn, if they guessed on this very checkpoint.
  const early = deps.early?.peek(sessionId, turnId);
  const prepared = early && early.baseSeq === (head?.seq ?? null) ? early : undefined;
  const at = () => round(deps.clock.monotonicMs() - ctx.receivedAtMs);
  // Sends are handed to the sender at once (posted in order): when the record is made the sender has
  // counted every message of the turn for its cost ledger, while the last burst is still on its way.
  const wire = handOver(ctx.sender);
  const outbox = new Outbox(wire);
  const outputs: ServerEvent[] = [];
  // The reply as the client saw it, even when a cancel stopped it before its text.done.
  let reply = '';
  const emit = (event: ServerEvent) => {
    if (event.type === 'response.text.delta') reply += event.text;
    else if (event.type === 'response.text.done') reply = event.text;
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
  const player = newPlayer(deps, { turnId, format: voice ? format : null, voice, language, at, emit, signal: AbortSignal.any([signal, failed.signal]), prepared });
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
  after = addTurnLines(after, input.kind === 'text' ? input.text : undefined, reply);
  events = [...events, ...report.events];
  if (prepared) events.push(judgeGuess(prepared, events, at()));
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
      const cut = await cutToHeard({ checkpoint: after, spoken: report.spoken, playedMs: cancel.playedMs, marksFor: wordMarksFrom(deps.speech?.synthesizer, voice) });
      after = cut.checkpoint;
      events.push({ type: 'interrupted', playedMs: cancel.playedMs, heardWords: cut.heardWords, marks: cut.marks, atMs: at() });
    }
  }
  // Seed 004: while its speech plays the turn is the bot's; a cancel hands it to the user.
  after = { ...after, turnState: report.spoken.length && !stopped ? 'bot' : 'user' };
  // Early synthesis is this turn's cost whether or not the answer used it; the recognizer's seconds too.
  const ttsCharacters = report.ttsCharacters + (prepared?.ttsCharacters ?? 0);
  const sttSeconds = input.kind === 'text' && input.stt ? input.stt.audioMs / 1000 : 0;
  const usage = { ...outcome.usage, ttsCharacters: outcome.usage.ttsCharacters + ttsCharacters, sttSeconds: outcome.usage.sttSeconds + sttSeconds };
  // Seed 004's stages count from the user's first audio: a spoken input moves everything by its lead.
  const lead = stages?.leadMs ?? 0;
  const shift = (ms: number) => round(ms + lead);
  const stageMetrics = {
    t1: 0,
    t2: stages ? Math.max(0, shift(stages.finalMs)) : 0,
    t3: shift(t3),
    ...(t4 === undefined ? {} : { t4: shift(t4) }),
    ...(report.firstChunkAtMs === undefined ? {} : { t5: shift(report.firstChunkAtMs) }),
    ...(report.firstSentAtMs === undefined ? {} : { t6: shift(report.firstSentAtMs) }),
  };
  const seq = head ? head.seq + 1 : 0;
  const draft: TurnRecord = {
    seq,
    turnId,
    status,
    createdAt: new Date(deps.clock.nowMs()).toISOString(),
    input,
    outputs,
    events,
    usage,
    metrics: { runMs: outcome.runMs, totalMs: at(), ...stageMetrics },
    checkpoint: rememberTurn({ ...after, usage: { ...after.usage, ttsCharacters: after.usage.ttsCharacters + ttsCharacters, sttSeconds: after.usage.sttSeconds + sttSeconds } }, turnId, seq),
    ...(voice && report.spoken.length ? { speech: { voice, items: report.spoken } } : {}),
  };
  // The last burst is posted first, then the commit is written while it travels: a turn that did
  // no I/O (a cached reply) would otherwise hold its first audio until the put was on its way.
  await outbox.drain();
  const record = deps.cost
    ? meterTurn(deps.cost, { sessionId, draft, voice, inboundBody: ctx.body, sender: ctx.sender, elapsedMs: deps.clock.monotonicMs() - ctx.receivedAtMs, completes: input.kind !== 'stop', previous: head })
    : draft;
  const drained = wire.posted();
  const commitStarted = deps.clock.monotonicMs();
  const [commit] = await Promise.allSettled([deps.store.commitTurn(sessionId, record).then(() => deps.clock.monotonicMs()), drained]);
  if (commit.status === 'rejected') {
    await deps.store.endTurn(sessionId, turnId).catch(() => undefined);
    throw commit.reason;
  }
  const committed = commit.value;
  span.committed(record);
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
      : ctx.sender.send({ type: 'turn.completed', turnId, usage: record.usage, sessionUsage: record.checkpoint.usage, ...completedCost(deps.cost, record), metrics }).catch((err: unknown) => {
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

function newPlayer(
  deps: TurnDeps,
  o: { turnId: string; format: AudioFormat | null; voice: Voice | undefined; language: string; at: () => number; emit: (e: ServerEvent) => void; signal: AbortSignal; prepared: PreparedTurn | undefined },
): Player {
  const { map } = deps;
  const neutralKey = map.fillers.neutral;
  const neutralText = neutralKey ? map.prompts[neutralKey] : undefined;
  return new Player({
    turnId: o.turnId,
    format: o.format,
    voice: o.voice ?? { provider: 'none', id: 'none', language: o.language },
    synthesizer: deps.speech?.synthesizer,
    cache: withPrepared(deps.speech?.cache ?? emptyAudioCache, o.prepared, deps.early?.waitMs ?? 0),
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

/** Seed 004: whether the leader guessed from the partials is what the final input was classified as. */
function judgeGuess(prepared: PreparedTurn, events: readonly RecordedEvent[], atMs: number): RecordedEvent {
  const final = events.find((e) => e.type === 'intent');
  return {
    type: 'early_guess',
    intent: prepared.intent,
    right: final !== undefined && final.intent === prepared.intent,
    partials: prepared.partials,
    prepared: prepared.audio.size,
    used: prepared.used.size,
    atMs,
  };
}

/** How often a running turn reads its lease for a cancel: the barge-in bound is this plus one read (<= 250 ms). */
const CANCEL_POLL_MS = 150;
