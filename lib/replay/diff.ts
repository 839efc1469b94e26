import { isDeepStrictEqual } from 'node:util';
import * as z from 'zod';
import type { Observation, ToolUse } from './observe';
import { textSimilarity } from './similarity';

/** One way a replayed turn differs from the recorded one. */
export const Difference = z.object({
  field: z.enum(['intent', 'path', 'variables', 'tools', 'end_call', 'playlist', 'reply']),
  /** The variable or tool that differs. */
  key: z.string().optional(),
  /** Absent: unset (a variable), or no such call (a tool). */
  before: z.unknown().optional(),
  after: z.unknown().optional(),
  /** Reply text: 0..1, how alike the two texts are (1: the same words). */
  similarity: z.number().optional(),
});
export type Difference = z.infer<typeof Difference>;

export interface DiffOptions {
  /**
   * LLM text at least this alike counts as the same answer (a live model never repeats itself word
   * for word). 1: only identical text; scripted text is always compared exactly.
   */
  similarity: number;
}

/**
 * The semantic differences between two observations of one turn: node path, intent, each variable,
 * each tool call (name and arguments), END_CALL, the playlist, and the reply text.
 */
export function diffObservations(before: Observation, after: Observation, options: DiffOptions): Difference[] {
  const out: Difference[] = [];
  if (before.intent !== after.intent) out.push({ field: 'intent', before: before.intent, after: after.intent });
  if (!isDeepStrictEqual(before.path, after.path)) out.push({ field: 'path', before: before.path, after: after.path });
  for (const key of [...new Set([...Object.keys(before.variables), ...Object.keys(after.variables)])].sort()) {
    const b = before.variables[key];
    const a = after.variables[key];
    if (!isDeepStrictEqual(b, a)) out.push({ field: 'variables', key, before: b, after: a });
  }
  out.push(...diffTools(before.tools, after.tools));
  if (before.endCall !== after.endCall) out.push({ field: 'end_call', before: before.endCall, after: after.endCall });
  if (!isDeepStrictEqual(before.playlist, after.playlist)) {
    out.push({ field: 'playlist', before: before.playlist.map((i) => i.source), after: after.playlist.map((i) => i.source) });
  }
  if (before.reply !== after.reply) {
    const similarity = textSimilarity(before.reply, after.reply);
    const llm = before.llm || after.llm;
    if (!llm || similarity < options.similarity) out.push({ field: 'reply', before: before.reply, after: after.reply, similarity });
  }
  return out;
}

const toolKey = (t: ToolUse) => `${t.kind === 'llm_tool' ? 'tool' : 'webhook'} ${t.name}`;
/** What is compared of a call: its arguments (a webhook's: method, url, body, and whether it worked). */
const toolArgs = (t: ToolUse): unknown => {
  if (t.kind === 'llm_tool') return t.arguments;
  const { kind: _kind, name: _name, ...rest } = t;
  return rest;
};

/** Tool calls pair up in order per name; a call only one side made is added or removed. */
function diffTools(before: readonly ToolUse[], after: readonly ToolUse[]): Difference[] {
  const out: Difference[] = [];
  const rest = [...after];
  for (const b of before) {
    const i = rest.findIndex((a) => toolKey(a) === toolKey(b));
    if (i < 0) {
      out.push({ field: 'tools', key: toolKey(b), before: toolArgs(b), after: null });
      continue;
    }
    const [a] = rest.splice(i, 1);
    if (!isDeepStrictEqual(toolArgs(b), toolArgs(a!))) out.push({ field: 'tools', key: toolKey(b), before: toolArgs(b), after: toolArgs(a!) });
  }
  for (const a of rest) out.push({ field: 'tools', key: toolKey(a), before: null, after: toolArgs(a) });
  return out;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Where two values differ, leaf by leaf (`body.quantity`), so a report names the argument that
 * changed instead of printing two whole documents. Arrays and scalars are leaves.
 */
export function leafChanges(before: unknown, after: unknown, path = ''): Array<{ path: string; before: unknown; after: unknown }> {
  if (isDeepStrictEqual(before, after)) return [];
  if (!isRecord(before) || !isRecord(after)) return [{ path, before, after }];
  return [...new Set([...Object.keys(before), ...Object.keys(after)])].flatMap((key) => leafChanges(before[key], after[key], path ? `${path}.${key}` : key));
}
