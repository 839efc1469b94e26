import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ActionOutcome, ActionRunner, TemplateContext } from '../../lib/actions/port';
import type { TurnInput as RecordedInput } from '../../lib/checkpoint/record';

/** What runTurn runs (an interrupt record is written by a cancel, never run). */
type TurnInput = Exclude<RecordedInput, { kind: 'interrupt' }>;
import { emptyCheckpoint, NODE_HISTORY_LIMIT, type Checkpoint } from '../../lib/checkpoint/schema';
import type { FaqHit, FaqIndex } from '../../lib/faq/port';
import type { Classification, ClassifyOptions, Entities, IntentClassifier } from '../../lib/flow/classifier';
import { candidateIntents, MAX_SLOT_QUESTIONS } from '../../lib/flow/engine';
import { loadDialogueMap, type DialogueMap } from '../../lib/flow/map';
import type { ServerEvent } from '../../lib/protocol/v1';
import type { Clock } from '../../lib/runner/ports';
import { isCue, runTurn, type SpeechCue, type TurnOutcome } from '../../lib/runner/run-turn';

type Raw = Record<string, any>;
const rawSample = (): Raw => JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8')) as Raw;

const map = loadDialogueMap(rawSample());
const TURN = '3f2b8c1e-7a4d-4e2b-9c1f-5d6e7f8a9b0c';
const SESSION = 'b1c2d3e4-0000-4000-8000-000000000001';

const WELCOME = 'Hi, welcome to Parley Café! I can take your order for pickup, or answer questions about the café. What would you like?';
const MENU = map.prompts['cache:menu'] as string;
const ASK_SIZE = 'Which size: small, medium or large?';
const NOT_UNDERSTOOD = "Sorry, I didn't catch that.";
const ONE_MOMENT = 'One moment, I\'m sending your order to the kitchen…';

/** Every read of the monotonic clock advances it by `stepMs`. */
function fakeClock(stepMs = 2): Clock & { reads: number } {
  let mono = 1000;
  const clock = {
    reads: 0,
    nowMs: () => 1_700_000_000_000,
    monotonicMs: () => {
      clock.reads += 1;
      const t = mono;
      mono += stepMs;
      return t;
    },
  };
  return clock;
}

const cls = (intent: string | null, entities: Entities = {}, leader: string | null = intent): Classification => ({
  intent,
  score: intent ? 0.87 : 0,
  leader,
  entities,
});

/** Answers with the scripted classifications in order and records what it was asked. */
function scriptedClassifier(...script: Classification[]): IntentClassifier & { calls: { text: string; options: ClassifyOptions }[] } {
  const calls: { text: string; options: ClassifyOptions }[] = [];
  return {
    calls,
    classify: async (text, options) => {
      calls.push({ text, options: { ...options, candidates: [...options.candidates] } });
      const next = script.shift();
      if (!next) throw new Error(`classifier called more often than scripted (for '${text}')`);
      return next;
    },
  };
}

function fakeFaq(answers: Record<string, FaqHit> = {}): FaqIndex & { calls: { text: string; language: string }[] } {
  const calls: { text: string; language: string }[] = [];
  return {
    calls,
    search: (text, language) => {
      calls.push({ text, language });
      return answers[text] ?? null;
    },
  };
}

type Outcome = { ok: true; result: unknown } | { ok: false; kind: 'action_failed' | 'action_timeout'; detail: string };

/** Records each call, and its place among the yielded events in the shared log. */
function fakeActions(outcome: Outcome, log: string[] = []): ActionRunner & { calls: { name: string; context: TemplateContext }[] } {
  const calls: { name: string; context: TemplateContext }[] = [];
  return {
    calls,
    run: async (name, context) => {
      log.push(`action:${name}`);
      calls.push({ name, context: structuredClone(context) });
      return { ...outcome, ms: 42, attempts: outcome.ok ? 1 : 2 } as ActionOutcome;
    },
  };
}

interface Drive {
  input: TurnInput;
  checkpoint: Checkpoint;
  classifier?: IntentClassifier;
  faq?: FaqIndex;
  actions?: ActionRunner;
  clock?: Clock;
  log?: string[];
  map?: DialogueMap;
}

