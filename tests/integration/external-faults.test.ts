import { createServer } from 'node:http';
import { createServer as createHttp2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { PollyClient } from '@aws-sdk/client-polly';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import type { TurnRecord } from '../../lib/checkpoint/record';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import type { ServerEventOf } from '../../lib/protocol/v1';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { PollySynthesizer } from '../../lib/speech/tts/polly';
import { voiceFor } from '../../lib/speech/tts/voice';
import type { TurnDeps } from '../../lib/session/dispatch';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynalite, type LocalDynamo } from '../../local/dynamodb';
import type { LocalRuntime } from '../../local/runtime';
import { ByTurn, endOf, within } from '../support/by-turn';
import { startDynamoProxy, type DynamoProxy } from '../support/dynamo-proxy';
import { recordFault } from '../support/fault-table';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { startTwoLambdas, type TwoLambdas } from '../support/two-lambdas';
import { sampleMap, sampleModel, startRuntime, storeOf, TestClient, textOf } from './harness';

/*
 * What the world outside a turn does to it, each fault injected at the protocol level where the real
 * thing cannot run here: DynamoDB answering throttling and 500s (an HTTP proxy in front of dynalite,
 * the SDK's own retries at work), two invocations committing the same record, the LLM server
 * never answering or stalling mid-stream, Polly accepting a request and never answering, the
 * client vanishing mid-turn (410 Gone from the local gateway) and a webhook that never answers.
 */

const PCM16K = { format: 'pcm', sampleRate: 16000 } as const;

/** No fork, no gap, no turn twice. */
function expectChain(records: TurnRecord[]): void {
  expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i));
  expect(new Set(records.map((r) => r.turnId)).size).toBe(records.length);
}

