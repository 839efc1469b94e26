import Mustache from 'mustache';
import { type DialogueMap, type GlobalIntent, type Localized, type PlaylistItem, languagesOf, referenceProblems, targetState } from './map';

/*
 * The dialogue map linter (`npm run lint:map`): what loadDialogueMap accepts but a conversation would
 * still trip over. Each rule is a small function of the map; lintMap runs them all. Rule ids are
 * stable: tests, CI logs and editors may match on them.
 */

export type LintSeverity = 'error' | 'warning';

export interface LintProblem {
  /** JSON path of the offending part, e.g. `$.states.size.transitions.large`. */
  path: string;
  /** Stable rule id, e.g. `unreachable-state`. */
  rule: LintRule;
  severity: LintSeverity;
  message: string;
}

/** Every rule and its severity. Only errors fail `npm run lint:map`. */
export const LINT_RULES = {
  'unknown-reference': 'error',
  'unreachable-state': 'error',
  'dead-end': 'error',
  'intent-without-examples': 'error',
  'undefined-variable': 'error',
  'invalid-template': 'error',
  'undefined-prompt': 'error',
  'unused-intent': 'warning',
  'missing-translation': 'warning',
} as const satisfies Record<string, LintSeverity>;
export type LintRule = keyof typeof LINT_RULES;

const problem = (rule: LintRule, path: string, message: string): LintProblem => ({ path, rule, severity: LINT_RULES[rule], message });

/** `.name` for identifier-like keys, `['cache:x']` for anything else. */
export const jsonKey = (key: string | number): string =>
  typeof key === 'number' ? `.${key}` : /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `['${key.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}']`;

/** A JSON path from segments: `jsonPath(['states', 'a', 'fillers', 0])` is `$.states.a.fillers.0`. */
export const jsonPath = (segments: readonly (string | number)[]): string => `$${segments.map(jsonKey).join('')}`;

const entries = <T>(record: Readonly<Record<string, T>>): [string, T][] => Object.entries(record);

// ---------------------------------------------------------------------------------------------
// unknown-reference: everything the loader's reference check reports (except undefined prompts,
// which undefined-prompt reports with its own rule id).

const UNDEFINED_PROMPT_MESSAGE = /^prompt '[^']*' is not defined/;

export function unknownReference(map: DialogueMap): LintProblem[] {
  return referenceProblems(map).flatMap((line) => {
    const at = line.indexOf(': ');
    const path = at < 0 ? '$' : line.slice(0, at);
    const message = at < 0 ? line : line.slice(at + 2);
    return UNDEFINED_PROMPT_MESSAGE.test(message) ? [] : [problem('unknown-reference', path, message)];
  });
}

// ---------------------------------------------------------------------------------------------
// undefined-prompt: a playlist item, reprompt item or filler names a prompt key not under $.prompts.