/** Runs a turn to its end: the yielded events, and the return value. */
async function drive(d: Drive) {
  const log = d.log ?? [];
  const gen = runTurn({
    turnId: TURN,
    sessionId: SESSION,
    input: d.input,
    checkpoint: d.checkpoint,
    map: d.map ?? map,
    classifier: d.classifier ?? scriptedClassifier(),
    faq: d.faq ?? fakeFaq(),
    actions: d.actions ?? fakeActions({ ok: false, kind: 'action_failed', detail: 'no action expected' }, log),
    clock: d.clock ?? fakeClock(),
  });
  const yielded: ServerEvent[] = [];
  const cues: SpeechCue[] = [];
  for (;;) {
    const next = await gen.next();
    if (next.done) return { yielded, cues, outcome: next.value as TurnOutcome, log };
    log.push(`yield:${next.value.type}`);
    if (isCue(next.value)) cues.push(next.value);
    else yielded.push(next.value);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

const at = (node: string, variables: Record<string, unknown> = {}, extra: Partial<Checkpoint> = {}): Checkpoint => ({
  ...emptyCheckpoint(),
  currentNode: node,
  variables,
  messages: [{ role: 'assistant', content: 'earlier' }],
  ...extra,
});

const ORDER = { drink: 'latte', size: 'large', quantity: 1, milk: '' };
const text = (t: string): TurnInput => ({ kind: 'text', text: t });
const types = (events: readonly { type: string }[]) => events.map((e) => e.type);
const reply = (yielded: readonly ServerEvent[]) => {
  const done = yielded.find((e) => e.type === 'response.text.done');
  return done && done.type === 'response.text.done' ? done.text : undefined;
};

// ---------------------------------------------------------------------------------------------------

describe('runTurn: start', () => {
  it('greets from the initial state without classifying anything', async () => {
    const classifier = scriptedClassifier();
    const { yielded, outcome } = await drive({ input: { kind: 'start' }, checkpoint: emptyCheckpoint(), classifier });
    expect(yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'node.transition', turnId: TURN, from: null, to: 'welcome' },
      { type: 'response.text.delta', turnId: TURN, text: WELCOME },
      { type: 'response.text.done', turnId: TURN, text: WELCOME },
    ]);
    expect(classifier.calls).toEqual([]);
    expect(outcome.status).toBe('completed');
    expect(outcome.checkpoint).toEqual({
      ...emptyCheckpoint(),
      currentNode: 'welcome',
      language: 'en',
      messages: [{ role: 'assistant', content: WELCOME }],
    });
    expect(types(outcome.events)).toEqual(['node_transition', 'playlist']);
    expect(outcome.events[0]).toMatchObject({ from: null, to: 'welcome' });
    expect(outcome.events[1]).toMatchObject({ items: [{ kind: 'speech', source: 'cache:welcome' }] });
    expect(outcome.usage).toEqual({ llm: {}, ttsCharacters: 0, sttSeconds: 0 });
  });

  describe('session language', () => {
    const raw = rawSample();
    raw.languages = ['ru'];
    raw.prompts['cache:welcome'] = { en: WELCOME, ru: 'Здравствуйте! Добро пожаловать в Parley Café.' };
    const bilingual = loadDialogueMap(raw);

    it('takes metadata.language when the map speaks it, and greets in it', async () => {
      const { yielded, outcome } = await drive({ input: { kind: 'start', metadata: { language: 'ru' } }, checkpoint: emptyCheckpoint(), map: bilingual });
      expect(outcome.checkpoint.language).toBe('ru');
      expect(reply(yielded)).toBe('Здравствуйте! Добро пожаловать в Parley Café.');
    });

    it("falls back to the map's language for a language the map does not speak, a non-string or no metadata", async () => {
      for (const input of [
        { kind: 'start', metadata: { language: 'tr' } },
        { kind: 'start', metadata: { language: 7 } },
        { kind: 'start', metadata: {} },
        { kind: 'start' },
      ] satisfies TurnInput[]) {
        const { yielded, outcome } = await drive({ input, checkpoint: emptyCheckpoint(), map: bilingual });
        expect(outcome.checkpoint.language).toBe('en');
        expect(reply(yielded)).toBe(WELCOME);
      }
      // The sample map speaks English only.
      const { outcome } = await drive({ input: { kind: 'start', metadata: { language: 'ru' } }, checkpoint: emptyCheckpoint() });
      expect(outcome.checkpoint.language).toBe('en');
    });

    it("classifies, searches the FAQ and answers in the session's language on later turns", async () => {
      const classifier = scriptedClassifier(cls(null));
      const faq = fakeFaq();
      const { yielded } = await drive({ input: text('непонятно'), checkpoint: at('welcome', {}, { language: 'ru' }), map: bilingual, classifier, faq });
      expect(classifier.calls[0]?.options.language).toBe('ru');
      expect(faq.calls).toEqual([{ text: 'непонятно', language: 'ru' }]);
      expect(yielded.length).toBeGreaterThan(0);
    });
  });
});

