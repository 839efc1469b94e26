import * as z from 'zod';
import { ParleyError } from '../errors';
import { parseAllowEntry } from '../actions/address';

/*
 * Objects are strict: a misspelt key ("on_eror") is an error at load, not silently ignored.
 *
 * The dialogue map: what a bot says and how it moves, as data. This schema is the single
 * definition; `dialogue_map.schema.json` is generated from it (npm run build:schema) so editors
 * validate and autocomplete maps that point at it with `$schema`.
 */

const Name = z.string().regex(/^[A-Za-z_][\w.-]*$/, 'names are letters, digits, _ . - (starting with a letter or _)');
const Language = z.string().regex(/^[a-z]{2}$/, 'an ISO 639-1 code such as "en", "ru", "tr"');

/** Text in the map's language, or per language (`{ "en": "…", "ru": "…" }`). */
export const Localized = z.union([z.string().min(1), z.record(Language, z.string().min(1))]);
export type Localized = z.infer<typeof Localized>;

/** A prompt key: `cache:` for static lines, `filler:` for what is said while waiting. */
export const PromptKey = z.string().regex(/^(cache|filler):[\w.-]+$/, 'prompt keys look like "cache:name" or "filler:name"');

export const PlaylistItem = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('cache'), key: PromptKey.describe('a `cache:` prompt') }),
  z.strictObject({ type: z.literal('filler'), key: PromptKey.describe('a `filler:` prompt') }),
  z.strictObject({
    type: z.literal('tts'),
    /** Mustache, logic-less: `{{ session.variables.final_price }}`. */
    text_template: Localized,
  }),
]);
export type PlaylistItem = z.infer<typeof PlaylistItem>;
export const Playlist = z.array(PlaylistItem).min(1);

/** Where a transition leads, optionally setting variables on the way. */
export const Target = z.union([
  Name.describe('the next state'),
  z.strictObject({ to: Name, set: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}) }),
]);
export type Target = z.infer<typeof Target>;

/** Tools the runner itself provides to the LLM. */
export const BUILTIN_TOOLS = ['transition_to', 'set_variable', 'end_call'] as const;

/** How a state's LLM context starts (pipecat-flows' context strategies). */
export const ContextStrategy = z.enum(['append', 'reset', 'reset_with_summary']);

/** LLM settings of a state (or the map's default for every state without its own). */
export const StateLlm = z.strictObject({
  /** Mustache template, rendered with the session like a playlist item. */
  system_prompt: Localized,
  /** On entering the state: keep the conversation (append), start over (reset), or start over from a summary. */
  context: ContextStrategy.default('append'),
  /** Tool names: built-in (transition_to, set_variable, end_call) or declared under `tools`. */
  tools: z.array(Name).default([]),
  model: z.string().min(1).optional(),
  temperature: z.number().min(0).max(2).optional(),
  max_tokens: z.number().int().min(16).max(4096).optional(),
  /** LLM calls in one turn at most (each tool round is one). */
  max_rounds: z.number().int().min(1).max(10).default(4),
});
export type StateLlm = z.infer<typeof StateLlm>;

/** A tool the LLM may call: a JSON-schema signature, answered by a webhook action of the map. */
export const LlmTool = z.strictObject({
  description: z.string().min(1),
  /** JSON Schema of the arguments object. */
  parameters: z.record(z.string(), z.unknown()).default({ type: 'object', properties: {} }),
  /** The action under `actions` that runs the tool; the arguments are `{{ args.name }}` in its templates. */
  webhook: Name,
});
export type LlmTool = z.infer<typeof LlmTool>;

export const State = z.strictObject({
  system_response: z.strictObject({
    playlist: Playlist,
    /** Played after the not-understood message when input is not understood here; defaults to the playlist. */
    reprompt: Playlist.optional(),
  }),
  /** Intent -> next state. */
  transitions: z.record(Name, Target).default({}),
  /** Said, in order, while a slow step (a webhook, the LLM) runs for this state. */
  fillers: z.array(PromptKey).optional(),
  /** A webhook action run when the state is entered, before its playlist (which may use the result). */
  run: Name.optional(),
  /** Where to go when `run` fails; without it the conversation stays where it was. */
  on_error: Name.optional(),
  /** END_CALL: the session ends after this state's playlist. */
  action: z.literal('END_CALL').optional(),
  /** Off-script input here goes to the LLM with these settings (after the FAQ). */
  llm: StateLlm.optional(),
});
export type State = z.infer<typeof State>;

