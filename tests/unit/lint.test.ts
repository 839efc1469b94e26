import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type LintProblem, LINT_RULES, lintMap, templateNames } from '../../lib/flow/lint';
import { DialogueMap, languagesOf, loadDialogueMap } from '../../lib/flow/map';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const RU_MAP = join(ROOT, 'examples/ru/dialogue_map.json');

const MESSAGES = {
  not_understood: 'Pardon?',
  action_failed: 'That failed.',
  action_timeout: 'That took too long.',
  llm_error: 'I cannot answer that.',
  llm_timeout: 'I am slow today.',
  internal_error: 'Something broke.',
};

/**
 * A small map that breaks no rule: every way a variable is set (slot, transition `set`, action
 * result and a sub-path of it), a section with a name relative to it, fillers, on_error, END_CALL.
 */
const clean = (): Record<string, any> => ({
  name: 'lint fixture',
  language: 'en',
  initial_state: 'start',
  prompts: { 'cache:hello': 'Hello! Which size?', 'filler:wait': 'One moment…' },
  messages: { ...MESSAGES },
  intents: {
    order: { examples: ['a large one', 'I want a small'], slots: { size: { entity: 'size', prompt: 'Which size?' } } },
    go: { examples: ['go on', 'continue'] },
    repeat: { examples: ['say again'] },
  },
  entities: { size: { type: 'enum', values: { large: ['large', 'big'], small: ['small'] } } },
  global_intents: { repeat: 'repeat' },
  actions: {
    save: {
      type: 'webhook',
      url: 'http://127.0.0.1:8788/orders/{{ session.id }}',
      headers: { 'X-Size': '{{ session.variables.size }}' },
      body: '{"size": "{{ session.variables.size }}", "language": "{{ session.language }}"}',
      result_variable: 'saved',
    },
  },
  states: {
    start: {
      system_response: { playlist: [{ type: 'cache', key: 'cache:hello' }] },
      transitions: { order: 'saving' },
    },
    saving: {
      run: 'save',
      on_error: 'start',
      fillers: ['filler:wait'],
      system_response: {
        playlist: [{ type: 'tts', text_template: 'Saved {{ session.variables.saved.id }}: a {{ session.variables.size }} one.' }],
      },
      transitions: { go: { to: 'end', set: { thanked: true } } },
    },
    end: {
      system_response: {
        playlist: [{ type: 'tts', text_template: 'Bye{{#session.variables.saved}} ({{ id }}){{/session.variables.saved}}{{#session.variables.thanked}}, thanks{{/session.variables.thanked}}!' }],
      },
      action: 'END_CALL',
    },
  },
});

const lint = (raw: unknown): LintProblem[] => lintMap(DialogueMap.parse(raw));
const rulesOf = (problems: readonly LintProblem[]) => [...new Set(problems.map((p) => p.rule))];

/** Lints a map and expects problems of exactly one rule; returns them. */
function only(raw: unknown, rule: string): LintProblem[] {
  const problems = lint(raw);
  expect(rulesOf(problems), JSON.stringify(problems, null, 2)).toEqual([rule]);
  return problems;
}