describe('runTurn: text turns', () => {
  it('appends the user and assistant messages and records intent, flow and transition', async () => {
    const classifier = scriptedClassifier(cls('ask_menu', {}, 'ask_menu'));
    const before = at('welcome', { keep: 1 }, { nodeHistory: ['goodbye'] });
    const { yielded, outcome } = await drive({ input: text('what do you have?'), checkpoint: before, classifier });
    expect(classifier.calls).toEqual([{ text: 'what do you have?', options: { language: 'en', candidates: candidateIntents(map, 'welcome') } }]);
    expect(yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'node.transition', turnId: TURN, from: 'welcome', to: 'menu' },
      { type: 'response.text.delta', turnId: TURN, text: MENU },
      { type: 'response.text.done', turnId: TURN, text: MENU },
    ]);
    expect(outcome.status).toBe('completed');
    expect(outcome.checkpoint).toEqual({
      ...before,
      currentNode: 'menu',
      nodeHistory: ['goodbye', 'welcome'],
      variables: { keep: 1 },
      messages: [
        { role: 'assistant', content: 'earlier' },
        { role: 'user', content: 'what do you have?' },
        { role: 'assistant', content: MENU },
      ],
      previousIntentLeader: 'ask_menu',
    });
    expect(outcome.events).toEqual([
      { type: 'intent', intent: 'ask_menu', score: 0.87, leader: 'ask_menu', stable: false, entities: {}, atMs: expect.any(Number) },
      { type: 'flow', status: 'SUCCESS', missing: [], atMs: expect.any(Number) },
      { type: 'node_transition', from: 'welcome', to: 'menu', atMs: expect.any(Number) },
      { type: 'playlist', items: [{ kind: 'speech', source: 'cache:menu' }], atMs: expect.any(Number) },
    ]);
  });

  it('classifies with the current node\'s candidates, the initial state\'s for a null node', async () => {
    const classifier = scriptedClassifier(cls(null), cls(null));
    await drive({ input: text('hm'), checkpoint: at('confirm', ORDER), classifier });
    await drive({ input: text('hm'), checkpoint: { ...emptyCheckpoint() }, classifier });
    expect(classifier.calls.map((c) => c.options.candidates)).toEqual([candidateIntents(map, 'confirm'), candidateIntents(map, 'welcome')]);
  });

  it('updates previousIntentLeader and marks the intent stable when the leader repeats', async () => {
    const same = await drive({
      input: text('a latte'),
      checkpoint: at('welcome', {}, { previousIntentLeader: 'order_drink' }),
      classifier: scriptedClassifier(cls(null, {}, 'order_drink')),
    });
    expect(same.outcome.events[0]).toMatchObject({ type: 'intent', intent: null, leader: 'order_drink', stable: true });
    expect(same.outcome.checkpoint.previousIntentLeader).toBe('order_drink');

    const changed = await drive({
      input: text('the menu'),
      checkpoint: at('welcome', {}, { previousIntentLeader: 'order_drink' }),
      classifier: scriptedClassifier(cls('ask_menu')),
    });
    expect(changed.outcome.events[0]).toMatchObject({ type: 'intent', leader: 'ask_menu', stable: false });
    expect(changed.outcome.checkpoint.previousIntentLeader).toBe('ask_menu');

    // No leader is never stable, and clears the previous one.
    const none = await drive({ input: text('...'), checkpoint: at('welcome'), classifier: scriptedClassifier(cls(null, {}, null)) });
    expect(none.outcome.events[0]).toMatchObject({ type: 'intent', leader: null, stable: false });
    const cleared = await drive({
      input: text('...'),
      checkpoint: at('welcome', {}, { previousIntentLeader: 'yes' }),
      classifier: scriptedClassifier(cls(null, {}, null)),
    });
    expect(cleared.outcome.checkpoint.previousIntentLeader).toBeNull();
  });

  it('MISSING_ENTITY asks the slot question and stores the pending intent; the next turn fills it', async () => {
    const first = await drive({
      input: text('a latte please'),
      checkpoint: at('welcome'),
      classifier: scriptedClassifier(cls('order_drink', { drink: 'latte' })),
    });
    expect(first.yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'response.text.delta', turnId: TURN, text: ASK_SIZE },
      { type: 'response.text.done', turnId: TURN, text: ASK_SIZE },
    ]);
    expect(first.outcome.checkpoint.currentNode).toBe('welcome');
    expect(first.outcome.checkpoint.pending).toEqual({ intent: 'order_drink', values: { drink: 'latte' }, asked: 1 });
    expect(first.outcome.checkpoint.variables).toEqual({});
    expect(first.outcome.events.find((e) => e.type === 'flow')).toMatchObject({ status: 'MISSING_ENTITY', missing: ['size'] });
    expect(types(first.outcome.events)).not.toContain('node_transition');

    const second = await drive({
      input: text('large'),
      checkpoint: first.outcome.checkpoint,
      classifier: scriptedClassifier(cls(null, { size: 'large' })),
    });
    expect(reply(second.yielded)).toBe("So that's 1 × large latte. Shall I place the order?");
    expect(second.outcome.checkpoint.currentNode).toBe('confirm');
    expect(second.outcome.checkpoint.pending).toBeNull();
    expect(second.outcome.checkpoint.variables).toEqual(ORDER);
    expect(second.outcome.checkpoint.nodeHistory).toEqual(['welcome']);
  });

  it('the FAQ answers when the flow is off-script: faq event, no transition, state and pending kept', async () => {
    const pending = { intent: 'order_drink', values: { drink: 'latte' }, asked: 1 };
    const faq = fakeFaq({ 'when are you open?': { id: 'opening_hours', answer: 'Open 7 to 7.', score: 12.5 } });
    // `yes` is no transition of welcome nor a global intent: off-script, even with a slot pending.
    const before = at('welcome', { keep: 1 }, { pending, nodeHistory: ['menu'] });
    const { yielded, outcome } = await drive({ input: text('when are you open?'), checkpoint: before, classifier: scriptedClassifier(cls('yes')), faq });
    expect(faq.calls).toEqual([{ text: 'when are you open?', language: 'en' }]);
    expect(yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'response.text.delta', turnId: TURN, text: 'Open 7 to 7.' },
      { type: 'response.text.done', turnId: TURN, text: 'Open 7 to 7.' },
    ]);
    expect(types(outcome.events)).toEqual(['intent', 'faq', 'flow', 'playlist']);
    expect(outcome.events[1]).toEqual({ type: 'faq', id: 'opening_hours', score: 12.5, atMs: expect.any(Number) });
    expect(outcome.events[3]).toMatchObject({ items: [{ kind: 'speech', source: 'faq:opening_hours' }] });
    expect(outcome.checkpoint.currentNode).toBe('welcome');
    expect(outcome.checkpoint.nodeHistory).toEqual(['menu']);
    expect(outcome.checkpoint.variables).toEqual({ keep: 1 });
    expect(outcome.checkpoint.pending).toEqual(pending);
  });

  it('the FAQ is not asked when the flow understood', async () => {
    const faq = fakeFaq();
    await drive({ input: text('the menu'), checkpoint: at('welcome'), classifier: scriptedClassifier(cls('ask_menu')), faq });
    expect(faq.calls).toEqual([]);
  });

  it('falls back when the FAQ has no answer: fallback event, not-understood message and the reprompt', async () => {
    const faq = fakeFaq();
    const before = at('confirm', ORDER, { nodeHistory: ['welcome'] });
    const { yielded, outcome } = await drive({ input: text('what a lovely day'), checkpoint: before, classifier: scriptedClassifier(cls(null)), faq });
    const expected = `${NOT_UNDERSTOOD} Should I place this order? Please say yes or no.`;
    expect(types(yielded)).toEqual(['turn.started', 'response.text.delta', 'response.text.done']);
    expect(reply(yielded)).toBe(expected);
    expect(faq.calls).toHaveLength(1);
    expect(types(outcome.events)).toEqual(['intent', 'fallback', 'flow', 'playlist']);
    expect(outcome.events[3]).toMatchObject({ items: [{ source: 'message:not_understood' }, { source: 'cache:confirm_reprompt' }] });
    expect(outcome.checkpoint.currentNode).toBe('confirm');
    expect(outcome.checkpoint.nodeHistory).toEqual(['welcome']);
    expect(outcome.checkpoint.variables).toEqual(ORDER);
    expect(outcome.checkpoint.messages.slice(-2)).toEqual([
      { role: 'user', content: 'what a lovely day' },
      { role: 'assistant', content: expected },
    ]);
  });

  it('a slot question nobody can answer is re-asked, then the turn falls back and the pending intent is dropped', async () => {
    const re = await drive({
      input: text('erm'),
      checkpoint: at('welcome', {}, { pending: { intent: 'order_drink', values: { drink: 'latte' }, asked: 1 } }),
      classifier: scriptedClassifier(cls(null)),
    });
    expect(reply(re.yielded)).toBe(`${NOT_UNDERSTOOD} ${ASK_SIZE}`);
    expect(re.outcome.checkpoint.pending).toEqual({ intent: 'order_drink', values: { drink: 'latte' }, asked: 2 });
    expect(types(re.outcome.events)).not.toContain('fallback');

    const gaveUp = await drive({
      input: text('erm'),
      checkpoint: at('welcome', {}, { pending: { intent: 'order_drink', values: { drink: 'latte' }, asked: MAX_SLOT_QUESTIONS } }),
      classifier: scriptedClassifier(cls(null)),
    });
    expect(types(gaveUp.outcome.events)).toContain('fallback');
    expect(reply(gaveUp.yielded)).toBe(`${NOT_UNDERSTOOD} You can order a coffee, a tea or a hot chocolate, or ask me about the menu.`);
    expect(gaveUp.outcome.checkpoint.pending).toBeNull();
  });

  it('bounds nodeHistory to NODE_HISTORY_LIMIT', async () => {
    // Real state names: a history entry the map does not know is dropped (lib/flow/reconcile.ts).
    const history = Array.from({ length: NODE_HISTORY_LIMIT }, (_, i) => (i === 0 ? 'goodbye' : i === 1 ? 'handoff' : 'menu'));
    const { outcome } = await drive({ input: text('menu'), checkpoint: at('welcome', {}, { nodeHistory: history }), classifier: scriptedClassifier(cls('ask_menu')) });
    expect(outcome.checkpoint.nodeHistory).toHaveLength(NODE_HISTORY_LIMIT);
    expect(outcome.checkpoint.nodeHistory[0]).toBe('handoff');
    expect(outcome.checkpoint.nodeHistory.at(-1)).toBe('welcome');
  });

  it('back and repeat walk the stored history', async () => {
    const back = await drive({ input: text('go back'), checkpoint: at('confirm', ORDER, { nodeHistory: ['welcome', 'menu'] }), classifier: scriptedClassifier(cls('back')) });
    expect(back.yielded).toContainEqual({ type: 'node.transition', turnId: TURN, from: 'confirm', to: 'menu' });
    expect(back.outcome.checkpoint.nodeHistory).toEqual(['welcome']);
    expect(reply(back.yielded)).toBe(MENU);

    const repeat = await drive({ input: text('pardon?'), checkpoint: at('confirm', ORDER, { nodeHistory: ['welcome'] }), classifier: scriptedClassifier(cls('repeat')) });
    expect(types(repeat.yielded)).not.toContain('node.transition');
    expect(reply(repeat.yielded)).toBe("So that's 1 × large latte. Shall I place the order?");
    expect(repeat.outcome.checkpoint.nodeHistory).toEqual(['welcome']);
  });

  it('records a tts line that reads a missing variable as template_missing and leaves it out', async () => {
    const { yielded, outcome } = await drive({ input: text('pardon?'), checkpoint: at('confirm', { drink: 'latte' }), classifier: scriptedClassifier(cls('repeat')) });
    expect(reply(yielded)).toBe('Shall I place the order?');
    expect(outcome.events).toContainEqual({
      type: 'template_missing',
      source: 'tts:confirm',
      missing: ['session.variables.quantity', 'session.variables.size'],
      atMs: expect.any(Number),
    });
  });
});

