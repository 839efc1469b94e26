import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import type { TurnRecord } from '../../lib/checkpoint/record';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import type { ServerEvent } from '../../lib/protocol/v1';
import type { LocalRuntime } from '../../local/runtime';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { recordFault } from '../support/fault-table';
import { startRuntime, storeOf, TestClient, textOf } from './harness';

/** Waits until every turn id has its turn.completed (or error); returns each turn's events. */
async function settle(client: TestClient, turnIds: readonly string[], timeoutMs = 30_000): Promise<Map<string, ServerEvent[]>> {
  const byTurn = new Map<string, ServerEvent[]>(turnIds.map((id) => [id, []]));
  const done = new Set<string>();
  while (done.size < turnIds.length) {
    const event = await client.take(timeoutMs);
    const turnId = 'turnId' in event ? event.turnId : undefined;
    if (!turnId || !byTurn.has(turnId)) continue;
    byTurn.get(turnId)!.push(event);
    if (event.type === 'turn.completed' || event.type === 'error') done.add(turnId);
  }
  return byTurn;
}

const OFF_SCRIPT = 'where do your coffee beans come from?';
const SCRIPTED = ['I would like a large latte', 'what time do you open?', 'a small tea please', 'menu'];

/**
 * Racing turns, retries and resumes over the real gateway and dynalite: every message is its own
 * handler invocation, run concurrently as API Gateway runs them, and the LLM is a local server
 * speaking the OpenAI stream format, slow enough for turns to overlap.
 */
