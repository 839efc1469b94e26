import { readFileSync } from 'node:fs';
import { mapError } from '../support/errors';
import { describe, expect, it } from 'vitest';
import type { ActionOutcome } from '../../lib/actions/port';
import { NODE_HISTORY_LIMIT } from '../../lib/checkpoint/schema';
import type { Classification, Entities } from '../../lib/flow/classifier';
import {
  advanceFlow,
  candidateIntents,
  completeAction,
  enterFlow,
  MAX_SLOT_QUESTIONS,
  notUnderstood,
  stayAndSay,
  type FlowResult,
  type FlowState,
} from '../../lib/flow/engine';
import { loadDialogueMap, localize, MESSAGE_KINDS, referenceProblems, type DialogueMap } from '../../lib/flow/map';

// Raw JSON is edited freely by the tests below, so it is typed loosely on purpose.
type Raw = Record<string, any>;

const rawSample = (): Raw => JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8')) as Raw;


/** A fake classification, as the NLU port would return it. */
const cls = (intent: string | null, entities: Entities = {}, leader: string | null = intent): Classification => ({
  intent,
  score: intent ? 0.9 : 0,
  leader,
  entities,
});

const cache = (key: string) => ({ type: 'cache' as const, key });
const msg = (kind: string) => ({ type: 'message' as const, kind });

/**
 * A small map for the engine: no wording from the sample, every feature once.
 *   start --go(set a, seats)--> middle --go--> start
 *   start --book(slots city, day; ask 1)--> booked      start --book2(slots city, day; ask 2)--> booked
 *   start --save--> saving (run save, on_error failed)  start --save_unsafe--> saving_unsafe (run, no on_error)
 *   start --checkout--> checkout (run, END_CALL)
 *   globals: repeat, back, quit -> end (END_CALL), help -> middle (set helped)
 */
const rawTiny = (): Raw => ({
  name: 'tiny',
  language: 'en',
  initial_state: 'start',
  prompts: {
    'cache:start': 'Start.',
    'cache:start_reprompt': 'Start, again?',
    'cache:middle': 'Middle.',
    'cache:saved': 'Saved.',
    'cache:failed': 'That failed.',
    'cache:end': 'Bye.',
    'filler:wait': 'One moment…',
    'filler:still': 'Still working…',
  },
  messages: Object.fromEntries(MESSAGE_KINDS.map((k) => [k, `<${k}>`])),
  intents: {
    go: { examples: ['go'] },
    book: {
      examples: ['book a table'],
      slots: {
        city: { entity: 'city', prompt: 'Which city?' },
        day: { entity: 'day', prompt: 'Which day?' },
        seats: { entity: 'number', required: false },
      },
    },
    book2: {
      examples: ['book two'],
      slots: {
        city: { entity: 'city', prompt: 'Which city?' },
        day: { entity: 'day', prompt: 'Which day?' },
        time: { entity: 'time', prompt: 'What time?' },
      },
      ask_per_question: 2,
    },
    save: { examples: ['save'] },
    save_unsafe: { examples: ['save unsafe'] },
    checkout: { examples: ['checkout'] },
    repeat: { examples: ['repeat'] },
    back: { examples: ['back'] },
    quit: { examples: ['quit'] },
    help: { examples: ['help'] },
    unrelated: { examples: ['unrelated'] },
  },
  entities: {
    city: { type: 'enum', values: { paris: ['paris'], rome: ['rome'] } },
    day: { type: 'regex', pattern: 'monday|tuesday' },
    time: { type: 'regex', pattern: '\\d\\d:\\d\\d' },
  },
  global_intents: { repeat: 'repeat', back: 'back', quit: 'end', help: { to: 'middle', set: { helped: true } } },
  actions: { save: { type: 'webhook', url: '/save', result_variable: 'saved' } },
  states: {
    start: {
      system_response: { playlist: [cache('cache:start')], reprompt: [cache('cache:start_reprompt')] },
      transitions: {
        go: { to: 'middle', set: { a: 1, seats: 1 } },
        book: { to: 'booked', set: { seats: 1, city: 'default-city' } },
        book2: 'booked',
        save: 'saving',
        save_unsafe: 'saving_unsafe',
        checkout: 'checkout',
      },
    },
    middle: { system_response: { playlist: [cache('cache:middle')] }, transitions: { go: 'start' } },
    booked: {
      system_response: { playlist: [{ type: 'tts', text_template: 'Booked {{ session.variables.city }} on {{ session.variables.day }}.' }] },
      transitions: { go: 'start' },
    },
    saving: {
      run: 'save',
      on_error: 'failed',
      fillers: ['filler:wait', 'filler:still'],
      system_response: { playlist: [{ type: 'tts', text_template: 'Saved as {{ session.variables.saved.id }}.' }, cache('cache:saved')] },
      transitions: { go: 'start' },
    },
    saving_unsafe: {
      run: 'save',
      fillers: ['filler:wait'],
      system_response: { playlist: [cache('cache:saved')] },
    },
    checkout: { run: 'save', system_response: { playlist: [cache('cache:end')] }, action: 'END_CALL' },
    failed: { system_response: { playlist: [cache('cache:failed')] }, transitions: { go: 'start' } },
    end: { system_response: { playlist: [cache('cache:end')] }, action: 'END_CALL' },
  },
});