describe('runTurn: actions', () => {
  const placed = 'Your order number is A17, it will be ready in 5 minutes. Can I get you anything else?';

  it('yields the fillers before the action runs, then stores the result and says the playlist', async () => {
    const log: string[] = [];
    const actions = fakeActions({ ok: true, result: { id: 'A17', ready_in_minutes: 5 } }, log);
    const before = at('confirm', ORDER, { language: 'en' });
    const { yielded, cues, outcome } = await drive({ input: text('yes'), checkpoint: before, classifier: scriptedClassifier(cls('yes')), actions, log });
    expect(log.slice(0, 5)).toEqual([
      'yield:turn.started',
      'yield:cue.wait',
      'yield:cue.say',
      'action:place_order',
      'yield:node.transition',
    ]);
    // The player is told slow work starts, then the filler is said: both before the webhook runs.
    expect(cues.slice(0, 2)).toEqual([
      { type: 'cue.wait', on: 'action' },
      { type: 'cue.say', kind: 'filler', text: ONE_MOMENT, source: 'filler:one_moment' },
    ]);
    // The reply is said item by item, and the items make up the text.
    const speech = cues.slice(2).flatMap((c) => (c.type === 'cue.say' && c.kind === 'speech' ? [c.text] : []));
    expect(speech.join(' ')).toBe(placed);
    expect(yielded[1]).toEqual({ type: 'node.transition', turnId: TURN, from: 'confirm', to: 'place_order' });
    expect(reply(yielded)).toBe(placed);
    expect(actions.calls).toEqual([
      { name: 'place_order', context: { session: { variables: ORDER, language: 'en', node: 'place_order', id: SESSION } } },
    ]);
    expect(outcome.checkpoint.currentNode).toBe('place_order');
    expect(outcome.checkpoint.variables).toEqual({ ...ORDER, order: { id: 'A17', ready_in_minutes: 5 } });
    expect(outcome.checkpoint.nodeHistory).toEqual(['confirm']);
    expect(outcome.checkpoint.ended).toBe(false);
    // Fillers bridge the wait; they are not part of the conversation.
    expect(outcome.checkpoint.messages.at(-1)).toEqual({ role: 'assistant', content: placed });
    expect(types(outcome.events)).toEqual(['intent', 'action', 'flow', 'node_transition', 'playlist']);
    expect(outcome.events[1]).toEqual({ type: 'action', name: 'place_order', ok: true, ms: 42, attempts: 1, result: { id: 'A17', ready_in_minutes: 5 }, atMs: expect.any(Number) });
    expect(outcome.events[2]).toMatchObject({ type: 'flow', status: 'SUCCESS' });
  });

  it.each([
    ['action_failed', 'Sorry, something went wrong while I was doing that.'],
    ['action_timeout', 'Sorry, that took too long to answer.'],
  ] as const)('%s: EXECUTION_ERROR, the message, then the on_error state', async (kind, message) => {
    const log: string[] = [];
    const actions = fakeActions({ ok: false, kind, detail: 'kitchen on fire' }, log);
    const { yielded, outcome } = await drive({ input: text('yes'), checkpoint: at('confirm', ORDER), classifier: scriptedClassifier(cls('yes')), actions, log });
    expect(log.indexOf('yield:cue.wait')).toBeLessThan(log.indexOf('action:place_order'));
    expect(yielded).toContainEqual({ type: 'node.transition', turnId: TURN, from: 'confirm', to: 'order_failed' });
    expect(types(yielded)).toEqual(['turn.started', 'node.transition', 'response.text.delta', 'response.text.done']);
    expect(reply(yielded)).toBe(`${message} I'm sorry, the kitchen isn't taking orders right now. Would you like me to try again?`);
    expect(outcome.checkpoint.currentNode).toBe('order_failed');
    expect(outcome.checkpoint.variables).toEqual(ORDER);
    expect(outcome.events).toContainEqual({ type: 'action', name: 'place_order', ok: false, kind, detail: 'kitchen on fire', ms: 42, attempts: 2, atMs: expect.any(Number) });
    expect(outcome.events.find((e) => e.type === 'flow')).toMatchObject({ status: 'EXECUTION_ERROR' });
  });

  it('without on_error a failed action leaves the conversation where it was', async () => {
    const raw = rawSample();
    delete raw.states.place_order.on_error;
    const noRecovery = loadDialogueMap(raw);
    const before = at('confirm', ORDER, { nodeHistory: ['welcome'] });
    const { yielded, outcome } = await drive({
      map: noRecovery,
      input: text('yes'),
      checkpoint: before,
      classifier: scriptedClassifier(cls('yes')),
      actions: fakeActions({ ok: false, kind: 'action_failed', detail: '500' }),
    });
    expect(types(yielded)).toEqual(['turn.started', 'response.text.delta', 'response.text.done']);
    expect(reply(yielded)).toBe('Sorry, something went wrong while I was doing that.');
    expect(outcome.checkpoint.currentNode).toBe('confirm');
    expect(outcome.checkpoint.nodeHistory).toEqual(['welcome']);
    expect(types(outcome.events)).not.toContain('node_transition');
  });

  it('going back to the order state does not place the order again', async () => {
    const actions = fakeActions({ ok: true, result: { id: 'X', ready_in_minutes: 1 } });
    const variables = { ...ORDER, order: { id: 'A17', ready_in_minutes: 5 } };
    const { yielded, cues, outcome } = await drive({
      input: text('go back'),
      checkpoint: at('confirm', variables, { nodeHistory: ['welcome', 'confirm', 'place_order'] }),
      classifier: scriptedClassifier(cls('back')),
      actions,
    });
    expect(actions.calls).toEqual([]);
    expect(cues.filter((c) => c.type === 'cue.wait' || (c.type === 'cue.say' && c.kind === 'filler'))).toEqual([]);
    expect(reply(yielded)).toBe('Your order number is A17, it will be ready in 5 minutes. Can I get you anything else?');
    expect(outcome.checkpoint.currentNode).toBe('place_order');
    expect(outcome.checkpoint.nodeHistory).toEqual(['welcome', 'confirm']);
    expect(types(outcome.events)).not.toContain('action');
  });

  it('records nothing about actions on turns without one', async () => {
    const actions = fakeActions({ ok: true, result: {} });
    const { outcome } = await drive({ input: text('menu'), checkpoint: at('welcome'), classifier: scriptedClassifier(cls('ask_menu')), actions });
    expect(actions.calls).toEqual([]);
    expect(types(outcome.events)).not.toContain('action');
  });
});