describe('lintMap', () => {
  it('finds nothing wrong with a clean map (which also loads)', () => {
    expect(() => loadDialogueMap(clean())).not.toThrow();
    expect(lint(clean())).toEqual([]);
  });

  it('unknown-reference: everything the loader reports as a broken reference', () => {
    const raw = clean();
    raw.states.start.transitions.go = 'nowhere';
    raw.intents.order.slots.size.entity = 'colour';
    const problems = only(raw, 'unknown-reference');
    expect(problems).toEqual([
      { path: '$.intents.order.slots.size.entity', rule: 'unknown-reference', severity: 'error', message: "unknown entity 'colour'" },
      { path: '$.states.start.transitions.go', rule: 'unknown-reference', severity: 'error', message: "unknown state 'nowhere'" },
    ]);
  });

  it('undefined-prompt: a filler or playlist prompt not under $.prompts, reported once', () => {
    const raw = clean();
    raw.states.saving.fillers = ['filler:wait', 'filler:missing'];
    raw.states.start.system_response.reprompt = [{ type: 'cache', key: 'cache:nope' }];
    const problems = only(raw, 'undefined-prompt');
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      ['$.states.start.system_response.reprompt.0.key', "prompt 'cache:nope' is not defined under $.prompts"],
      ['$.states.saving.fillers.1', "prompt 'filler:missing' is not defined under $.prompts"],
    ]);
  });

  it('unreachable-state: a state no transition, global intent or on_error leads to', () => {
    const raw = clean();
    raw.states.orphan = { system_response: { playlist: [{ type: 'cache', key: 'cache:hello' }] }, action: 'END_CALL' };
    const [p] = only(raw, 'unreachable-state');
    expect(p).toMatchObject({ path: '$.states.orphan', severity: 'error' });
    expect(p!.message).toContain("from the initial state 'start'");

    // A global intent's target and on_error make a state reachable; 'back' does not.
    raw.intents.help = { examples: ['help'] };
    raw.global_intents.help = { to: 'orphan', set: {} };
    expect(lint(raw)).toEqual([]);
    raw.states.saving.on_error = 'oops';
    raw.states.oops = { system_response: { playlist: [{ type: 'cache', key: 'cache:hello' }] }, transitions: { go: 'start' } };
    expect(lint(raw)).toEqual([]);
  });

  it('dead-end: a state with no transitions out, no END_CALL and no global intent that leads anywhere', () => {
    const raw = clean();
    delete raw.states.end.action;
    const [p] = only(raw, 'dead-end');
    expect(p).toMatchObject({ path: '$.states.end', severity: 'error' });

    // Transitions that only come back to the same state are no way out either.
    raw.states.end.transitions = { go: 'end' };
    expect(only(raw, 'dead-end')[0]!.message).toContain('only lead back to itself');

    // 'repeat' leads nowhere; 'back' or a global target state is a way out of every state.
    raw.intents.back = { examples: ['go back'] };
    raw.global_intents.back = 'back';
    expect(lint(raw)).toEqual([]);
  });

  it('intent-without-examples: no examples, or none in one of the map languages', () => {
    const raw = clean();
    raw.intents.go.examples = [];
    expect(only(raw, 'intent-without-examples')).toMatchObject([{ path: '$.intents.go.examples', severity: 'error' }]);

    const multi = clean();
    multi.languages = ['ru'];
    multi.intents.go.examples = { en: ['go on'], tr: ['devam'] };
    multi.intents.repeat.examples = { en: ['say again'], ru: [] };
    const problems = only(multi, 'intent-without-examples');
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      ['$.intents.go.examples', "intent 'go' has no examples in 'ru' (the map speaks en, ru)"],
      ['$.intents.repeat.examples.ru', "intent 'repeat' has no examples in 'ru'"],
    ]);
  });

  it('undefined-variable: a tts or webhook template reads a variable nothing sets', () => {
    const raw = clean();
    raw.states.end.system_response.playlist[0].text_template = { en: 'Bye {{ session.variables.nickname }}' };
    raw.actions.save.headers['X-Price'] = '{{ session.variables.price.total }}';
    raw.actions.save.url = 'http://127.0.0.1:8788/orders/{{ variables.size }}';
    const problems = only(raw, 'undefined-variable');
    expect(problems.map((p) => p.path)).toEqual([
      '$.states.end.system_response.playlist.0.text_template.en',
      '$.actions.save.url',
      "$.actions.save.headers['X-Price']",
    ]);
    expect(problems[0]!.message).toContain("variable 'nickname', which nothing sets");
    expect(problems[1]!.message).toContain("'{{ variables.size }}' is not a template name");
    expect(problems[2]!.message).toContain("variable 'price'");
  });

  it('undefined-variable: LLM system prompts are checked; {{ args.x }} is allowed only in webhooks an LLM tool runs', () => {
    const raw = clean();
    raw.llm = { safe_response: 'Let us keep it friendly.', default: { system_prompt: 'Help {{ session.variables.customer }}.', tools: ['lookup'] } };
    raw.tools = { lookup: { description: 'Look an order up', webhook: 'lookup' } };
    raw.actions.lookup = { type: 'webhook', method: 'GET', url: 'http://127.0.0.1:8788/orders/{{ args.id }}', result_variable: 'found' };
    raw.actions.save.url = 'http://127.0.0.1:8788/orders/{{ args.id }}';
    const problems = only(raw, 'undefined-variable');
    expect(problems.map((p) => p.path)).toEqual(['$.actions.save.url', '$.llm.default.system_prompt']);
    expect(problems[1]!.message).toContain("variable 'customer'");
  });

  it('invalid-template: a template Mustache cannot parse', () => {
    const raw = clean();
    raw.actions.save.body = '{"size": "{{#session.variables.size}}"}';
    expect(only(raw, 'invalid-template')).toMatchObject([{ path: '$.actions.save.body', severity: 'error' }]);
  });

  it('unused-intent (warning): an intent no transition and no global intent uses', () => {
    const raw = clean();
    raw.intents.idle = { examples: ['hmm'] };
    expect(only(raw, 'unused-intent')).toMatchObject([{ path: '$.intents.idle', severity: 'warning' }]);
  });

  it('missing-translation (warning): a per-language text without one of the map languages', () => {
    const raw = clean();
    raw.languages = ['ru'];
    raw.prompts['cache:hello'] = { en: 'Hello!' };
    raw.messages.not_understood = { en: 'Pardon?', ru: 'Простите?' };
    raw.intents.order.slots.size.prompt = { ru: 'Какой размер?' };
    const problems = only(raw, 'missing-translation');
    expect(problems.map((p) => [p.path, p.severity, p.message])).toEqual([
      ["$.prompts['cache:hello']", 'warning', "no 'ru' text (the map speaks en, ru)"],
      ['$.intents.order.slots.size.prompt', 'warning', "no 'en' text (the map speaks en, ru)"],
    ]);
  });

  it('gives every problem a known rule and its severity', () => {
    const raw = clean();
    raw.intents.idle = { examples: [] };
    raw.states.start.transitions.go = 'nowhere';
    for (const p of lint(raw)) expect(p.severity).toBe(LINT_RULES[p.rule]);
  });

  it('reads names in sections: relative names inside, session names anywhere', () => {
    expect(templateNames('{{#session.variables.items}}{{ name }}{{/session.variables.items}}{{ session.id }}')).toEqual([
      { name: 'session.variables.items', inSection: false },
      { name: 'name', inSection: true },
      { name: 'session.id', inSection: false },
    ]);
  });
});