const tiny = loadDialogueMap(rawTiny());

const flowAt = (node: string | null, extra: Partial<FlowState> = {}): FlowState => ({
  node,
  history: [],
  variables: {},
  pending: null,
  ...extra,
});

/** advanceFlow, failing the test when the engine goes off-script. */
function step(map: DialogueMap, state: FlowState, c: Classification): FlowResult {
  const result = advanceFlow(map, state, c);
  if (result === null) throw new Error(`advanceFlow went off-script for ${JSON.stringify(c)}`);
  return result;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const ok = (result: unknown): ActionOutcome => ({ ok: true, result, ms: 12, attempts: 1 });
const failed = (kind: 'action_failed' | 'action_timeout'): ActionOutcome => ({ ok: false, kind, detail: 'boom', ms: 30, attempts: 2 });

// ---------------------------------------------------------------------------------------------------

describe('loadDialogueMap', () => {
  it('accepts the sample dialogue_map.json and fills defaults', () => {
    const map = loadDialogueMap(rawSample());
    expect(map.name).toBe('Parley Café');
    expect(map.initial_state).toBe('welcome');
    expect(map.languages).toEqual([]);
    expect(map.intents.order_drink?.ask_per_question).toBe(2);
    expect(map.intents.order_drink?.slots.drink).toMatchObject({ entity: 'drink', required: true });
    expect(map.intents.order_drink?.slots.quantity).toMatchObject({ entity: 'number', required: false });
    // Defaults: an intent without slots gets {}, a state without transitions gets {}.
    expect(map.intents.yes?.slots).toEqual({});
    expect(map.intents.yes?.ask_per_question).toBe(1);
    expect(map.states.goodbye?.transitions).toEqual({});
    expect(map.states.goodbye?.action).toBe('END_CALL');
    expect(map.actions.place_order).toMatchObject({ method: 'POST', timeout_ms: 3000, retries: 1, result_variable: 'order' });
    expect(map.global_intents.repeat).toBe('repeat');
    expect(referenceProblems(map)).toEqual([]);
  });

  it('accepts the small test map', () => {
    expect(referenceProblems(tiny)).toEqual([]);
    expect(tiny.entities.day).toEqual({ type: 'regex', pattern: 'monday|tuesday', flags: 'i' });
  });

  it('rejects a transition to an unknown state, naming the JSON path and the state', () => {
    const raw = rawSample();
    raw.states.welcome.transitions.ask_menu = 'nowhere';
    const err = mapError(raw);
    expect(err.message).toContain('$.states.welcome.transitions.ask_menu');
    expect(err.message).toContain("unknown state 'nowhere'");
  });

  it('rejects unknown states in initial_state, on_error and global intents', () => {
    const a = rawSample();
    a.initial_state = 'lobby';
    expect(mapError(a).message).toContain("$.initial_state: unknown state 'lobby'");
    const b = rawSample();
    b.states.place_order.on_error = 'oops';
    expect(mapError(b).message).toContain("$.states.place_order.on_error: unknown state 'oops'");
    const c = rawSample();
    c.global_intents.operator = 'reception';
    expect(mapError(c).message).toContain("$.global_intents.operator: unknown state 'reception'");
  });

  it('rejects a transition keyed by an unknown intent, and a global intent that is not an intent', () => {
    const raw = rawSample();
    raw.states.menu.transitions.extra_shot = 'confirm';
    const err = mapError(raw);
    expect(err.message).toContain("$.states.menu.transitions.extra_shot: unknown intent 'extra_shot'");

    const g = rawSample();
    g.global_intents.shout = 'welcome';
    expect(mapError(g).message).toContain("$.global_intents.shout: unknown intent 'shout'");
  });

  it('rejects a playlist, reprompt or filler prompt key that is not defined under $.prompts', () => {
    const raw = rawSample();
    raw.states.menu.system_response.playlist.push({ type: 'cache', key: 'cache:specials' });
    expect(mapError(raw).message).toContain("$.states.menu.system_response.playlist.1.key: prompt 'cache:specials' is not defined");

    const re = rawSample();
    re.states.welcome.system_response.reprompt[0].key = 'cache:nope';
    expect(mapError(re).message).toContain('$.states.welcome.system_response.reprompt.0.key');

    const fill = rawSample();
    fill.states.place_order.fillers = ['filler:one_moment', 'filler:kettle'];
    expect(mapError(fill).message).toContain("$.states.place_order.fillers.1: prompt 'filler:kettle' is not defined");
  });

  it('rejects a cache item that plays a filler prompt', () => {
    const raw = rawSample();
    raw.states.menu.system_response.playlist[0] = { type: 'cache', key: 'filler:one_moment' };
    expect(mapError(raw).message).toContain("$.states.menu.system_response.playlist.0.key: a cache item plays a 'cache:' prompt");
  });

  it('rejects a slot whose entity is unknown', () => {
    const raw = rawSample();
    raw.intents.order_drink.slots.milk.entity = 'dairy';
    expect(mapError(raw).message).toContain("$.intents.order_drink.slots.milk.entity: unknown entity 'dairy'");
  });

  it('accepts the built-in number entity in a slot', () => {
    const raw = rawSample();
    delete raw.entities.size;
    raw.intents.order_drink.slots.size.entity = 'number';
    expect(() => loadDialogueMap(raw)).not.toThrow();
  });

  it('rejects a required slot without a prompt (required is the default), but not an optional one', () => {
    const raw = rawSample();
    delete raw.intents.order_drink.slots.size.prompt;
    expect(mapError(raw).message).toContain('$.intents.order_drink.slots.size.prompt: a required slot needs a prompt');

    const optional = rawSample();
    delete optional.intents.order_drink.slots.size.prompt;
    optional.intents.order_drink.slots.size.required = false;
    expect(() => loadDialogueMap(optional)).not.toThrow();
  });

  it('rejects a state that runs an unknown action', () => {
    const raw = rawSample();
    raw.states.place_order.run = 'brew';
    expect(mapError(raw).message).toContain("$.states.place_order.run: unknown action 'brew'");
  });

  it('rejects a regex entity whose pattern does not compile', () => {
    const raw = rawSample();
    raw.entities.code = { type: 'regex', pattern: '([a-z' };
    const err = mapError(raw);
    expect(err.message).toContain('$.entities.code.pattern');
    expect(err.message).toMatch(/Invalid regular expression/i);
  });

  it('rejects a duplicate FAQ id, naming the second entry', () => {
    const raw = rawSample();
    raw.faq.push({ id: 'wifi', questions: ['Is there wi-fi?'], answer: 'Yes.' });
    const index = raw.faq.length - 1;
    expect(mapError(raw).message).toContain(`$.faq.${index}.id: duplicate FAQ id 'wifi'`);
  });

  it('reports several reference problems at once', () => {
    const raw = rawSample();
    raw.states.welcome.transitions.ask_menu = 'nowhere';
    raw.states.place_order.run = 'brew';
    const err = mapError(raw);
    expect(err.message).toContain('$.states.welcome.transitions.ask_menu');
    expect(err.message).toContain('$.states.place_order.run');
  });

  it('rejects schema errors with the JSON path of the bad value', () => {
    const cases: [string, (raw: Raw) => void][] = [
      ['$.states.welcome.system_response.playlist.0.type', (r) => (r.states.welcome.system_response.playlist[0] = { type: 'audio', key: 'cache:welcome' })],
      ['$.states.menu.system_response.playlist', (r) => (r.states.menu.system_response.playlist = [])],
      ['$.states.goodbye.action', (r) => (r.states.goodbye.action = 'HANG_UP')],
      ['$.entities.size.type', (r) => (r.entities.size.type = 'fuzzy')],
      ['$.prompts', (r) => (r.prompts['welcome'] = 'no prefix')],
      ['$.messages.not_understood', (r) => delete r.messages.not_understood],
      ['$.intents.yes.ask_per_question', (r) => (r.intents.yes.ask_per_question = 0)],
      ['$.language', (r) => (r.language = 'english')],
      ['$.actions.place_order.timeout_ms', (r) => (r.actions.place_order.timeout_ms = 10)],
      ['$.initial_state', (r) => delete r.initial_state],
      // Objects are strict: a misspelt key is an error, not silently ignored.
      ['$.states.place_order', (r) => (r.states.place_order.on_eror = 'order_failed')],
      ['$.intents.order_drink.slots.size', (r) => (r.intents.order_drink.slots.size.requird = false)],
    ];
    for (const [path, breakIt] of cases) {
      const raw = rawSample();
      breakIt(raw);
      expect(mapError(raw).message, path).toContain(path);
    }
  });

  it('rejects non-objects', () => {
    mapError(null);
    mapError('map');
    mapError([]);
  });
});

describe('localize', () => {
  it('picks the language, then the fallback, then any text; plain strings are for every language', () => {
    expect(localize('Hello', 'ru', 'en')).toBe('Hello');
    expect(localize({ en: 'Hello', ru: 'Привет' }, 'ru', 'en')).toBe('Привет');
    expect(localize({ en: 'Hello', ru: 'Привет' }, 'tr', 'en')).toBe('Hello');
    expect(localize({ ru: 'Привет' }, 'tr', 'en')).toBe('Привет');
  });
});

// ---------------------------------------------------------------------------------------------------

describe('flow engine: entering and moving', () => {
  it('candidateIntents lists the state transitions first, then the global ones, without duplicates', () => {
    expect(candidateIntents(tiny, 'middle')).toEqual(['go', 'repeat', 'back', 'quit', 'help']);
    expect(candidateIntents(tiny, 'end')).toEqual(['repeat', 'back', 'quit', 'help']);
    expect(candidateIntents(tiny, null)).toEqual(['repeat', 'back', 'quit', 'help']);
    const sample = loadDialogueMap(rawSample());
    expect(candidateIntents(sample, 'welcome')).toEqual(['order_drink', 'ask_menu', 'repeat', 'back', 'operator', 'goodbye', 'start_over']);
  });

  it('enterFlow enters the initial state and says its playlist', () => {
    expect(enterFlow(tiny)).toEqual({
      status: 'SUCCESS',
      state: { node: 'start', history: [], variables: {}, pending: null },
      transition: { from: null, to: 'start' },
      say: [cache('cache:start')],
      endCall: false,
      runAction: null,
      fillers: [],
      missing: [],
    });
    const sample = loadDialogueMap(rawSample());
    expect(enterFlow(sample).say).toEqual([cache('cache:welcome')]);
    expect(enterFlow(sample).transition).toEqual({ from: null, to: 'welcome' });
  });

  it('a transition moves, remembers the node left behind and sets its `set` variables over the earlier ones', () => {
    const before = deepFreeze(flowAt('start', { history: ['x'], variables: { keep: 'me', a: 0 } }));
    const r = step(tiny, before, cls('go'));
    expect(r).toEqual({
      status: 'SUCCESS',
      state: { node: 'middle', history: ['x', 'start'], variables: { keep: 'me', a: 1, seats: 1 }, pending: null },
      transition: { from: 'start', to: 'middle' },
      say: [cache('cache:middle')],
      endCall: false,
      runAction: null,
      fillers: [],
      missing: [],
    });
    // The input state is untouched (it was frozen; a write would have thrown).
    expect(before).toEqual(flowAt('start', { history: ['x'], variables: { keep: 'me', a: 0 } }));
  });

  it('a plain string transition moves without setting variables', () => {
    const r = step(tiny, flowAt('middle', { variables: { v: 1 } }), cls('go'));
    expect(r.state.node).toBe('start');
    expect(r.state.variables).toEqual({ v: 1 });
  });

  it('treats a null node as the initial state', () => {
    const r = step(tiny, flowAt(null), cls('go'));
    expect(r.transition).toEqual({ from: 'start', to: 'middle' });
    expect(r.state.history).toEqual(['start']);
  });

  it('returns null (off-script) when no intent matched or the intent is no transition here and not global', () => {
    expect(advanceFlow(tiny, flowAt('start'), cls(null))).toBeNull();
    expect(advanceFlow(tiny, flowAt('middle'), cls('book', { city: 'paris' }))).toBeNull();
    expect(advanceFlow(tiny, flowAt('start'), cls('unrelated'))).toBeNull();
    // Entities alone are no answer when nothing is pending.
    expect(advanceFlow(tiny, flowAt('start'), cls(null, { city: 'paris', day: 'monday' }))).toBeNull();
  });

  it('an END_CALL state sets endCall and says its playlist', () => {
    const r = step(tiny, flowAt('middle'), cls('quit'));
    expect(r.transition).toEqual({ from: 'middle', to: 'end' });
    expect(r.endCall).toBe(true);
    expect(r.say).toEqual([cache('cache:end')]);
    expect(step(tiny, flowAt('start'), cls('go')).endCall).toBe(false);
  });

  it('bounds the node history to NODE_HISTORY_LIMIT, dropping the oldest', () => {
    const history = Array.from({ length: NODE_HISTORY_LIMIT }, (_, i) => `n${i}`);
    const r = step(tiny, flowAt('start', { history }), cls('go'));
    expect(r.state.history).toHaveLength(NODE_HISTORY_LIMIT);
    expect(r.state.history[0]).toBe('n1');
    expect(r.state.history.at(-1)).toBe('start');
  });

  it('notUnderstood says the not-understood message then the reprompt (or the playlist), stays and drops an exhausted pending question', () => {
    const pending = { intent: 'book', values: { city: 'paris' }, asked: MAX_SLOT_QUESTIONS };
    const r = notUnderstood(tiny, flowAt('start', { variables: { v: 1 }, pending }));
    expect(r.say).toEqual([msg('not_understood'), cache('cache:start_reprompt')]);
    expect(r.transition).toBeNull();
    expect(r.state).toEqual(flowAt('start', { variables: { v: 1 } }));
    expect(notUnderstood(tiny, flowAt('middle')).say).toEqual([msg('not_understood'), cache('cache:middle')]);
    expect(notUnderstood(tiny, flowAt(null)).state.node).toBe('start');
  });

  it('stayAndSay says without moving and keeps the whole state', () => {
    const state = flowAt('start', { pending: { intent: 'book', values: {}, asked: 1 } });
    const r = stayAndSay(state, [{ type: 'text', text: 'An answer.', source: 'faq:x' }]);
    expect(r.state).toBe(state);
    expect(r.transition).toBeNull();
    expect(r.status).toBe('SUCCESS');
    expect(r.say).toEqual([{ type: 'text', text: 'An answer.', source: 'faq:x' }]);
  });
});

describe('flow engine: slot filling', () => {
  const cityPrompt = { type: 'text', text: 'Which city?', source: 'slot:book.city' };
  const dayPrompt = { type: 'text', text: 'Which day?', source: 'slot:book.day' };

  it('asks for a missing required slot (MISSING_ENTITY), stays and keeps the intent pending', () => {
    const r = step(tiny, flowAt('start', { history: ['h'], variables: { v: 1 } }), cls('book'));
    expect(r).toEqual({
      status: 'MISSING_ENTITY',
      state: { node: 'start', history: ['h'], variables: { v: 1 }, pending: { intent: 'book', values: {}, asked: 1 } },
      transition: null,
      say: [cityPrompt],
      endCall: false,
      runAction: null,
      fillers: [],
      missing: ['city'],
    });
  });

  it('asks at most ask_per_question slots per question, in slot order', () => {
    const two = step(tiny, flowAt('start'), cls('book2'));
    expect(two.status).toBe('MISSING_ENTITY');
    expect(two.missing).toEqual(['city', 'day']);
    expect(two.say).toEqual([
      { type: 'text', text: 'Which city?', source: 'slot:book2.city' },
      { type: 'text', text: 'Which day?', source: 'slot:book2.day' },
    ]);
    // With the city given, the next two in order.
    const next = step(tiny, flowAt('start'), cls('book2', { city: 'rome' }));
    expect(next.missing).toEqual(['day', 'time']);
    expect(next.state.pending).toEqual({ intent: 'book2', values: { city: 'rome' }, asked: 1 });
  });

  it("keeps the slot values the intent's own input gave, and asks only for the rest", () => {
    const r = step(tiny, flowAt('start'), cls('book', { day: 'monday', seats: 9 }));
    expect(r.missing).toEqual(['city']);
    expect(r.say).toEqual([cityPrompt]);
    // `seats` is the slot name; the entity is `number`, so a `seats` entity fills nothing.
    expect(r.state.pending).toEqual({ intent: 'book', values: { day: 'monday' }, asked: 1 });
  });

  it('fills the pending slots from the next inputs, even when they classify as no intent, then takes the transition', () => {
    const first = step(tiny, flowAt('start', { history: ['h'], variables: { v: 1 } }), cls('book'));
    const second = step(tiny, first.state, cls(null, { city: 'paris' }));
    expect(second.status).toBe('MISSING_ENTITY');
    expect(second.say).toEqual([dayPrompt]);
    expect(second.missing).toEqual(['day']);
    expect(second.state.pending).toEqual({ intent: 'book', values: { city: 'paris' }, asked: 1 }) // an answer resets the count of unanswered questions;
    expect(second.state.variables).toEqual({ v: 1 });

    const third = step(tiny, second.state, cls(null, { day: 'tuesday', number: 4 }, 'book'));
    expect(third).toEqual({
      status: 'SUCCESS',
      // Slot values override the transition's `set` defaults (city 'default-city', seats 1).
      state: { node: 'booked', history: ['h', 'start'], variables: { v: 1, city: 'paris', day: 'tuesday', seats: 4 }, pending: null },
      transition: { from: 'start', to: 'booked' },
      say: [{ type: 'tts', text_template: 'Booked {{ session.variables.city }} on {{ session.variables.day }}.' }],
      endCall: false,
      runAction: null,
      fillers: [],
      missing: [],
    });
  });

  it('uses the `set` defaults for optional slots nobody filled', () => {
    const r = step(tiny, flowAt('start'), cls('book', { city: 'rome', day: 'monday' }));
    expect(r.status).toBe('SUCCESS');
    expect(r.state.variables).toEqual({ seats: 1, city: 'rome', day: 'monday' });
  });

  it('collects the slots of the sample order over two turns', () => {
    const sample = loadDialogueMap(rawSample());
    const first = step(sample, flowAt('welcome'), cls('order_drink', { drink: 'latte' }));
    expect(first.status).toBe('MISSING_ENTITY');
    expect(first.say).toEqual([{ type: 'text', text: 'Which size: small, medium or large?', source: 'slot:order_drink.size' }]);
    const second = step(sample, first.state, cls(null, { size: 'large', milk: 'oat milk' }));
    expect(second.state.node).toBe('confirm');
    expect(second.state.variables).toEqual({ quantity: 1, milk: 'oat milk', drink: 'latte', size: 'large' });
  });

  it('the same intent again re-asks without the not-understood message', () => {
    const first = step(tiny, flowAt('start'), cls('book'));
    const again = step(tiny, first.state, cls('book'));
    expect(again.status).toBe('MISSING_ENTITY');
    expect(again.say).toEqual([cityPrompt]);
    expect(again.state.pending?.asked).toBe(2);
  });

  // As the runner does it: an unanswered question is off-script (the FAQ may answer it), and only
  // when nothing does, notUnderstood asks again.
  const respond = (state: FlowState, c: Classification) => advanceFlow(tiny, state, c) ?? notUnderstood(tiny, state);

  it('an unanswerable answer says not_understood and the prompt again, counting up, until MAX_SLOT_QUESTIONS, then falls back', () => {
    expect(MAX_SLOT_QUESTIONS).toBeGreaterThan(1);
    let r = step(tiny, flowAt('start'), cls('book', { day: 'monday' }));
    const asked = [r.state.pending?.asked];
    for (let i = 1; i < MAX_SLOT_QUESTIONS; i++) {
      expect(advanceFlow(tiny, r.state, cls(null))).toBeNull();
      r = respond(r.state, cls(null));
      expect(r.status).toBe('MISSING_ENTITY');
      expect(r.transition).toBeNull();
      expect(r.say).toEqual([msg('not_understood'), cityPrompt]);
      expect(r.missing).toEqual(['city']);
      expect(r.state.node).toBe('start');
      expect(r.state.pending).toMatchObject({ intent: 'book', values: { day: 'monday' } });
      asked.push(r.state.pending?.asked);
    }
    expect(asked).toEqual(Array.from({ length: MAX_SLOT_QUESTIONS }, (_, i) => i + 1));
    const gaveUp = respond(r.state, cls(null));
    expect(gaveUp.status).toBe('SUCCESS');
    expect(gaveUp.state.pending).toBeNull();
    expect(gaveUp.say[0]).toEqual(msg('not_understood'));
  });

  it('an unanswerable answer repeats the same question, still at most ask_per_question slots', () => {
    const first = step(tiny, flowAt('start'), cls('book'));
    expect(first.say).toEqual([cityPrompt]);
    const again = respond(first.state, cls(null));
    expect(again.say).toEqual([msg('not_understood'), cityPrompt]);
    expect(again.missing).toEqual(['city']);
  });

  it('an answer to the pending question wins over a global intent the words happen to resemble', () => {
    const first = step(tiny, flowAt('start'), cls('book', { day: 'monday' }));
    expect(first.missing).toEqual(['city']);
    const r = step(tiny, first.state, cls('quit', { city: 'paris' }));
    expect(r.transition).toEqual({ from: 'start', to: 'booked' });
    expect(r.state.variables).toMatchObject({ city: 'paris', day: 'monday' });
  });

  it('another candidate intent while a slot is pending drops the pending intent and takes its transition', () => {
    const first = step(tiny, flowAt('start'), cls('book', { city: 'paris' }));
    expect(first.state.pending).not.toBeNull();
    const r = step(tiny, first.state, cls('go'));
    expect(r.status).toBe('SUCCESS');
    expect(r.transition).toEqual({ from: 'start', to: 'middle' });
    expect(r.state.pending).toBeNull();
    expect(r.state.variables).toEqual({ a: 1, seats: 1 });
  });

  it('another intent with its own missing slots replaces the pending one', () => {
    const first = step(tiny, flowAt('start'), cls('book', { day: 'monday' }));
    const r = step(tiny, first.state, cls('book2'));
    expect(r.state.pending).toEqual({ intent: 'book2', values: {}, asked: 1 });
    expect(r.missing).toEqual(['city', 'day']);
  });

  it('a global intent while a slot is pending drops the pending intent', () => {
    const first = step(tiny, flowAt('start'), cls('book'));
    const r = step(tiny, first.state, cls('help'));
    expect(r.state.node).toBe('middle');
    expect(r.state.pending).toBeNull();
  });
});

describe('flow engine: global intents', () => {
  it('repeat stays at the node and says its playlist again, keeping the history', () => {
    const r = step(tiny, flowAt('middle', { history: ['start'], variables: { v: 1 } }), cls('repeat'));
    expect(r.status).toBe('SUCCESS');
    expect(r.transition).toBeNull();
    expect(r.state).toEqual(flowAt('middle', { history: ['start'], variables: { v: 1 } }));
    expect(r.say).toEqual([cache('cache:middle')]);
    expect(r.endCall).toBe(false);
  });

  it('back pops the history and returns to the previous node with its playlist', () => {
    const at = flowAt('booked', { history: ['start', 'middle'], variables: { v: 1 } });
    const r = step(tiny, at, cls('back'));
    expect(r.transition).toEqual({ from: 'booked', to: 'middle' });
    expect(r.state).toEqual(flowAt('middle', { history: ['start'], variables: { v: 1 } }));
    expect(r.say).toEqual([cache('cache:middle')]);
    const again = step(tiny, r.state, cls('back'));
    expect(again.transition).toEqual({ from: 'middle', to: 'start' });
    expect(again.state.history).toEqual([]);
  });

  it('back into a state that runs an action returns there without running the action again', () => {
    const r = step(tiny, flowAt('middle', { history: ['start', 'saving'], variables: { saved: { id: 'A17' } } }), cls('back'));
    expect(r.transition).toEqual({ from: 'middle', to: 'saving' });
    expect(r.runAction).toBeNull();
    expect(r.fillers).toEqual([]);
    expect(r.say).toEqual([{ type: 'tts', text_template: 'Saved as {{ session.variables.saved.id }}.' }, cache('cache:saved')]);
    expect(r.state).toEqual(flowAt('saving', { history: ['start'], variables: { saved: { id: 'A17' } } }));
  });

  it('back with an empty history stays and says the playlist again', () => {
    const r = step(tiny, flowAt('middle'), cls('back'));
    expect(r.transition).toBeNull();
    expect(r.state.node).toBe('middle');
    expect(r.state.history).toEqual([]);
    expect(r.say).toEqual([cache('cache:middle')]);
  });

  it('a target global intent moves from any state, with its `set` variables', () => {
    for (const node of ['start', 'middle', 'booked', 'failed', 'end']) {
      const r = step(tiny, flowAt(node, { variables: { v: 1 } }), cls('help'));
      expect(r.transition).toEqual({ from: node, to: 'middle' });
      expect(r.state.variables).toEqual({ v: 1, helped: true });
      expect(r.state.history).toEqual([node]);
      const q = step(tiny, flowAt(node), cls('quit'));
      expect(q.state.node).toBe('end');
      expect(q.endCall).toBe(true);
    }
  });
});

describe('flow engine: actions', () => {
  it('entering a state with `run` returns the action and its fillers, with nothing said yet', () => {
    const r = step(tiny, flowAt('start', { variables: { v: 1 } }), cls('save'));
    expect(r).toEqual({
      status: 'SUCCESS',
      state: { node: 'saving', history: ['start'], variables: { v: 1 }, pending: null },
      transition: { from: 'start', to: 'saving' },
      say: [],
      endCall: false,
      runAction: 'save',
      fillers: ['filler:wait', 'filler:still'],
      missing: [],
    });
  });

  it('completeAction on success stores the result in result_variable and says the playlist', () => {
    const before = flowAt('start', { variables: { v: 1 } });
    const entered = step(tiny, before, cls('save'));
    const r = completeAction(tiny, before, entered, ok({ id: 'A17' }));
    expect(r.status).toBe('SUCCESS');
    expect(r.runAction).toBeNull();
    expect(r.transition).toEqual({ from: 'start', to: 'saving' });
    expect(r.state).toEqual({ node: 'saving', history: ['start'], variables: { v: 1, saved: { id: 'A17' } }, pending: null });
    expect(r.say).toEqual([{ type: 'tts', text_template: 'Saved as {{ session.variables.saved.id }}.' }, cache('cache:saved')]);
    expect(r.endCall).toBe(false);
  });

  it('an END_CALL state that runs an action ends the call only once the action completed', () => {
    const before = flowAt('start');
    const entered = step(tiny, before, cls('checkout'));
    expect(entered.runAction).toBe('save');
    expect(entered.endCall).toBe(false);
    const done = completeAction(tiny, before, entered, ok(true));
    expect(done.endCall).toBe(true);
    expect(done.say).toEqual([cache('cache:end')]);
  });

  it.each(['action_failed', 'action_timeout'] as const)(
    'completeAction on %s goes to on_error with EXECUTION_ERROR, saying the message kind first',
    (kind) => {
      const before = flowAt('start', { variables: { v: 1 } });
      const entered = step(tiny, before, cls('save'));
      const r = completeAction(tiny, before, entered, failed(kind));
      expect(r.status).toBe('EXECUTION_ERROR');
      expect(r.state.node).toBe('failed');
      expect(r.transition).toEqual({ from: 'start', to: 'failed' });
      expect(r.say).toEqual([msg(kind), cache('cache:failed')]);
      expect(r.runAction).toBeNull();
      expect(r.endCall).toBe(false);
      expect(r.state.variables).not.toHaveProperty('saved');
      expect(r.state.pending).toBeNull();
    },
  );

  it('completeAction on failure without on_error stays at the previous node with no transition', () => {
    const before = deepFreeze(flowAt('start', { history: ['h'], variables: { v: 1 } }));
    const entered = step(tiny, before, cls('save_unsafe'));
    expect(entered.runAction).toBe('save');
    const r = completeAction(tiny, before, entered, failed('action_timeout'));
    expect(r).toEqual({
      status: 'EXECUTION_ERROR',
      state: before,
      transition: null,
      say: [msg('action_timeout')],
      endCall: false,
      runAction: null,
      fillers: [],
      missing: [],
    });
  });
});