/** A server that accepts every request and never answers it (HTTP/1.1, or h2c as PollyClient speaks). */
async function startSilentServer(protocol: 'http1' | 'h2c' = 'http1'): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let requests = 0;
  const count = () => void (requests += 1);
  const server = protocol === 'h2c' ? createHttp2Server(count) : createServer(count);
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (session: ServerHttp2Session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    async close() {
      for (const session of sessions) session.destroy();
      if ('closeAllConnections' in server) server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('DynamoDB faults: throttling, 500s and lost answers, through the SDK retries', () => {
  let dynalite: LocalDynamo;
  let proxy: DynamoProxy;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;
  let maxAttempts: number;

  beforeAll(async () => {
    dynalite = await startDynalite({});
    proxy = await startDynamoProxy(dynalite.endpoint);
    runtime = await startRuntime({ dynamoEndpoint: proxy.endpoint });
    // The test reads the table directly, not through the proxy.
    store = new DynamoSessionStore({ client: dynalite.client, tableName: runtime.tableName, ttlSeconds: 3600 });
    maxAttempts = await runtime.dynamo.client.config.maxAttempts();
  });
  afterEach(() => proxy.reset());
  afterAll(async () => {
    await runtime?.close();
    await proxy?.close();
    await dynalite?.close();
  });

  it('the runtime client retries in standard mode (exponential backoff, full jitter)', async () => {
    const strategy = await runtime.dynamo.client.config.retryStrategy();
    expect((strategy as { mode?: string }).mode).toBe('standard');
    expect(maxAttempts).toBeGreaterThanOrEqual(3);
  });

  it('ProvisionedThroughputExceeded on the reads and writes of a turn: the SDK retries each, the turn commits once', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const before = await store.listTurns(started.sessionId);
    proxy.reset();
    // Fewer throttles per operation than attempts: every call gets through on a later attempt (each
    // throttled retry waits up to 2^retry s, so two at most keep the test short).
    const throttles = { Query: 1, UpdateItem: 1, PutItem: Math.min(2, maxAttempts - 1) };
    for (const [operation, count] of Object.entries(throttles)) proxy.inject(operation, 'throttle', count);
    const events = await client.say('menu');
    expect(endOf(events), JSON.stringify(events)).toBe('turn.completed');

    const seen = proxy.seen;
    for (const [operation, count] of Object.entries(throttles)) {
      const ofOp = seen.filter((r) => r.operation === operation);
      expect(ofOp.filter((r) => r.outcome === 'throttle'), operation).toHaveLength(count);
      // Each throttled attempt was retried by the SDK: the next attempt of the call came.
      for (const t of ofOp.filter((r) => r.outcome === 'throttle')) expect(ofOp.some((r) => r.attempt === t.attempt + 1 && r.at > t.at), operation).toBe(true);
    }
    // The commit reached the table once: no second write of the record.
    const puts = seen.filter((r) => r.operation === 'PutItem');
    expect(puts.filter((r) => r.outcome === 'forwarded')).toHaveLength(1);
    const records = await store.listTurns(started.sessionId);
    expectChain(records);
    expect(records.length).toBe(before.length + 1);
    expect(records.at(-1)!.turnId).toBe(events.at(-1)!.type === 'turn.completed' ? (events.at(-1) as ServerEventOf<'turn.completed'>).turnId : '');

    const retried = seen.filter((r) => r.attempt > 1).length;
    recordFault({
      area: 'DynamoDB',
      fault: `ProvisionedThroughputExceededException on the turn's first Query and UpdateItem and on ${throttles.PutItem} attempts of its commit (PutItem)`,
      outcome: `\`${endOf(events)}\`: the SDK retried every throttled call (${retried} retries, up to attempt ${Math.max(...puts.map((r) => r.attempt))} of ${maxAttempts}); ${puts.filter((r) => r.outcome === 'forwarded').length} PutItem reached the table; one record, no fork`,
    });
    client.close();
  });

  it('a commit that fails on every attempt (500): server.internal, nothing stored, the next turn runs on the previous checkpoint', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const before = await store.listTurns(started.sessionId);
    proxy.reset();
    proxy.inject('PutItem', 'fail', maxAttempts);
    const failed = await client.say('menu');
    const puts = proxy.seen.filter((r) => r.operation === 'PutItem');
    expect(puts.map((r) => r.attempt)).toEqual(Array.from({ length: maxAttempts }, (_, i) => i + 1));
    expect(endOf(failed)).toBe('server.internal');
    expect(await store.listTurns(started.sessionId)).toEqual(before);

    // The lease was released: the next turn runs at once, on the last completed checkpoint.
    const next = await client.say('menu');
    expect(endOf(next)).toBe('turn.completed');
    const records = await store.listTurns(started.sessionId);
    expectChain(records);
    expect(records.length).toBe(before.length + 1);
    expect(records.at(-1)!.checkpoint.messages.slice(0, before.at(-1)!.checkpoint.messages.length)).toEqual(before.at(-1)!.checkpoint.messages);
    recordFault({
      area: 'DynamoDB',
      fault: 'InternalServerError (500) on every attempt of a commit (PutItem)',
      outcome: `\`${endOf(failed)}\` after ${puts.length} attempts; nothing stored; the next turn commits on the previous checkpoint`,
    });
    client.close();
  });

  it("a commit whose answer is lost (written, then 500): the SDK's retry meets its own record; one record, and the turn id again gets the stored outcome", async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const before = await store.listTurns(started.sessionId);
    proxy.reset();
    proxy.inject('PutItem', 'lose', 1);
    const turnId = crypto.randomUUID();
    const first = await client.say('menu', turnId);
    const puts = proxy.seen.filter((r) => r.operation === 'PutItem');
    expect(puts.map((r) => [r.attempt, r.outcome])).toEqual([
      [1, 'lose'],
      [2, 'forwarded'],
    ]);
    const records = await store.listTurns(started.sessionId);
    expectChain(records);
    expect(records.filter((r) => r.turnId === turnId)).toHaveLength(1);
    expect(records.length).toBe(before.length + 1);
    // Whatever the client was told, the same turn id again gets the stored outcome, without a second run.
    expect(['turn.completed', 'turn.conflict']).toContain(endOf(first));
    const again = await client.say('menu', turnId);
    expect(endOf(again)).toBe('turn.completed');
    expect(textOf(again)).toContain('We serve espresso');
    expect(await store.listTurns(started.sessionId)).toEqual(records);
    recordFault({
      area: 'DynamoDB',
      fault: "a commit's answer is lost (PutItem written, the client gets 500)",
      outcome: `the SDK's retry fails its condition; the client gets \`${endOf(first)}\`${endOf(first) === 'turn.conflict' ? ' although the turn was stored' : ''}; one record; the same turn id again: \`${endOf(again)}\` with the stored answer`,
    });
    client.close();
  });
});

