import type { ActionRunner, TemplateContext } from '../actions/port';
import { actionEvent, type RecordedEvent, type TurnInput, type TurnStatus } from '../checkpoint/record';
import type { Checkpoint, LlmMessage } from '../checkpoint/schema';
import type { FaqIndex } from '../faq/port';
import type { IntentClassifier } from '../flow/classifier';
import {
  advanceFlow,
  candidateIntents,
  completeAction,
  enterFlow,
  enterState,
  notUnderstood,
  stayAndSay,
  type FlowResult,
  type FlowState,
  type SayItem,
} from '../flow/engine';
import { type DialogueMap, languagesOf } from '../flow/map';
import { reconcileCheckpoint } from '../flow/reconcile';
import { renderSay, replyText } from '../flow/playlist';
import type { ServerEvent, Usage } from '../protocol/v1';
import { addUsage, answerWithLlm, foldContext, llmSettingsFor, type LlmPorts } from './llm-turn';
import { addLlmUsage } from '../llm/usage';
import { SentenceSegmenter } from '../llm/segmenter';
import type { Clock } from './ports';

/**
 * What the runner tells the player, besides the client's events: an item to say, in playlist order
 * (the player makes and sends its audio, and a filler's hint), and the moment slow work starts (the
 * player's cue for fillers and `response.status`).
 */
export type SpeechCue =
  | { type: 'cue.say'; kind: 'speech' | 'filler'; text: string; source: string }
  | { type: 'cue.wait'; on: 'action' | 'llm' };

/** Everything a turn yields: events for the client, and cues for the player. */
export type RunnerEvent = ServerEvent | SpeechCue;

export const isCue = (event: RunnerEvent): event is SpeechCue => event.type.startsWith('cue.');

/** The ports a turn uses; hosts pass adapters, tests pass fakes or the same adapters. */
export interface TurnPorts {
  classifier: IntentClassifier;
  faq: FaqIndex;
  actions: ActionRunner;
  clock: Clock;
  /** The LLM; without it off-script input gets the map's fallback. */
  llm?: LlmPorts | undefined;
}

export interface TurnContext extends TurnPorts {
  turnId: string;
  sessionId?: string;
  /** What the user did; an `interrupt` record is written by the cancel, never run. */
  input: Exclude<TurnInput, { kind: 'interrupt' }>;
  /** The checkpoint after the previous turn (an empty one for a new session). */
  checkpoint: Checkpoint;
  map: DialogueMap;
  /** Aborted when the client cancels the turn (response.cancel, from another invocation). */
  signal?: AbortSignal;
}

export interface TurnOutcome {
  checkpoint: Checkpoint;
  status: TurnStatus;
  events: RecordedEvent[];
  usage: Usage;
  runMs: number;
}

/**
 * One turn, as data: yields the events for the client as they happen and returns the checkpoint
 * after the turn. The caller sends what is yielded and commits what is returned; the only I/O is
 * through the ports (webhooks, the LLM). Routing follows seed 004: a scripted intent, then the FAQ,
 * then the LLM, else the map's fallback.
 */
