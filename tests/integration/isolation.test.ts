import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerEvent } from '../../lib/protocol/v1';
import type { LocalRuntime } from '../../local/runtime';
import { recordFault } from '../support/fault-table';
import { sessionItems, startRuntime, TestClient } from './harness';

const KEY_A = 'alice-key-0123456789';
const KEY_B = 'bob-key-9876543210';

/**
 * A connection can never read or write another session. Bob (his own API key) tries everything he
 * can name: Alice's session id with every token he can get, guessed ids, her session id as the
 * input hint, her turn ids in response.cancel. Every attempt is refused with auth.invalid or goes
 * to his own session, Alice's items in DynamoDB stay byte for byte what they were, and no answer
 * tells an unknown session from a foreign one.
 */
describe('session isolation between principals', () => {
  let runtime: LocalRuntime;
  let alice: TestClient;
  let aliceSession: { sessionId: string; resumeToken: string };
  let aliceTurnIds: string[];
  let bob: TestClient;
  let bobSession: { sessionId: string; resumeToken: string };

  /** Alice's items only. */
  const aliceItems = async () => (await sessionItems(runtime)).filter((i) => i.pk?.S === `SESS#${aliceSession.sessionId}`);
  const bobItems = async () => (await sessionItems(runtime)).filter((i) => i.pk?.S === `SESS#${bobSession.sessionId}`);

  beforeAll(async () => {
    runtime = await startRuntime({ apiKeys: [KEY_A, KEY_B] });
    alice = await TestClient.connect(`${runtime.wsUrl}/?apiKey=${KEY_A}`);
    const a = await alice.open();
    aliceSession = { sessionId: a.started.sessionId, resumeToken: a.started.resumeToken };
    const turn = randomUUID();
    const reply = await alice.say('what time do you open?', turn);
    expect(reply.at(-1)?.type).toBe('turn.completed');
    aliceTurnIds = [turn];
    bob = await TestClient.connect(`${runtime.wsUrl}/?apiKey=${KEY_B}`);
    const b = await bob.open();
    bobSession = { sessionId: b.started.sessionId, resumeToken: b.started.resumeToken };
  });
  afterAll(async () => {
    alice?.close();
    bob?.close();
    await runtime?.close();
  });

  /** A fresh connection of Bob's that has said hello, ready for session.start. */
  async function bobReady(): Promise<TestClient> {
    const client = await TestClient.connect(`${runtime.wsUrl}/?apiKey=${KEY_B}`);
    client.send({ type: 'hello', version: '1' });
    await client.next('hello.ack');
    return client;
  }

  /** session.start with this id and token: the one event it answers. */
  async function tryResume(client: TestClient, sessionId: string, resumeToken: string): Promise<ServerEvent> {
    client.send({ type: 'session.start', sessionId, resumeToken });
    return client.take(5000);
  }

  it('refuses every resume of a foreign or unknown session with one identical auth.invalid, and writes nothing', async () => {
    const before = await sessionItems(runtime);
    const client = await bobReady();
    const attempts: Array<[string, string, string]> = [
      ["Alice's session, Alice's real token (valid token, wrong key)", aliceSession.sessionId, aliceSession.resumeToken],
      ["Alice's session, Bob's own valid token (a token of another session)", aliceSession.sessionId, bobSession.resumeToken],
      ["Alice's session, a random token", aliceSession.sessionId, randomBytes(32).toString('base64url')],
      ["Alice's session, a token one character off", aliceSession.sessionId, flipLast(aliceSession.resumeToken)],
      ["a guessed UUID, Alice's token", randomUUID(), aliceSession.resumeToken],
      ["a guessed UUID, Bob's token", randomUUID(), bobSession.resumeToken],
      ['a guessed UUID, a random token', randomUUID(), randomBytes(32).toString('base64url')],
      ['the nil UUID, a random token', '00000000-0000-0000-0000-000000000000', randomBytes(24).toString('base64url')],
      ["Bob's own session, Alice's token", bobSession.sessionId, aliceSession.resumeToken],
    ];
    const answers: ServerEvent[] = [];
    for (const [what, sessionId, token] of attempts) {
      const answer = await tryResume(client, sessionId, token);
      expect(answer, what).toMatchObject({ type: 'error', code: 'auth.invalid' });
      answers.push(answer);
    }
    // Unknown and foreign look the same: same code, same message, and no id echoed back.
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(JSON.stringify(answers)).not.toContain(aliceSession.sessionId);
    // The connection is still Bob's to use, and nothing was stored by any attempt.
    expect(await sessionItems(runtime)).toEqual(before);
    recordFault({
      area: 'isolation',
      fault: `resume of a foreign or unknown session (${attempts.length} combinations of session id and token)`,
      outcome: `\`${answers[0]?.type === 'error' ? answers[0].code : answers[0]?.type}\` for every one, ${new Set(answers.map((a) => JSON.stringify(a))).size === 1 ? 'all identical' : 'not all identical'}; nothing stored`,
    });
    client.close();
  });

  it("Alice's token does not work for Alice's session on a connection without her key, not even in hello", async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    client.send({ type: 'hello', version: '1', auth: { apiKey: KEY_B } });
    await client.next('hello.ack');
    expect(await tryResume(client, aliceSession.sessionId, aliceSession.resumeToken)).toMatchObject({ type: 'error', code: 'auth.invalid' });
    client.close();
    recordFault({ area: 'isolation', fault: "a session's own resume token, on a connection authenticated with another principal's key", outcome: '`auth.invalid`' });
  });

  it("input.text naming Alice's session goes to Bob's own session; Alice's items do not change", async () => {
    const aliceBefore = await aliceItems();
    const bobBefore = await bobItems();
    const turnId = randomUUID();
    bob.send({ type: 'input.text', turnId, text: 'what time do you open?', sessionId: aliceSession.sessionId });
    const events: ServerEvent[] = [];
    for (;;) {
      const event = await bob.take();
      events.push(event);
      if (event.type === 'turn.completed' || event.type === 'error') break;
    }
    expect(events.at(-1)).toMatchObject({ type: 'turn.completed', turnId });
    expect(JSON.stringify(events)).not.toContain(aliceSession.sessionId);
    expect(await aliceItems()).toEqual(aliceBefore);
    // The turn was Bob's: one more record in his session, holding this input.
    const bobAfter = await bobItems();
    const newRecords = bobAfter.filter((i) => i.sk?.S?.startsWith('TURN#') && !bobBefore.some((b) => b.sk?.S === i.sk?.S));
    expect(newRecords).toHaveLength(1);
    recordFault({ area: 'isolation', fault: "input.text naming another principal's session as its hint", outcome: `runs in the sender's own session (${newRecords.length} record there); the other session unchanged` });
  });

  it("input.text resending Alice's turn id with her session as the hint does not replay her stored answer", async () => {
    const aliceBefore = await aliceItems();
    const turnId = aliceTurnIds[0]!;
    bob.send({ type: 'input.text', turnId, text: 'hello there', sessionId: aliceSession.sessionId });
    const events: ServerEvent[] = [];
    for (;;) {
      const event = await bob.take();
      events.push(event);
      if (event.type === 'turn.completed' || event.type === 'error') break;
    }
    // It ran as a new turn of Bob's session (his history has no such turn id), never as Alice's retry.
    expect(events.some((e) => e.type === 'turn.started' || e.type === 'response.text.done')).toBe(true);
    expect(JSON.stringify(events)).not.toContain(aliceSession.sessionId);
    expect(await aliceItems()).toEqual(aliceBefore);
    recordFault({ area: 'isolation', fault: "input.text resending another session's turn id with that session as its hint", outcome: `runs as a new turn of the sender's own session (\`${events.at(-1)?.type}\`), never a replay of the other's answer` });
  });

  it("response.cancel of Alice's turn id (and of a guessed one) changes nothing of Alice's", async () => {
    const aliceBefore = await aliceItems();
    for (const turnId of [...aliceTurnIds, randomUUID()]) {
      bob.send({ type: 'response.cancel', turnId, playedMs: 10 });
    }
    // A turn of Bob's own afterwards still runs: the cancels at most touched his own session.
    const reply = await bob.say('what time do you open?');
    expect(reply.at(-1)?.type).toBe('turn.completed');
    expect(await aliceItems()).toEqual(aliceBefore);
    recordFault({ area: 'isolation', fault: "response.cancel of another session's turn ids (and of a guessed one)", outcome: "nothing of the other session changes; the sender's next turn runs" });
  });

  it("session.stop on Bob's connection stops Bob's session only; Alice's stays resumable by her", async () => {
    const aliceBefore = await aliceItems();
    bob.send({ type: 'session.stop' });
    await bob.until('session.stopped');
    expect(await aliceItems()).toEqual(aliceBefore);
    // Alice, on a new connection with her key and her token, resumes as before.
    alice.close();
    const again = await TestClient.connect(`${runtime.wsUrl}/?apiKey=${KEY_A}`);
    const { started } = await again.open({ type: 'session.start', sessionId: aliceSession.sessionId, resumeToken: aliceSession.resumeToken });
    expect(started).toMatchObject({ sessionId: aliceSession.sessionId, resumed: true });
    again.close();
  });
});

/** The token with its last character changed (still base64url). */
function flipLast(token: string): string {
  const last = token.at(-1)!;
  return token.slice(0, -1) + (last === 'A' ? 'B' : 'A');
}