export const Slot = z.strictObject({
  /** The entity that fills the slot (a name under `entities`, or the built-in `number`). */
  entity: Name,
  required: z.boolean().default(true),
  /** The clarifying question asked while the slot is missing. */
  prompt: Localized.optional(),
});
export type Slot = z.infer<typeof Slot>;

export const Intent = z.strictObject({
  /** Example utterances, in the map's language or per language. */
  examples: z.union([z.array(z.string().min(1)), z.record(Language, z.array(z.string().min(1)))]),
  /** Slots (variable name -> entity) the intent collects before its transition happens. */
  slots: z.record(Name, Slot).default({}),
  /** How many missing slots one clarifying question asks for (seed 003). */
  ask_per_question: z.number().int().min(1).max(5).default(1),
});
export type Intent = z.infer<typeof Intent>;

export const Entity = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('enum'),
    /** Canonical value -> synonyms (per language, or a plain list in the map's language). */
    values: z.record(z.string(), z.union([z.array(z.string().min(1)), z.record(Language, z.array(z.string().min(1)))])),
  }),
  z.strictObject({
    type: z.literal('regex'),
    /** A JavaScript regular expression; the first match is the value. */
    pattern: z.string().min(1),
    flags: z.string().regex(/^[imsu]*$/).default('i'),
  }),
]);
export type Entity = z.infer<typeof Entity>;

/** Built-in global intents: `repeat` says the current state again, `back` returns along the node history. */
export const GlobalIntent = z.union([z.enum(['repeat', 'back']), Target]);
export type GlobalIntent = z.infer<typeof GlobalIntent>;

export const Webhook = z.strictObject({
  type: z.literal('webhook'),
  method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default('POST'),
  /** Mustache template; values are URL-encoded. */
  url: z.string().min(1),
  headers: z.record(z.string(), z.string()).default({}),
  /** Mustache template of a JSON body; values are JSON-escaped. */
  body: z.string().optional(),
  timeout_ms: z.number().int().min(50).max(25_000).default(3000),
  retries: z.number().int().min(0).max(3).default(0),
  /** The JSON result lands in this variable. */
  result_variable: Name,
});
export type Webhook = z.infer<typeof Webhook>;

/**
 * Where webhooks (map actions and LLM tools) may connect beyond the public internet. Private,
 * loopback, link-local, CGNAT and other non-public addresses are refused unless named here.
 */
export const Network = z.strictObject({
  allow: z
    .array(z.string().refine((entry) => parseAllowEntry(entry) !== undefined, 'a host name, an IP address or a range such as 10.0.0.0/8'))
    .default([])
    .describe('hosts (localhost), addresses (127.0.0.1, ::1) or ranges (10.0.0.0/8) webhooks may reach although they are not public'),
});
export type Network = z.infer<typeof Network>;

export const FaqEntry = z.strictObject({
  id: Name,
  questions: z.array(z.string().min(1)).min(1),
  answer: Localized,
});
export type FaqEntry = z.infer<typeof FaqEntry>;

/** User-facing messages per failure kind (seed 003), in the map's language or per language. */
export const MESSAGE_KINDS = ['not_understood', 'action_failed', 'action_timeout', 'llm_error', 'llm_timeout', 'internal_error'] as const;
export const Messages = z.strictObject(Object.fromEntries(MESSAGE_KINDS.map((k) => [k, Localized])) as Record<(typeof MESSAGE_KINDS)[number], typeof Localized>);
export type MessageKind = (typeof MESSAGE_KINDS)[number];