describe('conditional failure: two invocations commit the same record', () => {
  let rig: TwoLambdas;
  /** How many commits meet at the barrier before any goes on (0: none waits). */
  let racing = 0;

  beforeAll(async () => {
    // Both Lambdas believe they hold the lease (a lease that lies: clock skew, a bug): only the
    // conditional put is left to keep the chain whole. Their commits meet at a barrier.
    let waiting: Array<() => void> = [];
    const barrier = () =>
      new Promise<void>((resolve) => {
        if (racing === 0) return resolve();
        waiting.push(resolve);
        if (waiting.length < racing) return;
        waiting.forEach((go) => go());
        waiting = [];
        racing = 0;
      });
    const lying = (deps: TurnDeps): TurnDeps => {
      const real = deps.store;
      const store: TurnDeps['store'] = Object.assign(Object.create(real) as TurnDeps['store'], {
        acquireTurn: async () => ({ acquired: true as const, lease: {} }),
        renewTurn: async () => ({}),
        cancelRequested: async () => undefined,
        endTurn: async () => undefined,
        commitTurn: async (sessionId: string, record: TurnRecord) => {
          await barrier();
          return real.commitTurn(sessionId, record);
        },
      });
      return { ...deps, store };
    };
    rig = await startTwoLambdas({ map: sampleMap(), nluModel: await sampleModel(), leaseTiming: {}, wrap: lying });
  });
  afterAll(async () => {
    await rig?.close();
  });

  it('one commits, the other gets turn.conflict; the chain stays whole and the next turn follows the winner', async () => {
    const client = await TestClient.connect(rig.wsUrl);
    const { started } = await client.open();
    const before = await rig.store.listTurns(started.sessionId);
    const inbox = new ByTurn(client);
    const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
    rig.routeToFaulty(b);
    racing = 2;
    client.send({ type: 'input.text', turnId: a, text: 'menu', sessionId: started.sessionId });
    client.send({ type: 'input.text', turnId: b, text: 'what time do you open?', sessionId: started.sessionId });
    const ends = [endOf(await inbox.finished(a, 10_000)), endOf(await inbox.finished(b, 10_000))];
    expect([...ends].sort()).toEqual(['turn.completed', 'turn.conflict']);
    await rig.faultyIdle();

    const records = await rig.store.listTurns(started.sessionId);
    expectChain(records);
    expect(records.length).toBe(before.length + 1);
    const winner = ends[0] === 'turn.completed' ? a : b;
    expect(records.at(-1)!.turnId).toBe(winner);

    const next = await client.say('repeat');
    expect(endOf(next)).toBe('turn.completed');
    const after = await rig.store.listTurns(started.sessionId);
    expectChain(after);
    expect(after.at(-1)!.checkpoint.messages.slice(0, records.at(-1)!.checkpoint.messages.length)).toEqual(records.at(-1)!.checkpoint.messages);
    recordFault({
      area: 'DynamoDB',
      fault: 'two invocations run the same turn seq at once and commit together (the lease bypassed)',
      outcome: `one gets \`${ends.find((e) => e !== 'turn.conflict')}\`, the other \`${ends.find((e) => e !== 'turn.completed')}\`; ${records.length - before.length} record, no fork; the next turn follows the winner`,
    });
    client.close();
  });
});

