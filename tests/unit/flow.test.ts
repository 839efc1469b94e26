import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ParleyError } from '../../lib/errors';
import { keywordClassifier } from '../../lib/flow/classifier';
import { advanceFlow, candidateIntents, enterFlow } from '../../lib/flow/engine';
import { loadDialogueMap, type DialogueMap } from '../../lib/flow/map';
import { renderTemplate } from '../../lib/flow/template';

const rawSample = (): Record<string, any> =>
  JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8')) as Record<string, any>;

function mapError(input: unknown): ParleyError {
  try {
    loadDialogueMap(input);
  } catch (err) {
    expect(err).toBeInstanceOf(ParleyError);
    expect((err as ParleyError).code).toBe('map.invalid');
    return err as ParleyError;
  }
  throw new Error('expected loadDialogueMap to throw');
}

/** A tiny map for engine tests that do not depend on the sample's wording. */
const tinyMap = (): DialogueMap =>
  loadDialogueMap({
    name: 'tiny',
    initial_state: 'start',
    fallback: 'Pardon?',
    intents: {
      go: { keywords: ['go'] },
      name: { keywords: ['call me'] },
      stay: { keywords: ['stay'] },
      quit: { keywords: ['quit'] },
    },
    global_transitions: { quit: 'end' },
    states: {
      start: {
        system_response: { text: 'Hello {{ variables.who }}!' },
        transitions: { go: { to: 'middle', set: { who: 'friend', mood: 'good' } }, stay: 'start' },
      },
      middle: {
        system_response: { text: 'Hi {{variables.who}}, mood {{ variables.mood }}.', reprompt: 'Still {{ variables.who }}?' },
        transitions: { name: { to: 'start', set: { who: 'Ada' } } },
      },
      end: { system_response: { text: 'Bye.' }, action: 'END_CALL' },
    },
  });

describe('loadDialogueMap', () => {
  it('accepts the sample dialogue_map.json and fills defaults', () => {
    const map = loadDialogueMap(rawSample());
    expect(map.name).toBe('Parley Café');
    expect(map.initial_state).toBe('welcome');
    expect(map.states.welcome?.transitions.coffee).toEqual({ to: 'size', set: { drink: 'coffee' } });
    // `transitions` defaults to {} for END_CALL states without any.
    expect(map.states.placed?.transitions).toEqual({});
    expect(map.states.placed?.action).toBe('END_CALL');
  });

  it('rejects a transition to an unknown state, naming the JSON path', () => {
    const raw = rawSample();
    raw.states.welcome.transitions.coffee = { to: 'nowhere', set: {} };
    const err = mapError(raw);
    expect(err.message).toContain('$.states.welcome.transitions.coffee');
    expect(err.message).toContain('nowhere');
  });

  it('rejects a global transition to an unknown state', () => {
    const raw = rawSample();
    raw.global_transitions.goodbye = 'farewell';
    const err = mapError(raw);
    expect(err.message).toContain('$.global_transitions.goodbye');
    expect(err.message).toContain('farewell');
  });

  it('rejects a transition keyed by an unknown intent, naming the JSON path', () => {
    const raw = rawSample();
    raw.states.size.transitions.extra_shot = 'confirm';
    const err = mapError(raw);
    expect(err.message).toContain('$.states.size.transitions.extra_shot');
    expect(err.message).toContain('unknown intent');
  });

  it('rejects a missing initial_state, naming the JSON path', () => {
    const raw = rawSample();
    delete raw.initial_state;
    expect(mapError(raw).message).toContain('$.initial_state');
  });

  it('rejects an initial_state naming an unknown state', () => {
    const raw = rawSample();
    raw.initial_state = 'lobby';
    const err = mapError(raw);
    expect(err.message).toContain('$.initial_state');
    expect(err.message).toContain('lobby');
  });

  it('rejects schema errors with the JSON path of the bad value', () => {
    const raw = rawSample();
    raw.states.menu.system_response.text = '';
    expect(mapError(raw).message).toContain('$.states.menu.system_response.text');

    const raw2 = rawSample();
    raw2.intents.tea.keywords = [];
    expect(mapError(raw2).message).toContain('$.intents.tea.keywords');

    const raw3 = rawSample();
    raw3.states.confirm.action = 'HANG_UP';
    expect(mapError(raw3).message).toContain('$.states.confirm.action');
  });

  it('rejects non-objects', () => {
    mapError(null);
    mapError('map');
  });

  it('reports several reference problems at once', () => {
    const raw = rawSample();
    raw.states.welcome.transitions.coffee = 'nowhere';
    raw.states.menu.transitions.juice = 'size';
    const err = mapError(raw);
    expect(err.message).toContain('$.states.welcome.transitions.coffee');
    expect(err.message).toContain('$.states.menu.transitions.juice');
  });
});