export const DialogueMap = z.strictObject({
  $schema: z.string().optional(),
  name: z.string().min(1),
  /** The language of plain strings, and the default session language. */
  language: Language,
  /** Further languages the bot speaks (a session picks one with `metadata.language`). */
  languages: z.array(Language).default([]),
  /** How the bot sounds on Polly; the local synthesizer picks its eSpeak voice from the language. */
  voice: z
    .strictObject({
      engine: z.enum(['standard', 'neural', 'generative']).default('neural'),
      /** The Polly voice of the map's own language. */
      id: z.string().min(1),
      /** Polly voices of further languages (`{ "ru": "Tatyana" }`). */
      voices: z.record(Language, z.string().min(1)).default({}),
    })
    .optional(),
  /** Fillers: what is said while slow work (a webhook, the LLM, speech synthesis) runs. */
  fillers: z
    .strictObject({
      /** Said again and again, cut the instant the answer is ready, once a state's own fillers ran out. */
      neutral: PromptKey.optional(),
      /** No more neutral fillers after this long: silence is better than a loop that never ends. */
      max_wait_ms: z.number().int().min(1000).max(120_000).default(20_000),
    })
    .default({ max_wait_ms: 20_000 }),
  nlu: z.strictObject({ threshold: z.number().min(0).max(1).default(0.6) }).default({ threshold: 0.6 }),
  initial_state: Name,
  prompts: z.record(PromptKey, Localized).default({}),
  messages: Messages,
  intents: z.record(Name, Intent),
  entities: z.record(Name, Entity).default({}),
  global_intents: z.record(Name, GlobalIntent).default({}),
  actions: z.record(Name, Webhook).default({}),
  /** Which non-public hosts and addresses the webhooks may reach (SSRF guard). */
  network: Network.default({ allow: [] }),
  faq: z.array(FaqEntry).default([]),
  tools: z.record(Name, LlmTool).default({}),
  llm: z
    .strictObject({
      /** Settings for states without their own `llm`; without it, only states with `llm` use the LLM. */
      default: StateLlm.optional(),
      /** Said instead when the first sentence of an answer fails the safety check. */
      safe_response: Localized,
      /** Messages kept word for word in the checkpoint; older ones fold into a running summary. */
      window: z.number().int().min(2).max(200).default(20),
    })
    .optional(),
  states: z.record(Name, State),
  /**
   * How a checkpoint stored against an earlier version of this map finds its place: states renamed
   * since (old name -> new name), and the state a session resumes in when its state is gone.
   */
  migrations: z
    .strictObject({
      renames: z.record(Name, Name).default({}).describe('old state name -> its name in this map'),
      recovery_state: Name.optional().describe('where a session whose state no longer exists continues; default: initial_state'),
    })
    .default({ renames: {} }),
});
export type DialogueMap = z.infer<typeof DialogueMap>;

/** Whether the map has a state of this name (its own key: never an inherited `constructor` or `toString`). */
export const hasState = (map: DialogueMap, name: string): boolean => Object.hasOwn(map.states, name);

/** Entity names every map has without declaring them. */
export const BUILTIN_ENTITIES = ['number'] as const;

/** Every language a map speaks, its default first. */
export const languagesOf = (map: DialogueMap): string[] => [...new Set([map.language, ...map.languages])];

/** Picks the text for a language, falling back to the map's own language. */
export function localize(text: Localized, language: string, fallback: string): string {
  if (typeof text === 'string') return text;
  return text[language] ?? text[fallback] ?? Object.values(text)[0] ?? '';
}

export const targetState = (t: Target): string => (typeof t === 'string' ? t : t.to);

/**
 * Validates a parsed map at load: the schema, then every reference (states, intents, entities,
 * prompts, actions), each error with its JSON path. Deeper checks (reachability, templates) are the
 * linter's (`npm run lint:map`).
 */
export function loadDialogueMap(input: unknown): DialogueMap {
  const parsed = DialogueMap.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((i) => `  $.${i.path.join('.')}: ${i.message}`);
    throw new ParleyError('map.invalid', `dialogue map is invalid:\n${lines.join('\n')}`);
  }
  const map = parsed.data;
  const problems = referenceProblems(map);
  if (problems.length) throw new ParleyError('map.invalid', `dialogue map is invalid:\n  ${problems.join('\n  ')}`);
  return map;
}