describe('examples/ru', () => {
  const raw = JSON.parse(readFileSync(RU_MAP, 'utf8')) as Record<string, any>;

  it('loads and lints without any problem', () => {
    const map = loadDialogueMap(raw);
    expect(lintMap(map)).toEqual([]);
  });

  it('is a Russian bot using every part of the format', () => {
    const map = loadDialogueMap(raw);
    expect(raw.$schema).toBe('../../dialogue_map.schema.json');
    expect(languagesOf(map)).toEqual(['ru']);
    expect(Object.keys(map.states).length).toBeGreaterThanOrEqual(6);
    expect(Object.keys(map.intents).length).toBeGreaterThanOrEqual(8);
    expect(map.faq).toHaveLength(10);
    expect(Object.values(map.entities).map((e) => e.type).sort()).toEqual(['enum', 'enum', 'regex']);
    const slots = Object.values(map.intents).flatMap((i) => Object.values(i.slots));
    expect(slots.some((s) => s.entity === 'number')).toBe(true);
    expect(slots.some((s) => s.required && typeof s.prompt === 'string' && /[а-я]/i.test(s.prompt))).toBe(true);
    expect(Object.values(map.intents).some((i) => i.ask_per_question === 2)).toBe(true);
    expect(Object.values(map.global_intents)).toEqual(expect.arrayContaining(['repeat', 'back']));
    expect(Object.values(map.states).some((s) => s.run && s.on_error && s.fillers?.length)).toBe(true);
    expect(Object.values(map.states).filter((s) => s.action === 'END_CALL').length).toBeGreaterThanOrEqual(2);
  });

  it('its phone regex finds Russian phone numbers', () => {
    const map = loadDialogueMap(raw);
    const phone = map.entities.phone;
    if (phone?.type !== 'regex') throw new Error('expected a regex entity "phone"');
    const re = new RegExp(phone.pattern, phone.flags);
    for (const text of ['мой номер +7 916 123-45-67', 'записывайте: 8 903 555 12 34', 'телефон 89161234567', '+7 (495) 123-45-67']) {
      expect(text.match(re)?.[0], text).toBeTruthy();
    }
    expect('номер девятьсот шестнадцать'.match(re)).toBeNull();
  });
});

describe('npm run lint:map', () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-lint-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const run = (...files: string[]) => {
    const r = spawnSync('npx', ['tsx', 'scripts/lint-map.ts', ...files], { cwd: ROOT, encoding: 'utf8' });
    return { status: r.status, out: r.stdout };
  };

  it('fails with the file, path and rule of each problem, and a summary', () => {
    const raw = clean();
    delete raw.states.end.action;
    raw.intents.idle = { examples: ['hmm'] };
    const file = join(dir, 'broken.json');
    writeFileSync(file, JSON.stringify(raw));
    const { status, out } = run(file);
    expect(status).toBe(1);
    expect(out).toContain(`${file}: $.states.end: state 'end' has no way out`);
    expect(out).toContain('[dead-end]');
    expect(out).toContain(`${file}: $.intents.idle: warning: intent 'idle' is used by no transition and no global intent [unused-intent]`);
    expect(out).toContain('1 map checked: 1 error, 1 warning');
  });

  it('reports files that are not JSON or not a map, with their paths', () => {
    const notJson = join(dir, 'not-json.json');
    writeFileSync(notJson, '{ "name": ');
    const notMap = join(dir, 'not-map.json');
    writeFileSync(notMap, JSON.stringify({ ...clean(), initial_state: 42 }));
    const { status, out } = run(notJson, notMap);
    expect(status).toBe(1);
    expect(out).toMatch(new RegExp(`${notJson.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\$: .+ \\[invalid-json\\]`));
    expect(out).toContain(`${notMap}: $.initial_state:`);
    expect(out).toContain('[schema]');
  });

  it('passes examples/ru', () => {
    const { status, out } = run('examples/ru/dialogue_map.json');
    expect(status, out).toBe(0);
    expect(out).toContain('1 map checked: 0 errors, 0 warnings');
  });
});