describe('LLM, TTS, the client and webhooks failing', () => {
  const map = sampleMap();
  let openai: FakeOpenAI;
  let polly: Awaited<ReturnType<typeof startSilentServer>>;
  let kitchen: Awaited<ReturnType<typeof startSilentServer>>;
  let pollyClient: PollyClient;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;
  const ORDER_TIMEOUT_MS = 300;

  beforeAll(async () => {
    openai = await startFakeOpenAI();
    polly = await startSilentServer('h2c');
    kitchen = await startSilentServer();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '1000' });
    // The order webhook goes to a kitchen that never answers, with a short timeout and no retry.
    const place = map.actions.place_order!;
    map.actions.place_order = { ...place, timeout_ms: ORDER_TIMEOUT_MS, retries: 0 };
    // Polly itself: a real PollyClient against an endpoint that accepts and never answers.
    pollyClient = new PollyClient({ endpoint: polly.url, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
    runtime = await startRuntime({
      map,
      llm: llmPortsFactory(env)('test-key'),
      actionsBaseUrl: kitchen.url,
      speech: { synthesizer: new PollySynthesizer(pollyClient), cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'polly'), timing: { stallMs: 300 } },
    });
    store = storeOf(runtime);
  });
  afterEach(() => openai.reset());
  afterAll(async () => {
    await runtime?.close();
    pollyClient?.destroy();
    await polly?.close();
    await kitchen?.close();
    await openai?.close();
  });

  const llmError = (r: TurnRecord) => r.events.find((e) => e.type === 'llm_error');

  it.each([
    ['the first token never comes', { hang: true as const }],
    ['the stream stalls after its first sentence', { text: 'Sure thing. Our beans come from a small farm.', chunkChars: 6, stallAfterChunks: 3 }],
    ['the server answers 500 every time', { status: 500 }],
  ])('LLM: %s → the map message, recorded; the next turn is fine', async (what, script) => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    openai.script(script, script, script);
    const failed = await client.say('who painted the mural on your wall?');
    expect(endOf(failed)).toBe('turn.completed');
    const head = (await store.loadHead(started.sessionId))!;
    const error = llmError(head);
    expect(error).toBeDefined();
    const kind = error!.type === 'llm_error' ? error!.kind : '';
    const message = map.messages[kind as 'llm_timeout' | 'llm_error'] as string;
    expect(textOf(failed).endsWith(message)).toBe(true);
    const partial = textOf(failed).slice(0, -message.length).trim();
    // What streamed before a stall stays, and the message follows it.
    if ('stallAfterChunks' in script) expect(partial.length > 0 && script.text.startsWith(partial)).toBe(true);
    else expect(partial).toBe('');

    openai.reset();
    openai.script({ text: 'A local artist, Ana Ruiz.' });
    const next = await client.say('who painted the mural on your wall?');
    expect(textOf(next)).toBe('A local artist, Ana Ruiz.');
    recordFault({
      area: 'LLM',
      fault: what,
      outcome: `\`${endOf(failed)}\` with the map's ${kind} message${partial ? ', after the text already streamed' : ''}; llm_error (${kind}) recorded; the next turn answers normally`,
    });
    client.close();
  });

  it('TTS: Polly accepts the request and never answers → the text is delivered, tts_error (tts.timeout) recorded', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started, greeting } = await client.open({ type: 'session.start', audio: PCM16K });
    expect(started.audio).toEqual(PCM16K);
    expect(textOf(greeting)).toBe(map.prompts['cache:welcome']);
    const events = await client.say('menu');
    expect(endOf(events)).toBe('turn.completed');
    expect(textOf(events)).toContain('We serve espresso');
    expect(events.filter((e) => e.type === 'response.audio.delta')).toEqual([]);
    const head = (await store.loadHead(started.sessionId))!;
    const errors = head.events.filter((e): e is Extract<TurnRecord['events'][number], { type: 'tts_error' }> => e.type === 'tts_error');
    expect(errors.length).toBeGreaterThan(0);
    const asked = polly.requests();
    expect(asked).toBeGreaterThan(0);
    recordFault({
      area: 'TTS',
      fault: 'Polly accepts the request and never answers',
      outcome: `\`${endOf(events)}\`: the text is delivered without audio; tts_error (${[...new Set(errors.map((e) => e.code))].join(', ')}) recorded (${asked} Polly request${asked === 1 ? '' : 's'} in the session, each given up after the stall limit)`,
    });
    client.close();
  });

  it('410 Gone: the client vanishes mid-turn; the turn still commits, and a resumed client gets it', async () => {
    const first = await TestClient.connect(runtime.wsUrl);
    const { started } = await first.open();
    const before = (await store.loadHead(started.sessionId))!;
    const answer = 'We roast on Tuesdays. The beans come from a small farm in Colombia, near Huila.';
    openai.script({ text: answer, chunkChars: 4, tokensPerSecond: 40 });
    const turnId = crypto.randomUUID();
    first.send({ type: 'input.text', turnId, text: 'where do your coffee beans come from?', sessionId: started.sessionId });
    await first.until('response.text.delta');
    first.close();
    await first.closed;

    // The turn goes on without its client and commits.
    let head = before;
    await within(
      (async () => {
        while (head.seq === before.seq) {
          await new Promise((resolve) => setTimeout(resolve, 30));
          head = (await store.loadHead(started.sessionId))!;
        }
      })(),
      10_000,
      'the turn should commit',
    );
    expect(head).toMatchObject({ turnId, status: 'completed' });
    expect(head.checkpoint.messages.at(-1)).toEqual({ role: 'assistant', content: answer });
    const second = await TestClient.connect(runtime.wsUrl);
    await second.open({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken });
    const missed = await second.until('turn.completed');
    expect(missed.at(-1)).toMatchObject({ turnId });
    expect(textOf(missed)).toBe(answer);
    recordFault({
      area: 'client',
      fault: 'the client vanishes mid-turn (every later post answers 410 Gone)',
      outcome: `the turn goes on and commits (${head.status}, the whole answer stored); a resumed client gets \`${endOf(missed)}\` with it`,
    });
    second.close();
  });

  it('a webhook that never answers: action_timeout within its timeout_ms, the flow takes on_error', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    await client.say('a large latte with oat milk');
    const asked = kitchen.requests();
    const events = await client.say('yes please');
    expect(endOf(events)).toBe('turn.completed');
    expect(kitchen.requests()).toBe(asked + 1);
    const head = (await store.loadHead(started.sessionId))!;
    const action = head.events.find((e) => e.type === 'action');
    expect(action).toMatchObject({ type: 'action', name: 'place_order', ok: false, kind: 'action_timeout', attempts: 1 });
    const ms = action?.type === 'action' ? action.ms : 0;
    expect(ms).toBeGreaterThanOrEqual(ORDER_TIMEOUT_MS - 5);
    expect(ms).toBeLessThan(ORDER_TIMEOUT_MS + 1500);
    const flow = head.events.find((e) => e.type === 'flow');
    expect(flow).toMatchObject({ status: 'EXECUTION_ERROR' });
    expect(head.checkpoint.currentNode).toBe(map.states.place_order!.on_error);
    expect(textOf(events).startsWith(map.messages.action_timeout as string)).toBe(true);
    recordFault({
      area: 'webhook',
      fault: 'the order webhook accepts the request and never answers (timeout_ms 300, no retry)',
      outcome: `action_timeout after ${action?.type === 'action' ? action.attempts : 0} attempt within the timeout; flow ${flow?.type === 'flow' ? flow.status : ''}; the turn goes to on_error (${head.checkpoint.currentNode}) and says the map's action_timeout message`,
    });
    client.close();
  });
});
