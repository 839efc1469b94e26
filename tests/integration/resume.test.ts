import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../../local/runtime';
import { sessionItems, startRuntime, TestClient, textOf } from './harness';

describe('resuming a session on a new connection', () => {
  let runtime: LocalRuntime;
  beforeAll(async () => {
    runtime = await startRuntime();
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it('continues from the stored node and variables with sessionId + resumeToken', async () => {
    const first = await TestClient.connect(runtime.wsUrl);
    const { started } = await first.open();
    // Slot filling starts on the first connection (the size is missing) ...
    const asked = (await first.say('I want a hot chocolate')).at(-1) as { turnId: string };
    first.close();
    await first.closed;

    const second = await TestClient.connect(runtime.wsUrl);
    // The client has that turn's outcome, so it says so and nothing is re-sent.
    const { started: resumed, greeting } = await second.open({
      type: 'session.start',
      sessionId: started.sessionId,
      resumeToken: started.resumeToken,
      lastTurnId: asked.turnId,
    });
    expect(resumed).toMatchObject({ sessionId: started.sessionId, resumed: true, node: 'welcome', traceId: started.traceId });
    expect(greeting).toEqual([]);

    // ... and the answer on the second connection completes it from the stored checkpoint.
    const turn = await second.say('medium');
    expect(turn.find((e) => e.type === 'node.transition')).toMatchObject({ from: 'welcome', to: 'confirm' });
    expect(textOf(turn)).toBe("So that's 1 × medium hot chocolate. Shall I place the order?");
    second.close();
  });

  it('sends the conversation so far (session.history) to a client that asks for it, and nothing else', async () => {
    const first = await TestClient.connect(runtime.wsUrl);
    const { started, greeting } = await first.open();
    const asked = await first.say('I want a hot chocolate');
    first.close();
    await first.closed;

    const second = await TestClient.connect(runtime.wsUrl);
    await second.open({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken, history: true });
    const history = await second.next('session.history');
    expect(history).toEqual({
      type: 'session.history',
      messages: [
        { role: 'assistant', text: textOf(greeting) },
        { role: 'user', text: 'I want a hot chocolate' },
        { role: 'assistant', text: textOf(asked) },
      ],
      earlier: false,
    });
    // The history stands in for the re-sent outcome of the last turn: the next event is the next turn's.
    const turn = await second.say('small');
    expect(turn[0]).toMatchObject({ type: 'turn.started' });
    expect(textOf(turn)).toBe("So that's 1 × small hot chocolate. Shall I place the order?");
    second.close();
  });

  it('refuses a wrong resume token and an unknown session, changing nothing', async () => {
    const owner = await TestClient.connect(runtime.wsUrl);
    const { started } = await owner.open();
    owner.close();
    const before = await sessionItems(runtime);

    const intruder = await TestClient.connect(runtime.wsUrl);
    intruder.send({ type: 'hello', version: '1' });
    await intruder.next('hello.ack');
    intruder.send({ type: 'session.start', sessionId: started.sessionId, resumeToken: 'x'.repeat(32) });
    await expect(intruder.next('error')).resolves.toMatchObject({ code: 'auth.invalid' });
    // An unknown id gets the same answer as someone else's session: nothing tells whether a session exists.
    intruder.send({ type: 'session.start', sessionId: crypto.randomUUID(), resumeToken: started.resumeToken });
    await expect(intruder.next('error')).resolves.toMatchObject({ code: 'auth.invalid' });
    // Refused resumes leave the connection without a session.
    intruder.send({ type: 'input.text', turnId: crypto.randomUUID(), text: 'coffee' });
    await expect(intruder.next('error')).resolves.toMatchObject({ code: 'protocol.order' });

    expect(await sessionItems(runtime)).toEqual(before);
    intruder.close();
  });

  it('ignores a sessionId in input.text that names another session: the turn runs on the bound one', async () => {
    const victim = await TestClient.connect(runtime.wsUrl);
    const { started: theirs } = await victim.open();
    victim.close();
    const before = (await sessionItems(runtime)).filter((i) => i.pk?.S === `SESS#${theirs.sessionId}`);

    const client = await TestClient.connect(runtime.wsUrl);
    const { started: mine } = await client.open();
    client.sessionId = theirs.sessionId;
    const turn = await client.say('I want a hot chocolate');
    expect(turn.at(-1)).toMatchObject({ type: 'turn.completed' });
    expect((await sessionItems(runtime)).filter((i) => i.pk?.S === `SESS#${theirs.sessionId}`)).toEqual(before);
    const mineNow = (await sessionItems(runtime)).filter((i) => i.pk?.S === `SESS#${mine.sessionId}` && i.sk?.S?.startsWith('TURN#'));
    expect(mineNow).toHaveLength(2);
    client.close();
  });

  it('refuses to resume a session that was stopped', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    client.send({ type: 'session.stop' });
    await client.next('session.stopped');
    client.send({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken });
    await expect(client.next('error')).resolves.toMatchObject({ code: 'session.ended' });
    client.close();
  });
});
