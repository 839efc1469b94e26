import type { ActionOutcome } from '../actions/port';
import { NODE_HISTORY_LIMIT, type PendingIntent } from '../checkpoint/schema';
import type { Classification, Entities } from './classifier';
import { type DialogueMap, type Localized, type MessageKind, type PlaylistItem, type State, type Target, targetState } from './map';

/*
 * The scripted flow as pure functions of (map, flow state, classification). No I/O: a state that runs
 * a webhook comes back with `runAction`, the runner runs it and hands the outcome to completeAction.
 * Seed 004's statuses: SUCCESS, MISSING_ENTITY (a clarifying question was asked), EXECUTION_ERROR
 * (an action failed; the map's error message is said).
 */

export type FlowStatus = 'SUCCESS' | 'MISSING_ENTITY' | 'EXECUTION_ERROR';

/** Something to say: a playlist item of the map, a failure message, or a text (slot prompt, FAQ answer). */
export type SayItem =
  | PlaylistItem
  | { type: 'message'; kind: MessageKind }
  | { type: 'text'; text: Localized; source: string };

/** The part of the checkpoint the flow reads and writes. */
export interface FlowState {
  node: string | null;
  history: readonly string[];
  variables: Readonly<Record<string, unknown>>;
  pending: PendingIntent | null;
}

export interface FlowResult {
  status: FlowStatus;
  state: FlowState;
  /** Set when the node changed (or the first node was entered). */
  transition: { from: string | null; to: string } | null;
  say: SayItem[];
  endCall: boolean;
  /** The entered state runs this action before anything is said; see completeAction. */
  runAction: string | null;
  /** Prompt keys to say while the action runs. */
  fillers: string[];
  /** Slots asked for by a MISSING_ENTITY result. */
  missing: string[];
}

/** After this many unanswered clarifying questions the pending intent is dropped. */
export const MAX_SLOT_QUESTIONS = 3;

/** The intents that can match at a node: its transitions first, then the global intents. */
export function candidateIntents(map: DialogueMap, node: string | null): string[] {
  const own = node ? Object.keys(map.states[node]?.transitions ?? {}) : [];
  return [...new Set([...own, ...Object.keys(map.global_intents)])];
}

/** A new session: the initial state. */
export function enterFlow(map: DialogueMap): FlowResult {
  return arrive(map, { node: null, history: [], variables: {}, pending: null }, map.initial_state, {});
}

/**
 * One classified user input. Returns null when the input is off-script here (no candidate intent
 * and no slot answer): the caller then tries the FAQ, the LLM, and finally the fallback.
 */
export function advanceFlow(map: DialogueMap, state: FlowState, c: Classification): FlowResult | null {
  const node = state.node ?? map.initial_state;
  const current = { ...state, node };
  // An answer to the pending slot question wins over whatever intent the words resemble: "большую"
  // answers "which size?" even if the model hears a goodbye in it.
  if (state.pending) {
    const filled = fillSlots(map, state.pending.intent, state.pending.values, c.entities);
    if (Object.keys(filled).length > Object.keys(state.pending.values).length) return collect(map, current, state.pending.intent, filled, 0);
  }
  // A state's own transition is more specific than a global intent of the same name.
  const own = c.intent ? stateOf(map, node).transitions[c.intent] : undefined;
  const global = c.intent && own === undefined ? map.global_intents[c.intent] : undefined;
  if (global === 'repeat' && state.pending) {
    const missing = askNext(map, state.pending.intent, state.pending.values);
    return { ...still(current), status: 'MISSING_ENTITY', say: slotPrompts(map, state.pending.intent, missing), missing };
  }
  if (global !== undefined) return globalIntent(map, { ...current, pending: null }, global);

  if (state.pending) {
    const pending = state.pending;
    // The same intent again without new slot values: ask again (`asked` counts questions in a row that got no answer).
    if (c.intent === pending.intent) return collect(map, current, pending.intent, pending.values, pending.asked);
    // No answer and no intent: off-script (an FAQ question, say); notUnderstood asks again if nothing answers it.
    if (!c.intent) return null;
    // Another intent of this state: the user changed their mind; the pending one is dropped.
  }

  if (c.intent && stateOf(map, node).transitions[c.intent] !== undefined) {
    return collect(map, { ...current, pending: null }, c.intent, fillSlots(map, c.intent, {}, c.entities), 0);
  }
  return null;
}

/** Finishes a state entered with `runAction`: its result lands in a variable, or the error is said. */
export function completeAction(map: DialogueMap, before: FlowState, entered: FlowResult, outcome: ActionOutcome): FlowResult {
  const action = entered.runAction ? map.actions[entered.runAction] : undefined;
  const state = stateOf(map, entered.state.node!);
  if (outcome.ok && action) {
    const variables = { ...entered.state.variables, [action.result_variable]: outcome.result };
    return { ...entered, state: { ...entered.state, variables }, say: [...state.system_response.playlist], runAction: null, endCall: state.action === 'END_CALL' };
  }
  const message: SayItem = { type: 'message', kind: outcome.ok ? 'action_failed' : outcome.kind };
  // What the user told us on the way in (slots, `set`) is kept, so a retry has it; the node is not.
  const kept: FlowState = { ...before, variables: entered.state.variables, pending: null };
  if (state.on_error) {
    const recovered = arrive(map, kept, state.on_error, {}, false);
    return { ...recovered, status: 'EXECUTION_ERROR', say: [message, ...recovered.say], runAction: null };
  }
  // No recovery state: the conversation stays where it was, as if the transition never happened.
  return { ...still(kept), status: 'EXECUTION_ERROR', say: [message] };
}