export async function* runTurn(ctx: TurnContext): AsyncGenerator<RunnerEvent, TurnOutcome, void> {
  const started = ctx.clock.monotonicMs();
  const at = () => Math.round((ctx.clock.monotonicMs() - started) * 1000) / 1000;
  const events: RecordedEvent[] = [];
  let usage: Usage = { llm: {}, ttsCharacters: 0, sttSeconds: 0 };
  const { input, turnId, map } = ctx;
  const signal = ctx.signal ?? new AbortController().signal;
  // A checkpoint from an earlier version of the map: its node follows the map's renames, or recovers.
  const reconciled = reconcileCheckpoint(map, ctx.checkpoint);
  for (const m of reconciled.migrations) events.push({ type: 'node_migrated', from: m.from, to: m.to, reason: m.reason, atMs: at() });
  let checkpoint = reconciled.checkpoint;
  let status: TurnStatus = 'completed';
  const finish = (): TurnOutcome => ({
    checkpoint: { ...checkpoint, turnState: 'user', usage: addUsage(ctx.checkpoint.usage, usage.llm) },
    status,
    events,
    usage,
    runMs: at(),
  });

  if (input.kind === 'stop') {
    events.push({ type: 'session_end', reason: input.reason, atMs: at() });
    checkpoint = { ...checkpoint, ended: true };
    status = 'stopped';
    return finish();
  }

  // Text already streamed to the client this turn (the LLM's answer); what the flow says follows it.
  let streamed = '';
  let result: FlowResult;
  if (input.kind === 'start') {
    checkpoint = { ...checkpoint, language: sessionLanguage(map, input, checkpoint) };
    yield { type: 'turn.started', turnId };
    result = enterFlow(map);
  } else {
    if (input.text.trim() === '') {
      // Seed 000: nothing was said; listen again without classifying anything.
      events.push({ type: 'empty_input', atMs: at() });
      return finish();
    }
    yield { type: 'turn.started', turnId };
    checkpoint = { ...checkpoint, messages: [...checkpoint.messages, { role: 'user', content: input.text }] };
    const understood = await understand(ctx, checkpoint, input.text, events, at);
    checkpoint = { ...checkpoint, previousIntentLeader: understood.leader };
    if (understood.result) {
      result = understood.result;
    } else {
      // Off-script, not in the FAQ, and the state has the LLM: it answers, streaming.
      const state = flowStateOf(checkpoint);
      const language = checkpoint.language ?? map.language;
      // The state's fillers bridge the wait for the first sentence; speech starts at that sentence.
      const fillers = renderSay(map, (map.states[state.node ?? '']?.fillers ?? []).map((key) => ({ type: 'filler' as const, key })), templateContext(ctx, state, language), state.node ?? '');
      yield { type: 'cue.wait', on: 'llm' };
      for (const f of fillers.utterances) yield { type: 'cue.say', kind: 'filler', text: f.text, source: f.source };
      const sentences = new SentenceSegmenter(language);
      const agent = answerWithLlm({
        map,
        ports: ctx.llm!,
        actions: ctx.actions,
        settings: llmSettingsFor(map, state.node ?? map.initial_state)!,
        checkpoint,
        language,
        template: templateContext(ctx, state, language),
        signal,
        now: () => ctx.clock.nowMs(),
        at,
      });
      let step = await agent.next();
      while (!step.done) {
        streamed += step.value;
        yield { type: 'response.text.delta', turnId, text: step.value };
        for (const sentence of sentences.push(step.value)) if (sentence.trim()) yield { type: 'cue.say', kind: 'speech', text: sentence.trim(), source: 'llm' };
        step = await agent.next();
      }
      for (const sentence of sentences.flush()) if (sentence.trim()) yield { type: 'cue.say', kind: 'speech', text: sentence.trim(), source: 'llm' };
      const outcome = step.value;
      events.push(...outcome.events);
      usage = { ...usage, llm: outcome.usage };
      checkpoint = { ...checkpoint, messages: [...checkpoint.messages, ...(outcome.messages as LlmMessage[])] };
      const after: FlowState = { ...state, variables: { ...state.variables, ...outcome.variables } };
      const say: SayItem[] = [];
      if (outcome.unsafe) say.push({ type: 'text', text: map.llm!.safe_response, source: 'llm:safe_response' });
      else if (outcome.error) say.push({ type: 'message', kind: outcome.error });
      // A model that said nothing at all (tool rounds exhausted, an empty answer) must not leave silence.
      else if (!outcome.cancelled && !streamed.trim() && !outcome.transitionTo) say.push(...notUnderstood(map, state).say);
      if (outcome.cancelled) {
        status = 'cancelled';
        const reason: unknown = signal.reason;
        const playedMs = typeof (reason as { playedMs?: unknown })?.playedMs === 'number' ? (reason as { playedMs: number }).playedMs : undefined;
        events.push({ type: 'cancelled', ...(playedMs === undefined ? {} : { playedMs }), atMs: at() });
      }
      result = outcome.transitionTo && !outcome.cancelled ? enterState(map, after, outcome.transitionTo) : stayAndSay(after, say);
      if (outcome.transitionTo && say.length) result = { ...result, say: [...say, ...result.say] };
      if (outcome.endCall && !outcome.cancelled) result = { ...result, endCall: true };
    }
  }

  const language = checkpoint.language ?? map.language;
  const before = flowStateOf(checkpoint);
  if (result.runAction) {
    const context = templateContext(ctx, result.state, language);
    const fillers = renderSay(map, result.fillers.map((key) => ({ type: 'filler' as const, key })), context, result.state.node!);
    // The client hears (or sees) that slow work starts, then the state's fillers.
    yield { type: 'cue.wait', on: 'action' };
    for (const f of fillers.utterances) yield { type: 'cue.say', kind: 'filler', text: f.text, source: f.source };
    const outcome = await ctx.actions.run(result.runAction, context);
    events.push(actionEvent(result.runAction, outcome, at()));
    result = completeAction(map, before, result, outcome);
  }
  if (result.status !== 'SUCCESS' || input.kind === 'text') {
    events.push({ type: 'flow', status: result.status, missing: result.missing, atMs: at() });
  }

  if (result.transition) {
    const { from, to } = result.transition;
    events.push({ type: 'node_transition', from, to, atMs: at() });
    yield { type: 'node.transition', turnId, from, to };
  }
  checkpoint = {
    ...checkpoint,
    currentNode: result.state.node,
    nodeHistory: [...result.state.history],
    variables: { ...result.state.variables },
    pending: result.state.pending,
  };

  const rendered = renderSay(map, result.say, templateContext(ctx, result.state, language), result.state.node ?? '');
  for (const p of rendered.problems) events.push({ type: 'template_missing', source: p.source, missing: p.missing, atMs: at() });
  events.push({ type: 'playlist', items: rendered.utterances.map((u) => ({ kind: u.kind, source: u.source })), atMs: at() });
  for (const u of rendered.utterances) yield { type: 'cue.say', kind: u.kind, text: u.text, source: u.source };
  const said = replyText(rendered.utterances);
  if (said) {
    // Scripted text is known whole; one delta keeps the stream shape of the LLM path.
    const delta = streamed ? ` ${said}` : said;
    yield { type: 'response.text.delta', turnId, text: delta };
    streamed += delta;
    checkpoint = { ...checkpoint, messages: [...checkpoint.messages, { role: 'assistant', content: said }] };
  }
  if (streamed) yield { type: 'response.text.done', turnId, text: streamed };

  if (result.endCall) {
    events.push({ type: 'session_end', reason: 'end_call', atMs: at() });
    yield { type: 'session.ended', reason: 'end_call' };
    checkpoint = { ...checkpoint, ended: true };
  }

  // Entering a state whose LLM context starts over; and, in any case, the bounded window.
  const entered = result.transition ? map.states[result.transition.to]?.llm : undefined;
  const reset = entered && entered.context !== 'append';
  const window = map.llm?.window ?? 20;
  if (reset || checkpoint.messages.length > window) {
    const folded = await foldContext({
      checkpoint: reset && entered.context === 'reset' ? { ...checkpoint, summary: null } : checkpoint,
      window,
      everything: Boolean(reset),
      ports: reset && entered.context === 'reset' ? undefined : ctx.llm,
      language,
      now: () => ctx.clock.nowMs(),
      at,
    });
    checkpoint = folded.checkpoint;
    if (folded.exchange) events.push(folded.exchange);
    if (folded.event) events.push(folded.event);
    usage = { ...usage, llm: addLlmUsage(usage.llm, folded.usage) };
  }
  return finish();
}

