import type { Classification } from './classifier';
import type { DialogueMap, State, Transition } from './map';
import { renderTemplate } from './template';

/** Where the flow stands: the part of the checkpoint the engine reads. */
export interface FlowPosition {
  node: string | null;
  variables: Readonly<Record<string, unknown>>;
}

/** What one step of the flow decided; the runner turns it into events and a new checkpoint. */
export interface FlowStep {
  /** Set when the step moved to another node (or entered the first one). */
  transition: { from: string | null; to: string } | null;
  node: string;
  variables: Record<string, unknown>;
  /** What the bot says, in order. */
  say: string[];
  endCall: boolean;
}

/** The intents that can match at a node: its own transitions first, then the global ones. */
export function candidateIntents(map: DialogueMap, node: string | null): string[] {
  const own = node ? Object.keys(map.states[node]?.transitions ?? {}) : [];
  return [...new Set([...own, ...Object.keys(map.global_transitions)])];
}

/** Entering the map: the greeting of a new session. */
export function enterFlow(map: DialogueMap): FlowStep {
  return arrive(map, null, map.initial_state, {});
}

/** One user input, already classified, moves the flow. */
export function advanceFlow(map: DialogueMap, position: FlowPosition, classification: Classification): FlowStep {
  const node = position.node ?? map.initial_state;
  const state = stateOf(map, node);
  const transition: Transition | undefined = classification.intent
    ? (state.transitions[classification.intent] ?? map.global_transitions[classification.intent])
    : undefined;
  if (!transition) {
    const variables = { ...position.variables };
    const reprompt = renderTemplate(state.system_response.reprompt ?? state.system_response.text, variables);
    return { transition: null, node, variables, say: [map.fallback, reprompt], endCall: false };
  }
  const to = typeof transition === 'string' ? transition : transition.to;
  const set = typeof transition === 'string' ? {} : transition.set;
  return arrive(map, node, to, { ...position.variables, ...set });
}

function arrive(map: DialogueMap, from: string | null, to: string, variables: Record<string, unknown>): FlowStep {
  const state = stateOf(map, to);
  return {
    transition: { from, to },
    node: to,
    variables,
    say: [renderTemplate(state.system_response.text, variables)],
    endCall: state.action === 'END_CALL',
  };
}

function stateOf(map: DialogueMap, name: string): State {
  const state = map.states[name];
  // loadDialogueMap checked every reference; a stored node the map no longer has is the replay
  // issue's migration case.
  if (!state) throw new Error(`dialogue map has no state '${name}'`);
  return state;
}