describe('runTurn: ending and empty turns', () => {
  it('an END_CALL state yields session.ended last and returns ended: true', async () => {
    const { yielded, outcome } = await drive({ input: text('bye'), checkpoint: at('confirm', ORDER), classifier: scriptedClassifier(cls('goodbye')) });
    expect(yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'node.transition', turnId: TURN, from: 'confirm', to: 'goodbye' },
      { type: 'response.text.delta', turnId: TURN, text: 'Thanks for stopping by Parley Café. Goodbye!' },
      { type: 'response.text.done', turnId: TURN, text: 'Thanks for stopping by Parley Café. Goodbye!' },
      { type: 'session.ended', reason: 'end_call' },
    ]);
    expect(outcome.status).toBe('completed');
    expect(outcome.checkpoint.ended).toBe(true);
    expect(outcome.checkpoint.currentNode).toBe('goodbye');
    expect(outcome.events.at(-1)).toMatchObject({ type: 'session_end', reason: 'end_call' });
  });

  it.each(['', '   ', '\n\t '])('empty input %j yields nothing, records empty_input and does not classify', async (t) => {
    const classifier = scriptedClassifier();
    const faq = fakeFaq();
    const before = at('confirm', ORDER, { turnState: 'bot', previousIntentLeader: 'yes' });
    const { yielded, outcome } = await drive({ input: text(t), checkpoint: before, classifier, faq });
    expect(yielded).toEqual([]);
    expect(classifier.calls).toEqual([]);
    expect(faq.calls).toEqual([]);
    expect(outcome.status).toBe('completed');
    expect(outcome.events).toEqual([{ type: 'empty_input', atMs: expect.any(Number) }]);
    expect(outcome.checkpoint).toEqual({ ...before, turnState: 'user' });
  });

  it("a 'stop' input yields nothing and returns status 'stopped' with ended: true", async () => {
    const classifier = scriptedClassifier();
    const before = at('confirm', ORDER);
    const { yielded, outcome } = await drive({ input: { kind: 'stop', reason: 'client closed' }, checkpoint: before, classifier });
    expect(yielded).toEqual([]);
    expect(classifier.calls).toEqual([]);
    expect(outcome.status).toBe('stopped');
    expect(outcome.checkpoint).toEqual({ ...before, ended: true, turnState: 'user' });
    expect(outcome.events).toEqual([{ type: 'session_end', reason: 'client closed', atMs: expect.any(Number) }]);
  });

  it('resets turnState to user in the returned checkpoint', async () => {
    const { outcome } = await drive({ input: text('menu'), checkpoint: at('welcome', {}, { turnState: 'bot' }), classifier: scriptedClassifier(cls('ask_menu')) });
    expect(outcome.checkpoint.turnState).toBe('user');
  });
});