describe('keywordClassifier', () => {
  const map = loadDialogueMap(rawSample());
  const classifier = keywordClassifier(map);
  const all = Object.keys(map.intents);

  it('treats typographic apostrophes (as phones type them) like straight ones', () => {
    expect(classifier.classify('That’s all, thanks', all).intent).toBe('goodbye');
  });

  it('matches whole words only', () => {
    expect(classifier.classify('the steam wand is loud', ['tea'])).toEqual({ intent: null, score: 0 });
    expect(classifier.classify('steamed milk', all).intent).toBeNull();
    expect(classifier.classify('a tea, please', ['tea'])).toEqual({ intent: 'tea', score: 1 });
    expect(classifier.classify('tea', ['tea']).intent).toBe('tea');
    // "no" must not fire inside "know" or "nothing" must not fire inside "nothingness".
    expect(classifier.classify('I know', ['no']).intent).toBeNull();
  });

  it('is case-insensitive', () => {
    expect(classifier.classify('I want COFFEE!', ['coffee']).intent).toBe('coffee');
    expect(classifier.classify('Earl GREY please', ['tea']).intent).toBe('tea');
  });

  it('matches multi-word phrases as whole words, across punctuation and extra spaces', () => {
    expect(classifier.classify('Hot   chocolate, please', ['hot_chocolate']).intent).toBe('hot_chocolate');
    expect(classifier.classify('can we start over?', ['start_over']).intent).toBe('start_over');
    expect(classifier.classify('please start again over', ['start_over']).intent).toBeNull();
    expect(classifier.classify("that's all", ['goodbye']).intent).toBe('goodbye');
  });

  it('lets the longest keyword win among matching candidates', () => {
    const m = loadDialogueMap({
      name: 'x',
      initial_state: 's',
      fallback: 'f',
      intents: {
        coffee: { keywords: ['coffee'] },
        iced: { keywords: ['iced coffee'] },
        no: { keywords: ['no'] },
        not_quite: { keywords: ['not quite right'] },
      },
      states: { s: { system_response: { text: 't' } } },
    });
    const c = keywordClassifier(m);
    expect(c.classify('an iced coffee please', ['coffee', 'iced']).intent).toBe('iced');
    expect(c.classify('an iced coffee please', ['iced', 'coffee']).intent).toBe('iced');
    expect(c.classify('a hot coffee please', ['iced', 'coffee']).intent).toBe('coffee');
    expect(c.classify('no, that is not quite right', ['no', 'not_quite']).intent).toBe('not_quite');
  });

  it('only considers candidate intents', () => {
    expect(classifier.classify('a large coffee', ['small', 'medium'])).toEqual({ intent: null, score: 0 });
    expect(classifier.classify('a large coffee', ['large']).intent).toBe('large');
    expect(classifier.classify('a large coffee', ['coffee']).intent).toBe('coffee');
    expect(classifier.classify('coffee', []).intent).toBeNull();
    expect(classifier.classify('coffee', ['not_an_intent']).intent).toBeNull();
  });

  it('returns null for empty or punctuation-only input', () => {
    expect(classifier.classify('', all).intent).toBeNull();
    expect(classifier.classify('?!...', all).intent).toBeNull();
  });

  it('handles non-ASCII letters as word characters', () => {
    const m = loadDialogueMap({
      name: 'ru',
      initial_state: 's',
      fallback: 'f',
      intents: { tea: { keywords: ['чай'] } },
      states: { s: { system_response: { text: 't' } } },
    });
    const c = keywordClassifier(m);
    expect(c.classify('Чай, пожалуйста', ['tea']).intent).toBe('tea');
    expect(c.classify('чайник', ['tea']).intent).toBeNull();
  });
});