describe('racing turns', () => {
  let openai: FakeOpenAI;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;

  beforeAll(async () => {
    openai = await startFakeOpenAI({ fallback: { text: 'We roast our beans on Tuesdays. They come from a small farm in Colombia.', chunkChars: 6, tokensPerSecond: 60 } });
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '10000' });
    // The product's lease timings: a test machine under load must not make a live turn look dead.
    runtime = await startRuntime({ llm: llmPortsFactory(env)('test-key') });
    store = storeOf(runtime);
  });
  afterEach(() => openai.reset());
  afterAll(async () => {
    await runtime?.close();
    await openai?.close();
  });

  /** What DynamoDB must show for any session, whatever raced. */
  function expectConsistentChain(records: TurnRecord[], sent: Map<string, string>): void {
    // No fork and no gap: one record per seq, 0..n.
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i));
    // No turn twice.
    const turnIds = records.map((r) => r.turnId);
    expect(new Set(turnIds).size).toBe(turnIds.length);
    // Every user message exactly once, under its own turn id.
    for (const [turnId, text] of sent) {
      const mine = records.filter((r) => r.turnId === turnId);
      expect(mine, `turn ${turnId}`).toHaveLength(1);
      expect(mine[0]!.input).toEqual({ kind: 'text', text });
    }
    const texts = records.flatMap((r) => (r.input.kind === 'text' ? [r.turnId] : []));
    expect(texts.sort()).toEqual([...sent.keys()].sort());
    // Each checkpoint follows from the one before: the user messages of the chain appear in commit order.
    for (const r of records.slice(1)) expect(r.checkpoint.recentTurns.at(-1)).toEqual({ turnId: r.turnId, seq: r.seq });
  }

  it('stress: 50 sessions, each with bursts of racing inputs; DynamoDB shows every message once, no duplicate turn, no fork', async () => {
    const sessions = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const client = await TestClient.connect(runtime.wsUrl);
        const { started } = await client.open();
        const sent = new Map<string, string>();
        for (let burst = 0; burst < 2; burst++) {
          // Three inputs at once: an LLM turn (slow) and two scripted ones, in a different order per session.
          const texts = [OFF_SCRIPT, SCRIPTED[(i + burst) % SCRIPTED.length]!, SCRIPTED[(i + burst + 1) % SCRIPTED.length]!];
          if ((i + burst) % 2) texts.reverse();
          const ids = texts.map(() => crypto.randomUUID());
          ids.forEach((turnId, k) => {
            sent.set(turnId, texts[k]!);
            client.send({ type: 'input.text', turnId, text: texts[k]!, sessionId: started.sessionId });
          });
          const outcome = await settle(client, ids);
          // Every input is answered with turn.completed: superseded ones too, none lost to an error.
          for (const id of ids) expect(outcome.get(id)!.at(-1)?.type, `turn ${id}: ${JSON.stringify(outcome.get(id)!.at(-1))}`).toBe("turn.completed");
        }
        client.close();
        return { sessionId: started.sessionId, sent };
      }),
    );
    let superseded = 0;
    for (const { sessionId, sent } of sessions) {
      const records = await store.listTurns(sessionId);
      expectConsistentChain(records, sent);
      superseded += records.filter((r) => r.events.some((e) => e.type === 'cancelled' && e.reason === 'superseded')).length;
    }
    // The bursts really raced: newer inputs stopped or overtook older ones.
    expect(superseded).toBeGreaterThan(0);
    recordFault({
      area: 'concurrency',
      fault: '50 sessions, each with bursts of 3 racing inputs (an LLM turn and two scripted ones)',
      outcome: `every input answered with turn.completed; every message stored once under its turn id, no fork${superseded > 0 ? '; newer inputs stopped or overtook older ones' : ''}`,
    });
  });

  it('a newer input stops the running LLM turn, which commits as cancelled with what it said; the newer one runs on that checkpoint', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const long = Array.from({ length: 30 }, (_, i) => `Sentence ${i + 1} about our beans.`).join(' ');
    openai.script({ text: long, chunkChars: 5, tokensPerSecond: 20 });
    const first = crypto.randomUUID();
    client.send({ type: 'input.text', turnId: first, text: OFF_SCRIPT, sessionId: started.sessionId });
    await client.until('response.text.delta');
    const second = crypto.randomUUID();
    client.send({ type: 'input.text', turnId: second, text: 'menu', sessionId: started.sessionId });
    const outcome = await settle(client, [first, second]);
    expect(textOf(outcome.get(first)!).length).toBeLessThan(long.length);
    expect(textOf(outcome.get(second)!)).toContain('We serve espresso');

    const records = await store.listTurns(started.sessionId);
    const [a, b] = records.slice(-2);
    expect(a).toMatchObject({ turnId: first, status: 'cancelled' });
    expect(a!.events).toContainEqual(expect.objectContaining({ type: 'cancelled', reason: 'superseded' }));
    expect(b).toMatchObject({ turnId: second, status: 'completed' });
    // The second turn started from the first one's checkpoint: the cut answer is in its context.
    expect(b!.checkpoint.messages.map((m) => m.role)).toEqual([...a!.checkpoint.messages.map((m) => m.role), 'user', 'assistant']);
    const reason = a!.events.find((e) => e.type === 'cancelled');
    recordFault({
      area: 'concurrency',
      fault: 'a newer input while an LLM turn streams',
      outcome: `the running turn commits as ${a!.status}${reason?.type === 'cancelled' ? ` (${reason.reason})` : ''} with what it said so far; the newer one (${b!.status}) runs on that checkpoint`,
    });
    client.close();
  });

  it('the same turn id again re-sends the stored outcome and never calls the LLM a second time (head, older turn, while running)', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const turnId = crypto.randomUUID();
    const first = await client.say(OFF_SCRIPT, turnId);
    expect(openai.requestsTo('/v1/chat/completions')).toHaveLength(1);
    const again = await client.say(OFF_SCRIPT, turnId);
    expect(textOf(again)).toBe(textOf(first));
    expect(again.at(-1)).toMatchObject({ type: 'turn.completed', turnId });
    // Not the newest any more: found through the checkpoint's recent turns.
    await client.say('menu');
    const older = await client.say(OFF_SCRIPT, turnId);
    expect(textOf(older)).toBe(textOf(first));
    // Sent twice at once: one run, two identical outcomes.
    const racing = crypto.randomUUID();
    openai.script({ text: 'Tuesdays, from Colombia.', tokensPerSecond: 20, chunkChars: 4 });
    client.send({ type: 'input.text', turnId: racing, text: OFF_SCRIPT, sessionId: started.sessionId });
    client.send({ type: 'input.text', turnId: racing, text: OFF_SCRIPT, sessionId: started.sessionId });
    const completions: ServerEvent[] = [];
    while (completions.length < 2) {
      const e = await client.take(15_000);
      if (e.type === 'turn.completed' && e.turnId === racing) completions.push(e);
    }
    expect(openai.requestsTo('/v1/chat/completions')).toHaveLength(2);
    const records = (await store.listTurns(started.sessionId)).filter((r) => r.turnId === turnId || r.turnId === racing);
    expect(records.map((r) => r.turnId)).toEqual([turnId, racing]);
    recordFault({
      area: 'idempotency',
      fault: 'the same turn id again: as the head, as an older turn, and twice at once',
      outcome: `the stored outcome is re-sent, never a second run (${openai.requestsTo('/v1/chat/completions').length} LLM calls for 2 turn ids); one record per turn id`,
    });
    client.close();
  });

  it('a turn that died half-way (its lease expired, nothing committed) is resolved by the next turn from the last completed checkpoint', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const before = (await store.loadHead(started.sessionId))!;
    // A turn took the lease and died: no renewal, no release, no commit.
    const dead = crypto.randomUUID();
    expect((await store.acquireTurn(started.sessionId, dead, Date.now() - 1, 1500)).acquired).toBe(true);
    const events = await client.say('menu');
    expect(textOf(events)).toContain('We serve espresso');
    const head = (await store.loadHead(started.sessionId))!;
    expect(head.seq).toBe(before.seq + 1);
    expect(head.checkpoint.messages.slice(0, before.checkpoint.messages.length)).toEqual(before.checkpoint.messages);
    expect((await store.listTurns(started.sessionId)).some((r) => r.turnId === dead)).toBe(false);
    recordFault({
      area: 'crash',
      fault: 'a turn took the lease and died (no renewal, no commit)',
      outcome: `the next input takes the expired lease and commits seq +${head.seq - before.seq} on the last completed checkpoint; no record of the dead turn`,
    });
    client.close();
  });

  it('a client that reconnects mid-turn gets what it missed of the last turn, then continues', async () => {
    const first = await TestClient.connect(runtime.wsUrl);
    const { started } = await first.open();
    openai.script({ text: 'We roast on Tuesdays. The beans come from Colombia.', firstTokenDelayMs: 400 });
    const turnId = crypto.randomUUID();
    first.send({ type: 'input.text', turnId, text: OFF_SCRIPT, sessionId: started.sessionId });
    await first.next('turn.started');
    first.close();

    const second = await TestClient.connect(runtime.wsUrl);
    const { started: resumed } = await second.open({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken });
    expect(resumed.resumed).toBe(true);
    const missed = await second.until('turn.completed', 10_000);
    expect(missed.at(-1)).toMatchObject({ type: 'turn.completed', turnId });
    expect(textOf(missed)).toBe('We roast on Tuesdays. The beans come from Colombia.');
    // Resuming again, saying it has that turn: nothing is re-sent.
    const third = await TestClient.connect(runtime.wsUrl);
    await third.open({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken, lastTurnId: turnId });
    const next = await third.say('menu');
    expect(next[0]).toMatchObject({ type: 'turn.started' });
    expect(textOf(next)).toContain('We serve espresso');
    recordFault({
      area: 'client',
      fault: 'the client reconnects (resumes) while its turn runs',
      outcome: `the running turn is waited for and its outcome re-sent (\`${missed.at(-1)?.type}\`); a resume naming that turn as lastTurnId re-sends nothing`,
    });
    second.close();
    third.close();
  });

  it('a page reloaded mid-turn that asks for the history gets it after the running turn, that turn included', async () => {
    const first = await TestClient.connect(runtime.wsUrl);
    const { started } = await first.open();
    openai.script({ text: 'We roast on Tuesdays.', firstTokenDelayMs: 400 });
    first.send({ type: 'input.text', turnId: crypto.randomUUID(), text: OFF_SCRIPT, sessionId: started.sessionId });
    await first.next('turn.started');
    first.close();

    const second = await TestClient.connect(runtime.wsUrl);
    await second.open({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken, history: true });
    const history = await second.next('session.history', 10_000);
    expect(history.messages.slice(-2)).toEqual([
      { role: 'user', text: OFF_SCRIPT },
      { role: 'assistant', text: 'We roast on Tuesdays.' },
    ]);
    const next = await second.say('menu');
    expect(next[0]).toMatchObject({ type: 'turn.started' });
    second.close();
  });
});