describe('runTurn: time and purity', () => {
  it('times the turn and its events with the injected monotonic clock', async () => {
    const clock = fakeClock(5);
    const { outcome } = await drive({ input: text('menu'), checkpoint: at('welcome'), classifier: scriptedClassifier(cls('ask_menu')), clock });
    expect(outcome.runMs).toBe((clock.reads - 1) * 5);
    let last = 0;
    for (const e of outcome.events) {
      expect(e.atMs).toBeGreaterThan(0);
      expect(e.atMs).toBeGreaterThanOrEqual(last);
      expect(e.atMs % 5).toBe(0);
      last = e.atMs;
    }
    expect(outcome.runMs).toBeGreaterThanOrEqual(last);
  });

  it('never mutates the checkpoint passed in (it is deep-frozen)', async () => {
    const pending = { intent: 'order_drink', values: { drink: 'latte' }, asked: 1 };
    const cases: [TurnInput, Classification | null, string][] = [
      [{ kind: 'start', metadata: { language: 'en' } }, null, 'welcome'],
      [text('large'), cls(null, { size: 'large' }), 'welcome'],
      [text('erm'), cls(null), 'welcome'],
      [text('wifi?'), cls('yes'), 'welcome'],
      [text('gibberish'), cls(null), 'confirm'],
      [text('yes'), cls('yes'), 'confirm'],
      [text('back'), cls('back'), 'confirm'],
      [text('bye'), cls('goodbye'), 'confirm'],
      [text(' '), null, 'confirm'],
      [{ kind: 'stop', reason: 'x' }, null, 'confirm'],
    ];
    for (const [input, c, node] of cases) {
      const before = at(node, { ...ORDER, nested: { list: [1, 2] } }, {
        nodeHistory: ['welcome'],
        toolState: { t: { n: 1 } },
        pending: node === 'welcome' ? pending : null,
        previousIntentLeader: 'order_drink',
      });
      const snapshot = structuredClone(before);
      deepFreeze(before);
      for (const ok of [true, false]) {
        const { outcome } = await drive({
          input,
          checkpoint: before,
          classifier: scriptedClassifier(...(c ? [c] : [])),
          faq: fakeFaq({ 'wifi?': { id: 'wifi', answer: 'Yes.', score: 3 } }),
          actions: fakeActions(ok ? { ok: true, result: { id: 'A1', ready_in_minutes: 2 } } : { ok: false, kind: 'action_failed', detail: 'x' }),
        });
        expect(before).toEqual(snapshot);
        expect(outcome.checkpoint).not.toBe(before);
      }
    }
  });

  it('a whole conversation walks the sample map from greeting to the placed order', async () => {
    const script: [TurnInput, Classification | null][] = [
      [{ kind: 'start' }, null],
      [text('I want a drink'), cls('order_drink')],
      [text('a small hot chocolate'), cls(null, { drink: 'hot chocolate', size: 'small' }, 'order_drink')],
      [text('yes'), cls('yes')],
      [text("no, that's all"), cls('no')],
    ];
    let checkpoint = emptyCheckpoint();
    const said: string[] = [];
    let ended = false;
    for (const [input, c] of script) {
      const { yielded, outcome } = await drive({
        input,
        checkpoint,
        classifier: scriptedClassifier(...(c ? [c] : [])),
        actions: fakeActions({ ok: true, result: { id: 'B2', ready_in_minutes: 4 } }),
      });
      checkpoint = outcome.checkpoint;
      const r = reply(yielded);
      if (r) said.push(r);
      ended = yielded.some((e) => e.type === 'session.ended');
    }
    expect(said).toEqual([
      WELCOME,
      'What would you like: a coffee, a tea or a hot chocolate? Which size: small, medium or large?',
      "So that's 1 × small hot chocolate. Shall I place the order?",
      'Your order number is B2, it will be ready in 4 minutes. Can I get you anything else?',
      'Thanks for stopping by Parley Café. Goodbye!',
    ]);
    expect(ended).toBe(true);
    expect(checkpoint.nodeHistory).toEqual(['welcome', 'confirm', 'place_order']);
    expect(checkpoint.currentNode).toBe('goodbye');
    expect(checkpoint.ended).toBe(true);
    expect(checkpoint.messages).toHaveLength(9);
  });
});
