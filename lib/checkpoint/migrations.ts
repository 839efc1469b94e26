import { ParleyError } from '../errors';
import { CHECKPOINT_VERSION, Checkpoint } from './schema';
import { transcriptFromMessages } from './transcript';

type Raw = Record<string, unknown>;

/**
 * migrations[n] turns a version-n checkpoint into version n+1. Each step is a pure function of the
 * raw object and never validates: validation happens once, against the current schema, at the end.
 */
const migrations: Record<number, (raw: Raw) => Raw> = {
  // Version 0 is the snake_case shape of the runner Parley grew from (seed 002): no `version` field
  // or version 0, `current_node_id`, `gathered_context`, `tool_state`, `anchor_turn_id`.
  0: (raw) => ({
    version: 1,
    currentNode: raw.current_node_id ?? null,
    nodeHistory: [],
    variables: raw.gathered_context ?? {},
    // Chat-completions messages that only call tools carry `content: null`; ours are always text.
    messages: Array.isArray(raw.messages) ? raw.messages.map(migrateV0Message) : [],
    toolState: raw.tool_state ?? {},
  }),
  // Version 2 adds the session language and slot filling in progress; neither existed before.
  1: (raw) => ({ ...raw, version: 2, language: null, pending: null }),
  // Version 3 adds the running summary of folded-away messages and the session's usage totals.
  2: (raw) => ({ ...raw, version: 3, summary: null, usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 } }),
  // Version 4 remembers recent turn ids for idempotency; an older checkpoint remembers none.
  3: (raw) => ({ ...raw, version: 4, recentTurns: [] }),
  // Version 5 keeps the conversation as shown to the user; an older one starts it from its messages
  // (older lines already folded into a summary are gone).
  4: (raw) => ({
    ...raw,
    version: 5,
    ...transcriptFromMessages(Array.isArray(raw.messages) ? (raw.messages as Raw[]) : [], typeof raw.summary === 'string'),
  }),
};

/**
 * A chat-completions message of the seed runner: `content` may be null (a message that only calls
 * tools), and tool calls are nested (`{id, type, function: {name, arguments}}`); ours are flat.
 */
function migrateV0Message(m: Record<string, unknown>): Record<string, unknown> {
  const calls = Array.isArray(m.tool_calls)
    ? m.tool_calls.map((c: { id?: unknown; name?: unknown; arguments?: unknown; function?: { name?: unknown; arguments?: unknown } }) => ({
        id: String(c.id ?? ''),
        name: String(c.function?.name ?? c.name ?? ''),
        arguments: String(c.function?.arguments ?? c.arguments ?? '{}'),
      }))
    : undefined;
  return { ...m, content: m.content ?? '', ...(calls ? { tool_calls: calls } : {}) };
}

/** Loads a stored checkpoint of any known version into the current schema. */
export function migrateCheckpoint(input: unknown): Checkpoint {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ParleyError('checkpoint.invalid', 'checkpoint is not an object');
  }
  let raw = input as Raw;
  let version = raw.version ?? 0;
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) {
    throw new ParleyError('checkpoint.invalid', `checkpoint version ${String(version)} is not a version number`);
  }
  if (version > CHECKPOINT_VERSION) {
    throw new ParleyError(
      'checkpoint.version_unsupported',
      `checkpoint version ${version} is newer than this build understands (${CHECKPOINT_VERSION}); deploy a newer Parley`,
    );
  }
  while (version < CHECKPOINT_VERSION) {
    const step = migrations[version];
    if (!step) throw new ParleyError('checkpoint.invalid', `no migration from checkpoint version ${version}`);
    raw = step(raw);
    version += 1;
  }
  const parsed = Checkpoint.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw new ParleyError('checkpoint.invalid', `checkpoint ${first?.path.join('.') ?? ''}: ${first?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