/** Broken references, as `$.path: reason` lines. */
export function referenceProblems(map: DialogueMap): string[] {
  const problems: string[] = [];
  const state = (path: string, name: string) => {
    if (!hasState(map, name)) problems.push(`${path}: unknown state '${name}'`);
  };
  const prompt = (path: string, key: string) => {
    if (map.prompts[key] === undefined) problems.push(`${path}: prompt '${key}' is not defined under $.prompts`);
  };
  const playlist = (path: string, items: readonly PlaylistItem[]) =>
    items.forEach((item, i) => {
      if (item.type !== 'tts') prompt(`${path}.${i}.key`, item.key);
      if (item.type === 'cache' && !item.key.startsWith('cache:')) problems.push(`${path}.${i}.key: a cache item plays a 'cache:' prompt`);
      if (item.type === 'filler' && !item.key.startsWith('filler:')) problems.push(`${path}.${i}.key: a filler item plays a 'filler:' prompt`);
    });

  const llmTools = (path: string, tools: readonly string[]) =>
    tools.forEach((tool, i) => {
      if (!map.tools[tool] && !(BUILTIN_TOOLS as readonly string[]).includes(tool)) problems.push(`${path}.${i}: unknown tool '${tool}'`);
    });
  for (const [name, tool] of Object.entries(map.tools)) {
    if (!map.actions[tool.webhook]) problems.push(`$.tools.${name}.webhook: unknown action '${tool.webhook}'`);
    if ((BUILTIN_TOOLS as readonly string[]).includes(name)) problems.push(`$.tools.${name}: '${name}' is a built-in tool`);
  }
  if (map.llm?.default) llmTools('$.llm.default.tools', map.llm.default.tools);
  const usesLlm = Boolean(map.llm?.default) || Object.values(map.states).some((s) => s.llm);
  if (usesLlm && !map.llm) problems.push(`$.llm: states use the LLM, so the map needs $.llm.safe_response`);

  state('$.initial_state', map.initial_state);
  if (map.fillers.neutral) prompt('$.fillers.neutral', map.fillers.neutral);
  for (const [name, intent] of Object.entries(map.global_intents)) {
    if (!map.intents[name]) problems.push(`$.global_intents.${name}: unknown intent '${name}'`);
    if (intent !== 'repeat' && intent !== 'back') state(`$.global_intents.${name}`, targetState(intent));
  }
  for (const [name, intent] of Object.entries(map.intents)) {
    for (const [slot, def] of Object.entries(intent.slots)) {
      if (!map.entities[def.entity] && !(BUILTIN_ENTITIES as readonly string[]).includes(def.entity)) {
        problems.push(`$.intents.${name}.slots.${slot}.entity: unknown entity '${def.entity}'`);
      }
      if (def.required && def.prompt === undefined) problems.push(`$.intents.${name}.slots.${slot}.prompt: a required slot needs a prompt`);
    }
  }
  for (const [name, entity] of Object.entries(map.entities)) {
    if (entity.type !== 'regex') continue;
    try {
      new RegExp(entity.pattern, entity.flags);
    } catch (err) {
      problems.push(`$.entities.${name}.pattern: ${(err as Error).message}`);
    }
  }
  for (const [name, s] of Object.entries(map.states)) {
    const at = `$.states.${name}`;
    playlist(`${at}.system_response.playlist`, s.system_response.playlist);
    if (s.system_response.reprompt) playlist(`${at}.system_response.reprompt`, s.system_response.reprompt);
    for (const [intent, target] of Object.entries(s.transitions)) {
      if (!map.intents[intent]) problems.push(`${at}.transitions.${intent}: unknown intent '${intent}'`);
      state(`${at}.transitions.${intent}`, targetState(target));
    }
    s.fillers?.forEach((key, i) => prompt(`${at}.fillers.${i}`, key));
    if (s.run && !map.actions[s.run]) problems.push(`${at}.run: unknown action '${s.run}'`);
    if (s.on_error) state(`${at}.on_error`, s.on_error);
    if (s.llm) llmTools(`${at}.llm.tools`, s.llm.tools);
  }
  for (const [from, to] of Object.entries(map.migrations.renames)) {
    // A name still in use is a state, not a rename: a checkpoint standing there stays there.
    if (hasState(map, from)) problems.push(`$.migrations.renames.${from}: '${from}' is still a state of this map`);
    state(`$.migrations.renames.${from}`, to);
  }
  if (map.migrations.recovery_state) state('$.migrations.recovery_state', map.migrations.recovery_state);
  const faqIds = new Set<string>();
  map.faq.forEach((entry, i) => {
    if (faqIds.has(entry.id)) problems.push(`$.faq.${i}.id: duplicate FAQ id '${entry.id}'`);
    faqIds.add(entry.id);
  });
  return problems;
}
