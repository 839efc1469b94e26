import * as z from 'zod';
import type { RecordedEvent } from '../checkpoint/record';
import type { Checkpoint } from '../checkpoint/schema';
import type { ServerEvent } from '../protocol/v1';

/*
 * What a turn did, in the terms a QA engineer compares two runs by: the same shape whether it is
 * read from a stored turn record or from a replayed run, so the diff is one pure function.
 */

export const ToolUse = z.discriminatedUnion('kind', [
  /** A tool the LLM called, with the arguments it gave (parsed when they are JSON). */
  z.object({ kind: z.literal('llm_tool'), name: z.string(), arguments: z.unknown() }),
  /** A webhook the flow or a tool ran, with the request the map rendered (a JSON body parsed). */
  z.object({ kind: z.literal('webhook'), name: z.string(), ok: z.boolean(), method: z.string().optional(), url: z.string().optional(), body: z.unknown().optional() }),
]);
export type ToolUse = z.infer<typeof ToolUse>;

export const Observation = z.object({
  /** The intent the classifier chose (null: none above the threshold; absent for a greeting). */
  intent: z.string().nullable(),
  /** The node the turn started at, then every node it entered. */
  path: z.array(z.string()),
  variables: z.record(z.string(), z.unknown()),
  tools: z.array(ToolUse),
  endCall: z.boolean(),
  /** The scripted playlist said, item by item (LLM speech is in `reply`). */
  playlist: z.array(z.object({ kind: z.enum(['speech', 'filler']), source: z.string() })),
  /** The whole text reply the client got. */
  reply: z.string(),
  /** Whether the reply holds LLM text (compared by similarity rather than exactly). */
  llm: z.boolean(),
});
export type Observation = z.infer<typeof Observation>;

/** JSON text parsed, or the text itself when it is not JSON (tool arguments, webhook bodies). */
export const parsedArguments = (text: string): unknown => {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};

/** The observation of a turn from its recorded events, the client events it sent, and the checkpoints around it. */
export function observe(input: { before: Checkpoint; after: Checkpoint; events: readonly RecordedEvent[]; outputs: readonly ServerEvent[] }): Observation {
  const { events } = input;
  // The node the turn stood at once the map's renames applied, else the stored one.
  const migrated = events.find((e) => e.type === 'node_migrated');
  const start = migrated?.to ?? input.before.currentNode;
  const path = [...(start ? [start] : []), ...events.flatMap((e) => (e.type === 'node_transition' ? [e.to] : []))];
  const intentEvent = events.find((e) => e.type === 'intent');
  const tools: ToolUse[] = [];
  for (const e of events) {
    if (e.type === 'tool_call') tools.push({ kind: 'llm_tool', name: e.name, arguments: parsedArguments(e.arguments) });
    if (e.type === 'action') {
      const r = e.request;
      tools.push({ kind: 'webhook', name: e.name, ok: e.ok, ...(r ? { method: r.method, url: r.url, ...(r.body === undefined ? {} : { body: parsedArguments(r.body) }) } : {}) });
    }
  }
  const done = [...input.outputs].reverse().find((e) => e.type === 'response.text.done');
  return {
    intent: intentEvent?.type === 'intent' ? intentEvent.intent : null,
    path,
    variables: input.after.variables,
    tools,
    endCall: events.some((e) => e.type === 'session_end' && e.reason === 'end_call'),
    playlist: events.flatMap((e) => (e.type === 'playlist' ? e.items : [])),
    reply: done?.type === 'response.text.done' ? done.text : '',
    llm: events.some((e) => e.type === 'llm_exchange' && e.purpose !== 'summary'),
  };
}