describe('flow engine', () => {
  const map = loadDialogueMap(rawSample());
  const classifier = keywordClassifier(map);
  const step = (node: string | null, variables: Record<string, unknown>, text: string) =>
    advanceFlow(map, { node, variables }, classifier.classify(text, candidateIntents(map, node)));

  it('candidateIntents lists the state transitions first, then the global ones, without duplicates', () => {
    expect(candidateIntents(map, 'welcome')).toEqual(['coffee', 'tea', 'hot_chocolate', 'menu', 'start_over', 'goodbye']);
    expect(candidateIntents(map, 'placed')).toEqual(['start_over', 'goodbye']);
    expect(candidateIntents(map, null)).toEqual(['start_over', 'goodbye']);
  });

  it('enterFlow greets with the initial state text', () => {
    expect(enterFlow(map)).toEqual({
      transition: { from: null, to: 'welcome' },
      node: 'welcome',
      variables: {},
      say: ['Hi, welcome to Parley Café! Would you like a coffee, a tea or a hot chocolate?'],
      endCall: false,
    });
  });

  it('advanceFlow follows a transition, sets variables and renders the template', () => {
    expect(step('welcome', {}, 'I would like a latte')).toEqual({
      transition: { from: 'welcome', to: 'size' },
      node: 'size',
      variables: { drink: 'coffee' },
      say: ['Great, a coffee. Small, medium or large?'],
      endCall: false,
    });
  });

  it('keeps earlier variables and renders several of them', () => {
    const s = step('size', { drink: 'tea', name: 'Ada' }, 'large please');
    expect(s.node).toBe('confirm');
    expect(s.variables).toEqual({ drink: 'tea', name: 'Ada', size: 'large' });
    expect(s.say).toEqual(["So that's one large tea. Shall I place the order?"]);
  });

  it('does not mutate the variables it was given', () => {
    const variables = Object.freeze({ drink: 'tea' });
    const s = step('size', variables, 'small');
    expect(variables).toEqual({ drink: 'tea' });
    expect(s.variables).not.toBe(variables);
  });

  it('follows a plain string transition without setting variables', () => {
    const s = step('welcome', { x: 1 }, 'what is on the menu?');
    expect(s.transition).toEqual({ from: 'welcome', to: 'menu' });
    expect(s.variables).toEqual({ x: 1 });
  });

  it('falls back with the fallback text + the reprompt and stays at the node when nothing matches', () => {
    const s = step('size', { drink: 'tea' }, 'what a lovely day');
    expect(s).toEqual({
      transition: null,
      node: 'size',
      variables: { drink: 'tea' },
      say: ["Sorry, I didn't catch that.", 'What size would you like: small, medium or large?'],
      endCall: false,
    });
  });

  it('falls back with the state text when the state has no reprompt, rendering variables', () => {
    const m = tinyMap();
    const s = advanceFlow(m, { node: 'start', variables: { who: 'Bob' } }, { intent: null, score: 0 });
    expect(s.say).toEqual(['Pardon?', 'Hello Bob!']);
    expect(s.node).toBe('start');
    expect(s.transition).toBeNull();
  });

  it('renders the reprompt with variables on fallback', () => {
    const s = step('confirm', { drink: 'coffee', size: 'small' }, 'hmm');
    expect(s.say).toEqual(["Sorry, I didn't catch that.", 'Shall I place the order for one small coffee? Yes or no?']);
  });

  it('treats an intent that is not valid at the node as no match', () => {
    // "small" is an intent of the map, but not a transition of welcome nor a global one.
    const s = advanceFlow(map, { node: 'welcome', variables: {} }, { intent: 'small', score: 1 });
    expect(s.transition).toBeNull();
    expect(s.node).toBe('welcome');
  });

  it('follows global transitions from any state', () => {
    for (const node of ['welcome', 'menu', 'size', 'confirm']) {
      const bye = step(node, { drink: 'tea' }, 'goodbye');
      expect(bye.transition).toEqual({ from: node, to: 'goodbye' });
      expect(bye.endCall).toBe(true);
      const over = step(node, {}, 'start over');
      expect(over.transition).toEqual({ from: node, to: 'welcome' });
      expect(over.endCall).toBe(false);
    }
  });

  it("prefers the state's own transition over a global one with the same intent", () => {
    const m = tinyMap();
    // Make "quit" also a local transition of middle, to somewhere else.
    const local = { ...m, states: { ...m.states, middle: { ...m.states.middle!, transitions: { quit: 'start' } } } } as DialogueMap;
    expect(advanceFlow(local, { node: 'middle', variables: {} }, { intent: 'quit', score: 1 }).node).toBe('start');
    expect(advanceFlow(m, { node: 'middle', variables: {} }, { intent: 'quit', score: 1 }).node).toBe('end');
  });

  it('reports endCall for END_CALL states', () => {
    const s = step('confirm', { drink: 'coffee', size: 'medium' }, 'yes please');
    expect(s).toEqual({
      transition: { from: 'confirm', to: 'placed' },
      node: 'placed',
      variables: { drink: 'coffee', size: 'medium' },
      say: ['Done! Your medium coffee will be ready in five minutes. Enjoy, and goodbye!'],
      endCall: true,
    });
  });

  it('treats a null node as the initial state', () => {
    const s = step(null, {}, 'tea');
    // Only globals are candidates at null, so the classifier finds nothing; the engine reprompts at welcome.
    expect(s.node).toBe('welcome');
    const direct = advanceFlow(map, { node: null, variables: {} }, { intent: 'tea', score: 1 });
    expect(direct.transition).toEqual({ from: 'welcome', to: 'size' });
  });

  it('set values override earlier variables', () => {
    const m = tinyMap();
    const s = advanceFlow(m, { node: 'middle', variables: { who: 'friend', mood: 'good' } }, { intent: 'name', score: 1 });
    expect(s.variables).toEqual({ who: 'Ada', mood: 'good' });
    expect(s.say).toEqual(['Hello Ada!']);
  });
});

