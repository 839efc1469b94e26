import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { TurnInput } from '../../lib/checkpoint/record';
import { emptyCheckpoint, NODE_HISTORY_LIMIT, type Checkpoint } from '../../lib/checkpoint/schema';
import { keywordClassifier } from '../../lib/flow/classifier';
import { loadDialogueMap } from '../../lib/flow/map';
import type { ServerEvent } from '../../lib/protocol/v1';
import type { Clock } from '../../lib/runner/ports';
import { runTurn, type TurnOutcome } from '../../lib/runner/run-turn';

const map = loadDialogueMap(JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8')));
const classifier = keywordClassifier(map);
const TURN = '3f2b8c1e-7a4d-4e2b-9c1f-5d6e7f8a9b0c';
const GREETING = 'Hi, welcome to Parley Café! Would you like a coffee, a tea or a hot chocolate?';

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

async function drive(input: TurnInput, checkpoint: Checkpoint, clock: Clock = fakeClock()) {
  const gen = runTurn({ turnId: TURN, input, checkpoint, map, classifier, clock });
  const yielded: ServerEvent[] = [];
  for (;;) {
    const next = await gen.next();
    if (next.done) return { yielded, outcome: next.value as TurnOutcome };
    yielded.push(next.value);
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

describe('runTurn', () => {
  it("a 'start' turn greets from the initial state", async () => {
    const { yielded, outcome } = await drive({ kind: 'start' }, emptyCheckpoint());
    expect(yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'node.transition', turnId: TURN, from: null, to: 'welcome' },
      { type: 'response.text.delta', turnId: TURN, text: GREETING },
      { type: 'response.text.done', turnId: TURN, text: GREETING },
    ]);
    expect(outcome.status).toBe('completed');
    expect(outcome.checkpoint).toEqual({
      ...emptyCheckpoint(),
      currentNode: 'welcome',
      nodeHistory: [],
      messages: [{ role: 'assistant', content: GREETING }],
      turnState: 'user',
      ended: false,
    });
    expect(outcome.events.map((e) => e.type)).toEqual(['node_transition']);
    expect(outcome.events[0]).toMatchObject({ type: 'node_transition', from: null, to: 'welcome' });
    expect(outcome.usage).toEqual({ llm: {}, ttsCharacters: 0, sttSeconds: 0 });
  });

  it('times the turn with the injected monotonic clock', async () => {
    const clock = fakeClock(5);
    const { outcome } = await drive({ kind: 'start' }, emptyCheckpoint(), clock);
    // runMs is the distance from the first read to the last one.
    expect(outcome.runMs).toBe((clock.reads - 1) * 5);
    expect(outcome.runMs).toBeGreaterThan(0);
    for (const e of outcome.events) {
      expect(e.atMs).toBeGreaterThan(0);
      expect(e.atMs).toBeLessThanOrEqual(outcome.runMs);
      expect(e.atMs % 5).toBe(0);
    }
  });

  it("a 'text' turn records the user and assistant messages, intent, transition, history and variables", async () => {
    const before = at('welcome', {}, { nodeHistory: ['x'] });
    const { yielded, outcome } = await drive({ kind: 'text', text: 'A cappuccino, please' }, before);
    const reply = 'Great, a coffee. Small, medium or large?';
    expect(yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'node.transition', turnId: TURN, from: 'welcome', to: 'size' },
      { type: 'response.text.delta', turnId: TURN, text: reply },
      { type: 'response.text.done', turnId: TURN, text: reply },
    ]);
    expect(outcome.status).toBe('completed');
    expect(outcome.checkpoint.messages).toEqual([
      { role: 'assistant', content: 'earlier' },
      { role: 'user', content: 'A cappuccino, please' },
      { role: 'assistant', content: reply },
    ]);
    expect(outcome.checkpoint.currentNode).toBe('size');
    expect(outcome.checkpoint.nodeHistory).toEqual(['x', 'welcome']);
    expect(outcome.checkpoint.variables).toEqual({ drink: 'coffee' });
    expect(outcome.checkpoint.previousIntentLeader).toBe('coffee');
    expect(outcome.checkpoint.ended).toBe(false);
    expect(outcome.checkpoint.turnState).toBe('user');
    expect(outcome.events).toEqual([
      { type: 'intent', intent: 'coffee', score: 1, atMs: expect.any(Number) },
      { type: 'node_transition', from: 'welcome', to: 'size', atMs: expect.any(Number) },
    ]);
    expect(outcome.events[0]!.atMs).toBeLessThanOrEqual(outcome.events[1]!.atMs);
  });

  it('an unmatched text turn stays at the node, yields no transition and reprompts', async () => {
    const before = at('size', { drink: 'tea' });
    const { yielded, outcome } = await drive({ kind: 'text', text: 'what a lovely day' }, before);
    const reply = "Sorry, I didn't catch that. What size would you like: small, medium or large?";
    expect(yielded.map((e) => e.type)).toEqual(['turn.started', 'response.text.delta', 'response.text.done']);
    expect(yielded.at(-1)).toEqual({ type: 'response.text.done', turnId: TURN, text: reply });
    expect(outcome.checkpoint.currentNode).toBe('size');
    expect(outcome.checkpoint.nodeHistory).toEqual([]);
    expect(outcome.checkpoint.variables).toEqual({ drink: 'tea' });
    expect(outcome.checkpoint.previousIntentLeader).toBeNull();
    expect(outcome.events).toEqual([{ type: 'intent', intent: null, score: 0, atMs: expect.any(Number) }]);
    expect(outcome.checkpoint.messages.slice(-2)).toEqual([
      { role: 'user', content: 'what a lovely day' },
      { role: 'assistant', content: reply },
    ]);
  });

  it('bounds nodeHistory to NODE_HISTORY_LIMIT', async () => {
    const history = Array.from({ length: NODE_HISTORY_LIMIT }, (_, i) => `n${i}`);
    const { outcome } = await drive({ kind: 'text', text: 'coffee' }, at('welcome', {}, { nodeHistory: history }));
    expect(outcome.checkpoint.nodeHistory).toHaveLength(NODE_HISTORY_LIMIT);
    expect(outcome.checkpoint.nodeHistory.at(-1)).toBe('welcome');
    expect(outcome.checkpoint.nodeHistory[0]).toBe('n1');
  });

  it('an END_CALL turn yields session.ended last and returns ended: true', async () => {
    const before = at('confirm', { drink: 'tea', size: 'small' });
    const { yielded, outcome } = await drive({ kind: 'text', text: 'yes' }, before);
    const reply = 'Done! Your small tea will be ready in five minutes. Enjoy, and goodbye!';
    expect(yielded).toEqual([
      { type: 'turn.started', turnId: TURN },
      { type: 'node.transition', turnId: TURN, from: 'confirm', to: 'placed' },
      { type: 'response.text.delta', turnId: TURN, text: reply },
      { type: 'response.text.done', turnId: TURN, text: reply },
      { type: 'session.ended', reason: 'end_call' },
    ]);
    expect(outcome.status).toBe('completed');
    expect(outcome.checkpoint.ended).toBe(true);
    expect(outcome.checkpoint.currentNode).toBe('placed');
    expect(outcome.events.map((e) => e.type)).toEqual(['intent', 'node_transition', 'session_end']);
    expect(outcome.events.at(-1)).toMatchObject({ type: 'session_end', reason: 'end_call' });
  });

  it('a global goodbye ends the call from any state', async () => {
    const { yielded, outcome } = await drive({ kind: 'text', text: "bye, that's all" }, at('size', { drink: 'tea' }));
    expect(yielded.at(-1)).toEqual({ type: 'session.ended', reason: 'end_call' });
    expect(outcome.checkpoint.currentNode).toBe('goodbye');
    expect(outcome.checkpoint.ended).toBe(true);
  });

  it("a 'stop' input yields nothing and returns status 'stopped' with ended: true", async () => {
    const before = at('size', { drink: 'tea' });
    const { yielded, outcome } = await drive({ kind: 'stop', reason: 'client closed' }, before);
    expect(yielded).toEqual([]);
    expect(outcome.status).toBe('stopped');
    expect(outcome.checkpoint).toEqual({ ...before, ended: true, turnState: 'user' });
    expect(outcome.events).toEqual([{ type: 'session_end', reason: 'client closed', atMs: expect.any(Number) }]);
  });

  it('resets turnState to user in the returned checkpoint', async () => {
    const { outcome } = await drive({ kind: 'text', text: 'tea' }, at('welcome', {}, { turnState: 'bot' }));
    expect(outcome.checkpoint.turnState).toBe('user');
  });

  it('does not mutate the checkpoint passed in', async () => {
    for (const input of [
      { kind: 'start' },
      { kind: 'text', text: 'a large one' },
      { kind: 'text', text: 'goodbye' },
      { kind: 'text', text: 'gibberish' },
      { kind: 'stop', reason: 'x' },
    ] satisfies TurnInput[]) {
      const before = at('size', { drink: 'tea' }, { nodeHistory: ['welcome'], toolState: { t: { n: 1 } } });
      const snapshot = structuredClone(before);
      deepFreeze(before);
      const { outcome } = await drive(input, before);
      expect(before).toEqual(snapshot);
      expect(outcome.checkpoint).not.toBe(before);
    }
  });

  it('a full conversation walks the sample map from greeting to order', async () => {
    let checkpoint = emptyCheckpoint();
    const said: string[] = [];
    for (const input of [
      { kind: 'start' },
      { kind: 'text', text: 'hot chocolate' },
      { kind: 'text', text: 'medium' },
      { kind: 'text', text: 'yes' },
    ] satisfies TurnInput[]) {
      const { yielded, outcome } = await drive(input, checkpoint);
      checkpoint = outcome.checkpoint;
      for (const e of yielded) if (e.type === 'response.text.done') said.push(e.text);
    }
    expect(said.at(-1)).toBe('Done! Your medium hot chocolate will be ready in five minutes. Enjoy, and goodbye!');
    expect(checkpoint.nodeHistory).toEqual(['welcome', 'size', 'confirm']);
    expect(checkpoint.currentNode).toBe('placed');
    expect(checkpoint.ended).toBe(true);
    expect(checkpoint.messages).toHaveLength(7);
  });
});