export function undefinedPrompt(map: DialogueMap): LintProblem[] {
  const out: LintProblem[] = [];
  const check = (segments: (string | number)[], key: string) => {
    if (map.prompts[key] === undefined) out.push(problem('undefined-prompt', jsonPath(segments), `prompt '${key}' is not defined under $.prompts`));
  };
  for (const [name, state] of entries(map.states)) {
    const playlists: [string, readonly PlaylistItem[] | undefined][] = [
      ['playlist', state.system_response.playlist],
      ['reprompt', state.system_response.reprompt],
    ];
    for (const [which, items] of playlists) {
      items?.forEach((item, i) => {
        if (item.type !== 'tts') check(['states', name, 'system_response', which, i, 'key'], item.key);
      });
    }
    state.fillers?.forEach((key, i) => check(['states', name, 'fillers', i], key));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// unreachable-state: not reachable from initial_state through transitions, global intents' targets
// and on_error ('back' only returns to where the conversation has been, so it reaches nothing new).

/** Where a state can lead: its transitions and on_error (global intents are added by the caller). */
const successors = (map: DialogueMap, name: string): string[] => {
  const state = map.states[name];
  if (!state) return [];
  return [...Object.values(state.transitions).map(targetState), ...(state.on_error ? [state.on_error] : [])];
};

const globalTargets = (map: DialogueMap): string[] =>
  Object.values(map.global_intents).flatMap((g) => (g === 'repeat' || g === 'back' ? [] : [targetState(g)]));

export function unreachableState(map: DialogueMap): LintProblem[] {
  if (!map.states[map.initial_state]) return []; // unknown-reference reports the initial state
  const reached = new Set<string>();
  const queue = [map.initial_state, ...globalTargets(map)];
  while (queue.length) {
    const name = queue.shift()!;
    if (reached.has(name) || !map.states[name]) continue;
    reached.add(name);
    queue.push(...successors(map, name));
  }
  return Object.keys(map.states)
    .filter((name) => !reached.has(name))
    .map((name) => problem('unreachable-state', jsonPath(['states', name]), `state '${name}' cannot be reached from the initial state '${map.initial_state}'`));
}

// ---------------------------------------------------------------------------------------------
// dead-end: a state the conversation can enter but never leave. A way out is a transition to
// another state, END_CALL, or a global intent that leads somewhere (a state, or 'back').

export function deadEnd(map: DialogueMap): LintProblem[] {
  const globalWayOut = Object.values(map.global_intents).some((g) => g !== 'repeat');
  if (globalWayOut) return [];
  return entries(map.states)
    .filter(([name, state]) => state.action !== 'END_CALL' && !Object.values(state.transitions).some((t) => targetState(t) !== name))
    .map(([name, state]) =>
      problem(
        'dead-end',
        jsonPath(['states', name]),
        Object.keys(state.transitions).length === 0
          ? `state '${name}' has no way out: no transitions, no END_CALL and no global intent that leads anywhere`
          : `state '${name}' has no way out: its transitions only lead back to itself, it has no END_CALL and no global intent leads anywhere`,
      ),
    );
}

// ---------------------------------------------------------------------------------------------
// intent-without-examples: the classifier cannot learn an intent without examples, in any language
// the map speaks.

export function intentWithoutExamples(map: DialogueMap): LintProblem[] {
  const out: LintProblem[] = [];
  const languages = languagesOf(map);
  for (const [name, intent] of entries(map.intents)) {
    const at = ['intents', name, 'examples'];
    if (Array.isArray(intent.examples)) {
      if (intent.examples.length === 0) out.push(problem('intent-without-examples', jsonPath(at), `intent '${name}' has no examples`));
      continue;
    }
    const perLanguage = intent.examples;
    if (Object.values(perLanguage).every((list) => list.length === 0)) {
      out.push(problem('intent-without-examples', jsonPath(at), `intent '${name}' has no examples`));
      continue;
    }
    for (const language of languages) {
      const list = perLanguage[language];
      if (list === undefined) {
        out.push(problem('intent-without-examples', jsonPath(at), `intent '${name}' has no examples in '${language}' (the map speaks ${languages.join(', ')})`));
      } else if (list.length === 0) {
        out.push(problem('intent-without-examples', jsonPath([...at, language]), `intent '${name}' has no examples in '${language}'`));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Templates: tts text_template (every language), webhook url, headers and body, LLM system prompts.

interface TemplateSite {
  segments: (string | number)[];
  template: string;
  /** Webhooks that LLM tools run may read the call's arguments as `{{ args.name }}`. */
  allowArgs?: boolean;
}

/** Each text of a Localized value with its path segments (a plain string, or one per language). */
const texts = (segments: (string | number)[], value: Localized): TemplateSite[] =>
  typeof value === 'string' ? [{ segments, template: value }] : entries(value).map(([lang, text]) => ({ segments: [...segments, lang], template: text }));

export function templateSites(map: DialogueMap): TemplateSite[] {
  const sites: TemplateSite[] = [];
  for (const [name, state] of entries(map.states)) {
    for (const which of ['playlist', 'reprompt'] as const) {
      state.system_response[which]?.forEach((item, i) => {
        if (item.type === 'tts') sites.push(...texts(['states', name, 'system_response', which, i, 'text_template'], item.text_template));
      });
    }
  }
  const toolWebhooks = new Set(Object.values(map.tools).map((tool) => tool.webhook));
  for (const [name, action] of entries(map.actions)) {
    const allowArgs = toolWebhooks.has(name);
    sites.push({ segments: ['actions', name, 'url'], template: action.url, allowArgs });
    for (const [header, value] of entries(action.headers)) sites.push({ segments: ['actions', name, 'headers', header], template: value, allowArgs });
    if (action.body !== undefined) sites.push({ segments: ['actions', name, 'body'], template: action.body, allowArgs });
  }
  for (const [name, state] of entries(map.states)) {
    if (state.llm) sites.push(...texts(['states', name, 'llm', 'system_prompt'], state.llm.system_prompt));
  }
  if (map.llm?.default) sites.push(...texts(['llm', 'default', 'system_prompt'], map.llm.default.system_prompt));
  return sites;
}

type Token = [type: string, value: string, start: number, end: number, children?: Token[], ...rest: unknown[]];

interface TemplateName {
  name: string;
  /** Inside a section a name may be relative to the section's value. */
  inSection: boolean;
}

/** The names a template reads (variable tags and section names), as written. Throws on bad syntax. */
export function templateNames(template: string): TemplateName[] {
  const names: TemplateName[] = [];
  const walk = (tokens: readonly Token[], inSection: boolean) => {
    for (const [type, name, , , children] of tokens) {
      if ((type === 'name' || type === '&' || type === '#' || type === '^') && name !== '.') names.push({ name, inSection });
      if (children) walk(children, true);
    }
  };
  walk(Mustache.parse(template) as unknown as Token[], false);
  return names;
}

/** Variables something sets: transition `set`s, slots, action result variables. */
export function definedVariables(map: DialogueMap): Set<string> {
  const defined = new Set<string>();
  const fromTarget = (t: GlobalIntent) => {
    if (typeof t === 'object') Object.keys(t.set).forEach((k) => defined.add(k));
  };
  for (const state of Object.values(map.states)) Object.values(state.transitions).forEach(fromTarget);
  Object.values(map.global_intents).forEach(fromTarget);
  for (const intent of Object.values(map.intents)) Object.keys(intent.slots).forEach((slot) => defined.add(slot));
  for (const action of Object.values(map.actions)) defined.add(action.result_variable);
  return defined;
}

const SESSION_NAMES = new Set(['session', 'session.variables', 'session.language', 'session.node', 'session.id']);
const TEMPLATE_NAMES_HINT = 'templates read session.variables.<name>, session.language, session.node and session.id';

// invalid-template: a template Mustache cannot parse (the runtime refuses to render it).
export function invalidTemplate(map: DialogueMap): LintProblem[] {
  return templateSites(map).flatMap(({ segments, template }) => {
    try {
      Mustache.parse(template);
      return [];
    } catch (err) {
      return [problem('invalid-template', jsonPath(segments), `template does not parse: ${(err as Error).message}`)];
    }
  });
}

// undefined-variable: a template reads session.variables.X where nothing sets X, or a name outside
// what templates can see (it would always render empty, and a tts item reading it is left out).
export function undefinedVariable(map: DialogueMap): LintProblem[] {
  const defined = definedVariables(map);
  const out: LintProblem[] = [];
  for (const { segments, template, allowArgs } of templateSites(map)) {
    let names: TemplateName[];
    try {
      names = templateNames(template);
    } catch {
      continue; // invalid-template reports it
    }
    const reported = new Set<string>();
    for (const { name, inSection } of names) {
      if (reported.has(name)) continue;
      let message: string | null = null;
      if (allowArgs && (name === 'args' || name.startsWith('args.'))) {
        continue;
      } else if (name.startsWith('session.variables.')) {
        const variable = name.slice('session.variables.'.length).split('.')[0]!;
        if (!defined.has(variable)) {
          message = `'{{ ${name} }}' reads variable '${variable}', which nothing sets (no transition 'set', slot or action result_variable)`;
        }
      } else if (name === 'session' || name.startsWith('session.')) {
        if (!SESSION_NAMES.has(name)) message = `'{{ ${name} }}' is not a template name: ${TEMPLATE_NAMES_HINT}`;
      } else if (!inSection) {
        message = `'{{ ${name} }}' is not a template name: ${TEMPLATE_NAMES_HINT}`;
      }
      if (message) {
        reported.add(name);
        out.push(problem('undefined-variable', jsonPath(segments), message));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// unused-intent (warning): an intent no transition and no global intent uses can never match.

export function unusedIntent(map: DialogueMap): LintProblem[] {
  const used = new Set(Object.keys(map.global_intents));
  for (const state of Object.values(map.states)) Object.keys(state.transitions).forEach((i) => used.add(i));
  return Object.keys(map.intents)
    .filter((name) => !used.has(name))
    .map((name) => problem('unused-intent', jsonPath(['intents', name]), `intent '${name}' is used by no transition and no global intent`));
}

// ---------------------------------------------------------------------------------------------
// missing-translation (warning): a per-language text lacks one of the map's languages (the session
// then hears the map's default language instead).

export function missingTranslation(map: DialogueMap): LintProblem[] {
  const languages = languagesOf(map);
  const out: LintProblem[] = [];
  const check = (segments: (string | number)[], value: Localized | readonly string[] | Record<string, readonly string[]>) => {
    if (typeof value === 'string' || Array.isArray(value)) return;
    const missing = languages.filter((l) => (value as Record<string, unknown>)[l] === undefined);
    if (missing.length) {
      out.push(problem('missing-translation', jsonPath(segments), `no ${missing.map((l) => `'${l}'`).join(', ')} text (the map speaks ${languages.join(', ')})`));
    }
  };
  for (const [key, text] of entries(map.prompts)) check(['prompts', key], text);
  for (const [kind, text] of entries(map.messages)) check(['messages', kind], text);
  for (const [name, state] of entries(map.states)) {
    for (const which of ['playlist', 'reprompt'] as const) {
      state.system_response[which]?.forEach((item, i) => {
        if (item.type === 'tts') check(['states', name, 'system_response', which, i, 'text_template'], item.text_template);
      });
    }
  }
  for (const [name, intent] of entries(map.intents)) {
    for (const [slot, def] of entries(intent.slots)) if (def.prompt !== undefined) check(['intents', name, 'slots', slot, 'prompt'], def.prompt);
  }
  for (const [name, entity] of entries(map.entities)) {
    if (entity.type === 'enum') for (const [value, synonyms] of entries(entity.values)) check(['entities', name, 'values', value], synonyms);
  }
  map.faq.forEach((entry, i) => check(['faq', i, 'answer'], entry.answer));
  return out;
}

// ---------------------------------------------------------------------------------------------

export const LINT_CHECKS: readonly ((map: DialogueMap) => LintProblem[])[] = [
  unknownReference,
  undefinedPrompt,
  unreachableState,
  deadEnd,
  intentWithoutExamples,
  invalidTemplate,
  undefinedVariable,
  unusedIntent,
  missingTranslation,
];

/** Every rule's problems, errors first, each group in rule order. */
export function lintMap(map: DialogueMap): LintProblem[] {
  const problems = LINT_CHECKS.flatMap((check) => check(map));
  return [...problems.filter((p) => p.severity === 'error'), ...problems.filter((p) => p.severity === 'warning')];
}
