import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { traceIdFor } from '../../lib/checkpoint/trace';
import { memoryLog } from '../../lib/observability/log';
import type { LocalRuntime } from '../../local/runtime';
import { sessionItems, startRuntime, storeOf, TestClient, textOf } from './harness';

describe('a conversation through the local gateway, the Lambda handlers and dynalite', () => {
  let runtime: LocalRuntime;
  const log = memoryLog();

  beforeAll(async () => {
    runtime = await startRuntime({ log });
  });
  afterAll(async () => {
    await runtime?.close();
  });


  it('hello, session.start, three turns, session.stop: streamed replies and one committed record per turn', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started, greeting } = await client.open();
    expect(started).toMatchObject({ resumed: false, node: 'welcome', traceId: traceIdFor(started.sessionId) });
    expect(greeting.map((e) => e.type)).toEqual([
      'turn.started',
      'node.transition',
      'response.text.delta',
      'response.text.done',
      'turn.completed',
    ]);
    expect(textOf(greeting)).toContain('welcome to Parley Café');

    // The size is missing: a clarifying question, no transition.
    const first = await client.say('I would like a latte please');
    expect(first.map((e) => e.type)).toEqual(['turn.started', 'response.text.delta', 'response.text.done', 'turn.completed']);
    expect(textOf(first)).toBe('Which size: small, medium or large?');

    const second = await client.say('hmm, not sure');
    expect(second.some((e) => e.type === 'node.transition')).toBe(false);
    expect(textOf(second)).toBe("Sorry, I didn't catch that. Which size: small, medium or large?");

    const third = await client.say('A big one');
    expect(third.find((e) => e.type === 'node.transition')).toMatchObject({ from: 'welcome', to: 'confirm' });
    expect(textOf(third)).toBe("So that's 1 × large latte. Shall I place the order?");
    const completed = third.at(-1);
    expect(completed).toMatchObject({ type: 'turn.completed', usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 } });
    if (completed?.type !== 'turn.completed') throw new Error('unreachable');
    expect(completed.metrics.totalMs).toBeGreaterThan(0);
    expect(completed.metrics.commitMs).toBeGreaterThan(0);

    client.send({ type: 'session.stop', reason: 'done for today' });
    await expect(client.next('session.stopped')).resolves.toMatchObject({ reason: 'done for today' });

    const records = await storeOf(runtime).listTurns(started.sessionId);
    expect(records.map((r) => [r.seq, r.input.kind, r.status, r.checkpoint.currentNode])).toEqual([
      [0, 'start', 'completed', 'welcome'],
      [1, 'text', 'completed', 'welcome'],
      [2, 'text', 'completed', 'welcome'],
      [3, 'text', 'completed', 'confirm'],
      [4, 'stop', 'stopped', 'confirm'],
    ]);
    // Slot filling lived in the checkpoint between the turns.
    expect(records[1]!.checkpoint.pending).toEqual({ intent: 'order_drink', values: { drink: 'latte' }, asked: 1 });
    const last = records.at(-1)!.checkpoint;
    expect(last).toMatchObject({
      version: 5,
      ended: true,
      language: 'en',
      pending: null,
      variables: { drink: 'latte', size: 'large', quantity: 1 },
      nodeHistory: ['welcome'],
    });
    expect(last.messages.map((m) => m.role)).toEqual(['assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    // The transcript a resumed client is shown: every line the user saw, in order.
    expect(last.transcript.map((l) => l.role)).toEqual(['assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    expect(last.transcript.filter((l) => l.role === 'user').map((l) => l.text)).toEqual(records.slice(1, 4).map((r) => (r.input.kind === 'text' ? r.input.text : '')));
    expect(last.transcript.at(-1)!.text).toBe(last.messages.at(-1)!.content);
    // Every turn is remembered for idempotency, under the seq of its record.
    expect(last.recentTurns).toEqual(records.map((r) => ({ turnId: r.turnId, seq: r.seq })));
    expect(records[1]!.outputs.map((e) => e.type)).toEqual(['turn.started', 'response.text.done']);
    expect(records[1]!.events.map((e) => e.type)).toEqual(['intent', 'flow', 'playlist']);
    expect(records[1]!.events.find((e) => e.type === 'flow')).toMatchObject({ status: 'MISSING_ENTITY', missing: ['size'] });

    // Every log line about the session carries its trace id.
    const sessionLines = log.lines.filter((l) => l.sessionId === started.sessionId);
    expect(sessionLines.filter((l) => l.message === 'turn committed')).toHaveLength(5);
    expect(sessionLines.every((l) => l.traceId === started.traceId)).toBe(true);
    client.close();
  });

  it('ends the session on END_CALL: session.ended, later input is refused, a new session can start', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    await client.say('a small tea please');
    const endTurn = crypto.randomUUID();
    const final = await client.say('goodbye', endTurn);
    expect(final.map((e) => e.type)).toEqual([
      'turn.started',
      'node.transition',
      'response.text.delta',
      'response.text.done',
      'session.ended',
      'turn.completed',
    ]);
    expect(final.find((e) => e.type === 'session.ended')).toMatchObject({ reason: 'end_call' });

    // A retry of the turn that ended the session gets that turn's outcome, not an error.
    const retried = await client.say('goodbye', endTurn);
    expect(retried.map((e) => e.type)).toEqual(['turn.started', 'node.transition', 'response.text.done', 'session.ended', 'turn.completed']);

    const before = await sessionItems(runtime);
    const refused = await client.say('one more thing');
    expect(refused).toEqual([expect.objectContaining({ type: 'error', code: 'session.ended' })]);
    expect(await sessionItems(runtime)).toEqual(before);

    client.send({ type: 'session.start' });
    const next = await client.next('session.started');
    expect(next.sessionId).not.toBe(started.sessionId);
    client.close();
  });

  it('re-sends the stored outcome for a repeated turnId instead of running the turn again', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const turnId = crypto.randomUUID();
    const first = await client.say('coffee', turnId);
    const again = await client.say('coffee', turnId);
    const withoutDeltas = first.filter((e) => e.type !== 'response.text.delta' && e.type !== 'turn.completed');
    expect(again.slice(0, -1)).toEqual(withoutDeltas);
    expect(again.at(-1)).toMatchObject({ type: 'turn.completed', turnId });
    const records = await storeOf(runtime).listTurns(started.sessionId);
    expect(records).toHaveLength(2);
    client.close();
  });

  it('sends a scripted turn in two messages: the reply as one burst, turn.completed after the commit', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    await client.open();
    const messages: unknown[] = [];
    client.socket.on('message', (data) => messages.push(JSON.parse(String(data))));
    const events = await client.say('cocoa');
    expect(messages).toHaveLength(2);
    expect(messages[0]).toEqual(events.slice(0, -1));
    expect(messages[1]).toEqual(events.at(-1));
    client.close();
  });

  it('two inputs racing on one session never fork the checkpoint chain', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const ids = [crypto.randomUUID(), crypto.randomUUID()];
    // Sent back to back: the gateway invokes both handlers at once, as API Gateway would.
    client.send({ type: 'input.text', turnId: ids[0]!, text: 'coffee' });
    client.send({ type: 'input.text', turnId: ids[1]!, text: 'tea' });
    const outcome = new Map<string, string>();
    while (outcome.size < 2) {
      const event = await client.take();
      if ((event.type === 'turn.completed' || event.type === 'error') && event.turnId) outcome.set(event.turnId, event.type === 'error' ? event.code : 'committed');
    }
    const records = await storeOf(runtime).listTurns(started.sessionId);
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i));
    const committed = ids.filter((id) => outcome.get(id) === 'committed');
    expect(records.slice(1).map((r) => r.turnId).sort()).toEqual([...committed].sort());
    for (const id of ids) expect(['committed', 'turn.conflict']).toContain(outcome.get(id));
    client.close();
  });
});