/**
 * Classification, then the flow; off-script input goes to the FAQ, then to the LLM (result null),
 * then to the fallback.
 */
async function understand(
  ctx: TurnContext,
  checkpoint: Checkpoint,
  text: string,
  events: RecordedEvent[],
  at: () => number,
): Promise<{ result: FlowResult | null; leader: string | null }> {
  const { map } = ctx;
  const language = checkpoint.language ?? map.language;
  const state = flowStateOf(checkpoint);
  const node = state.node ?? map.initial_state;
  const c = await ctx.classifier.classify(text, { language, candidates: candidateIntents(map, node) });
  const stable = c.leader !== null && c.leader === checkpoint.previousIntentLeader;
  events.push({ type: 'intent', intent: c.intent, score: c.score, leader: c.leader, stable, entities: c.entities, atMs: at() });
  const leader = c.leader;

  const scripted = advanceFlow(map, state, c);
  if (scripted) return { result: scripted, leader };

  const hit = ctx.faq.search(text, language);
  if (hit) {
    events.push({ type: 'faq', id: hit.id, score: hit.score, atMs: at() });
    // The FAQ answers and the conversation stays where it was, slot filling included.
    return { result: stayAndSay(state, [{ type: 'text', text: hit.answer, source: `faq:${hit.id}` }]), leader };
  }
  if (ctx.llm && llmSettingsFor(map, node)) return { result: null, leader };

  const result = notUnderstood(map, state);
  // A pending slot question asked again is not a fallback; giving up on it, or plain off-script input, is.
  if (result.status !== 'MISSING_ENTITY') events.push({ type: 'fallback', atMs: at() });
  return { result, leader };
}

/** The language a turn speaks: the one a new session asked for (if the map has it), else the session's. */
export function sessionLanguage(map: DialogueMap, input: TurnInput, checkpoint: Checkpoint): string {
  if (input.kind === 'start') {
    const asked = typeof input.metadata?.language === 'string' ? input.metadata.language : null;
    return asked && languagesOf(map).includes(asked) ? asked : map.language;
  }
  return checkpoint.language ?? map.language;
}

function flowStateOf(checkpoint: Checkpoint): FlowState {
  return { node: checkpoint.currentNode, history: checkpoint.nodeHistory, variables: checkpoint.variables, pending: checkpoint.pending };
}

function templateContext(ctx: TurnContext, state: FlowState, language: string): TemplateContext {
  return {
    session: {
      variables: { ...state.variables },
      language,
      node: state.node,
      ...(ctx.sessionId ? { id: ctx.sessionId } : {}),
    },
  };
}