/**
 * Off-script input nothing else answered: the map's not-understood message, then the pending slot
 * question again, or the state's reprompt. A question left unanswered MAX_SLOT_QUESTIONS times in a
 * row is dropped, so nobody is stuck in it.
 */
export function notUnderstood(map: DialogueMap, state: FlowState): FlowResult {
  const node = state.node ?? map.initial_state;
  const pending = state.pending;
  if (pending && pending.asked < MAX_SLOT_QUESTIONS) {
    const missing = askNext(map, pending.intent, pending.values);
    return {
      ...still({ ...state, node, pending: { ...pending, asked: pending.asked + 1 } }),
      status: 'MISSING_ENTITY',
      say: [{ type: 'message', kind: 'not_understood' }, ...slotPrompts(map, pending.intent, missing)],
      missing,
    };
  }
  const s = stateOf(map, node);
  return {
    ...still({ ...state, node, pending: null }),
    say: [{ type: 'message', kind: 'not_understood' }, ...(s.system_response.reprompt ?? s.system_response.playlist)],
  };
}

/** Collects slots of `intent`; asks for what is missing, or takes the intent's transition. */
function collect(map: DialogueMap, state: FlowState & { node: string }, intent: string, values: PendingIntent['values'], asked: number): FlowResult {
  const missing = missingSlots(map, intent, values);
  if (missing.length > 0) {
    const ask = askNext(map, intent, values);
    return {
      ...still({ ...state, pending: { intent, values, asked: asked + 1 } }),
      status: 'MISSING_ENTITY',
      say: slotPrompts(map, intent, ask),
      missing: ask,
    };
  }
  const target = stateOf(map, state.node).transitions[intent] as Target;
  const set = typeof target === 'string' ? {} : target.set;
  return arrive(map, { ...state, pending: null }, targetState(target), { ...set, ...values });
}

function globalIntent(map: DialogueMap, state: FlowState & { node: string }, global: 'repeat' | 'back' | Target): FlowResult {
  if (global === 'repeat') return { ...still(state), say: [...stateOf(map, state.node).system_response.playlist] };
  if (global === 'back') {
    const previous = state.history.at(-1);
    if (!previous) return { ...still(state), say: [...stateOf(map, state.node).system_response.playlist] };
    // Going back never re-runs the state's action: "back" must not place a second order.
    return arrive(map, { ...state, history: state.history.slice(0, -1) }, previous, {}, false, false);
  }
  return arrive(map, state, targetState(global), typeof global === 'string' ? {} : global.set);
}

/**
 * Enters `to`. With `runAction` set the playlist waits for completeAction. `remember` pushes the
 * node left behind onto the history ("back" pops instead).
 */
function arrive(map: DialogueMap, state: FlowState, to: string, set: Record<string, unknown>, runs = true, remember = true): FlowResult {
  const target = stateOf(map, to);
  const from = state.node;
  const history = remember && from !== null ? [...state.history, from].slice(-NODE_HISTORY_LIMIT) : [...state.history];
  const runAction = runs && target.run ? target.run : null;
  return {
    status: 'SUCCESS',
    state: { node: to, history, variables: { ...state.variables, ...set }, pending: null },
    transition: { from, to },
    say: runAction ? [] : [...target.system_response.playlist],
    endCall: !runAction && target.action === 'END_CALL',
    runAction,
    fillers: runAction ? [...(target.fillers ?? [])] : [],
    missing: [],
  };
}

function still(state: FlowState): FlowResult {
  return stayAndSay(state, []);
}

/** Moves to a state on request from outside the scripted flow (the LLM's transition_to tool). */
export function enterState(map: DialogueMap, state: FlowState, to: string): FlowResult {
  return arrive(map, { ...state, pending: null }, to, {});
}

/** Says something without moving: an FAQ answer, say. */
export function stayAndSay(state: FlowState, say: SayItem[]): FlowResult {
  return { status: 'SUCCESS', state, transition: null, say, endCall: false, runAction: null, fillers: [], missing: [] };
}

/** Adds the slot values the entities provide (slots not filled yet only). */
function fillSlots(map: DialogueMap, intent: string, values: PendingIntent['values'], entities: Entities): PendingIntent['values'] {
  const filled = { ...values };
  for (const [slot, def] of Object.entries(map.intents[intent]?.slots ?? {})) {
    const value = entities[def.entity];
    if (filled[slot] === undefined && value !== undefined) filled[slot] = value;
  }
  return filled;
}

/** The slots the next clarifying question asks for: at most `ask_per_question` of the missing ones. */
function askNext(map: DialogueMap, intent: string, values: PendingIntent['values']): string[] {
  return missingSlots(map, intent, values).slice(0, map.intents[intent]?.ask_per_question ?? 1);
}

function missingSlots(map: DialogueMap, intent: string, values: PendingIntent['values']): string[] {
  return Object.entries(map.intents[intent]?.slots ?? {})
    .filter(([slot, def]) => def.required && values[slot] === undefined)
    .map(([slot]) => slot);
}

function slotPrompts(map: DialogueMap, intent: string, slots: readonly string[]): SayItem[] {
  return slots.flatMap((slot) => {
    const prompt = map.intents[intent]?.slots[slot]?.prompt;
    return prompt === undefined ? [] : [{ type: 'text' as const, text: prompt, source: `slot:${intent}.${slot}` }];
  });
}

function stateOf(map: DialogueMap, name: string): State {
  const state = map.states[name];
  // loadDialogueMap checked every reference; a stored node the map no longer has is the replay
  // issue's migration case.
  if (!state) throw new Error(`dialogue map has no state '${name}'`);
  return state;
}
