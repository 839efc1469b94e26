import * as z from 'zod';
import { ParleyError } from '../errors';

/*
 * The dialogue map as the foundation needs it: states with a response, transitions keyed by
 * intent, keyword intents, END_CALL. The dialogue-engine issue grows it (playlists, entities, NLU
 * examples, FAQ); the engine only reads it through the types below.
 */

const StateName = z.string().regex(/^[A-Za-z_][\w.-]*$/, 'state names are letters, digits, _ . -');

/** A transition: the target state, optionally setting variables on the way. */
export const Transition = z.union([
  StateName,
  z.object({ to: StateName, set: z.record(z.string(), z.string()).default({}) }),
]);
export type Transition = z.infer<typeof Transition>;

export const State = z.object({
  system_response: z.object({
    /** Said when the state is entered. `{{ variables.name }}` inserts a gathered variable. */
    text: z.string().min(1),
    /** Said after the fallback when input is not understood here; defaults to `text`. */
    reprompt: z.string().min(1).optional(),
  }),
  transitions: z.record(z.string(), Transition).default({}),
  action: z.literal('END_CALL').optional(),
});
export type State = z.infer<typeof State>;

export const Intent = z.object({
  /** Words or phrases; an input matches when one occurs in it as whole words (case-insensitive). */
  keywords: z.array(z.string().min(1)).min(1),
});

export const DialogueMap = z.object({
  $schema: z.string().optional(),
  name: z.string().min(1),
  language: z.string().min(2).default('en'),
  initial_state: StateName,
  /** Said when no intent of the current state (or a global one) matches. */
  fallback: z.string().min(1),
  intents: z.record(z.string(), Intent),
  /** Transitions that apply in every state (goodbye, start over ...). */
  global_transitions: z.record(z.string(), Transition).default({}),
  states: z.record(StateName, State),
});
export type DialogueMap = z.infer<typeof DialogueMap>;

/** Validates a parsed map: schema first, then references, each error with its JSON path. */
export function loadDialogueMap(input: unknown): DialogueMap {
  const parsed = DialogueMap.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((i) => `  $.${i.path.join('.')}: ${i.message}`);
    throw new ParleyError('map.invalid', `dialogue map is invalid:\n${lines.join('\n')}`);
  }
  const map = parsed.data;
  const problems: string[] = [];
  if (!map.states[map.initial_state]) problems.push(`$.initial_state: unknown state '${map.initial_state}'`);
  const checkTransitions = (path: string, transitions: Record<string, Transition>) => {
    for (const [intent, t] of Object.entries(transitions)) {
      const to = typeof t === 'string' ? t : t.to;
      if (!map.intents[intent]) problems.push(`${path}.${intent}: unknown intent '${intent}'`);
      if (!map.states[to]) problems.push(`${path}.${intent}: unknown state '${to}'`);
    }
  };
  checkTransitions('$.global_transitions', map.global_transitions);
  for (const [name, state] of Object.entries(map.states)) {
    checkTransitions(`$.states.${name}.transitions`, state.transitions);
  }
  if (problems.length) throw new ParleyError('map.invalid', `dialogue map is invalid:\n  ${problems.join('\n  ')}`);
  return map;
}