describe('renderTemplate', () => {
  it('renders variables, with or without inner spaces', () => {
    expect(renderTemplate('A {{ variables.size }} {{variables.drink}}.', { size: 'large', drink: 'tea' })).toBe('A large tea.');
  });

  it('renders unset and null variables as empty', () => {
    expect(renderTemplate('[{{ variables.missing }}]', {})).toBe('[]');
    expect(renderTemplate('[{{ variables.x }}]', { x: null })).toBe('[]');
  });

  it('stringifies non-string values, keeping falsy ones', () => {
    expect(renderTemplate('{{ variables.n }}/{{ variables.zero }}/{{ variables.no }}', { n: 3, zero: 0, no: false })).toBe('3/0/false');
  });

  it('renders repeated placeholders and leaves other text alone', () => {
    expect(renderTemplate('{{ variables.a }}-{{ variables.a }} {{ other }} {b}', { a: 'x' })).toBe('x-x {{ other }} {b}');
  });

  it('does not re-render placeholders inside values', () => {
    expect(renderTemplate('{{ variables.a }}', { a: '{{ variables.b }}', b: 'no' })).toBe('{{ variables.b }}');
  });

  it('leaves text without placeholders unchanged', () => {
    expect(renderTemplate('Plain text.', { a: 1 })).toBe('Plain text.');
  });
});
