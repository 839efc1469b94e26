import type { ConsumedCapacity } from '@aws-sdk/client-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import type { TurnRecord } from '../../lib/checkpoint/record';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { costOf, unpricedLines, type CostLedger } from '../../lib/cost/ledger';
import { DEFAULT_PRICES, mergePrices, type PriceTable } from '../../lib/cost/prices';
import { llmPortsFactory } from '../../lib/llm/configure';
import { PROTOCOL_VERSION, type ServerEvent, type ServerEventOf } from '../../lib/protocol/v1';
import { emptyAudioCache } from '../../lib/speech/audio-cache';
import { voiceFor } from '../../lib/speech/tts/voice';
import { billedMessagesOf } from '../../lib/transport/sender';
import type { LocalRuntime, LocalRuntimeOptions } from '../../local/runtime';
import { espeakInstalled } from '../support/espeak';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { sampleMap, startRuntime, storeOf, TestClient, textOf } from './harness';

type Completed = ServerEventOf<'turn.completed'>;

/**
 * The cost ledger end to end: real turns through the local gateway and dynalite. What a turn says it
 * used is checked against what was independently observed: a tally of every DynamoDB response's
 * ConsumedCapacity (a middleware of the test's own on the runtime's client) and every frame the
 * client received, over the window of the turn's invocation.
 */
class Rig {
  readonly tally = { read: 0, write: 0, failedConditions: 0 };
  private finished = 0;
  private readonly wake: Array<() => void> = [];
  runtime!: LocalRuntime;
  store!: DynamoSessionStore;

  async start(options: Partial<LocalRuntimeOptions> = {}): Promise<this> {
    this.runtime = await startRuntime({
      ...options,
      gateway: {
        onInvoke: (route) => {
          if (route !== '$default') return;
          this.finished += 1;
          this.wake.splice(0).forEach((w) => w());
        },
      },
    });
    const reads = new Set(['GetItemCommand', 'QueryCommand']);
    const writes = new Set(['PutItemCommand', 'UpdateItemCommand', 'DeleteItemCommand']);
    this.runtime.dynamo.client.middlewareStack.add(
      (next, context) => async (args) => {
        const kind = reads.has(context.commandName ?? '') ? 'read' : writes.has(context.commandName ?? '') ? 'write' : undefined;
        if (!kind) return next(args);
        try {
          const out = await next({ ...args, input: { ...(args.input as object), ReturnConsumedCapacity: 'TOTAL' } as typeof args.input });
          this.tally[kind] += (out.output as { ConsumedCapacity?: ConsumedCapacity }).ConsumedCapacity?.CapacityUnits ?? 0;
          return out;
        } catch (err) {
          if ((err as Error).name === 'ConditionalCheckFailedException') this.tally.failedConditions += 1;
          throw err;
        }
      },
      { step: 'initialize', name: 'testCapacityTally' },
    );
    this.store = storeOf(this.runtime);
    return this;
  }

  /** Resolves once `n` client messages have been handled to the end (the invocation returned). */
  async handled(n: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (this.finished < n) {
      if (Date.now() > deadline) throw new Error(`only ${this.finished} of ${n} invocations finished`);
      await new Promise<void>((resolve) => {
        this.wake.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  get invocations(): number {
    return this.finished;
  }

  async connect(): Promise<{ client: TestClient; frames: number[] }> {
    const client = await TestClient.connect(this.runtime.wsUrl);
    const frames: number[] = [];
    client.socket.on('message', (data) => frames.push(Buffer.byteLength(String(data))));
    return { client, frames };
  }

  close = () => this.runtime?.close();
}

/** Write units DynamoDB charged: what it reported, and one for each failed condition (charged, never reported). */
const writes = (tally: { write: number; failedConditions: number }) => tally.write + tally.failedConditions;
const billed = (frames: number[]) => frames.reduce((sum, bytes) => sum + billedMessagesOf(bytes), 0);
const lineOf = (ledger: CostLedger, item: string, unit?: string) => ledger.lines.find((l) => l.item === item && (unit === undefined || l.unit === unit));

/** Every record's usage summed: what the session's usage must be. */
const summed = (records: TurnRecord[], key: 'dynamoReadUnits' | 'dynamoWriteUnits' | 'apiGatewayMessages' | 'lambdaGbSeconds') =>
  records.reduce((sum, r) => sum + (r.usage[key] ?? 0), 0);

describe('the cost ledger of turns through the local gateway', () => {
  const rig = new Rig();
  // Limits on (and never reached): the rate bucket and the session's start are DynamoDB calls too.
  beforeAll(() => rig.start({ limits: { ratePerSecond: 50, rateBurst: 100, maxTurns: 1000, maxSessionAgeMs: 3_600_000 } }));
  afterAll(() => rig.close());

  it('prices a text turn in turn.completed and its record, with the DynamoDB units and messages it really used', async () => {
    const { client, frames } = await rig.connect();
    client.send({ type: 'hello', version: PROTOCOL_VERSION });
    await client.next('hello.ack');
    await rig.handled(1);

    // The greeting: session.start's invocation (META, the connection, the lease, the first record).
    let before = { ...rig.tally, frames: frames.length };
    client.send({ type: 'session.start' });
    const started = await client.next('session.started');
    client.sessionId = started.sessionId;
    const greeting = (await client.until('turn.completed')).at(-1) as Completed;
    await rig.handled(2);
    let after = { ...rig.tally }; // before the test's own reads below
    const greetingRecord = (await rig.store.loadHead(started.sessionId))!;
    expect(greetingRecord.usage).toMatchObject({
      dynamoReadUnits: after.read - before.read,
      dynamoWriteUnits: writes(after) - writes(before),
      apiGatewayMessages: 1 + billed(frames.slice(before.frames)),
    });
    expect(greeting.cost).toEqual(greetingRecord.cost);

    // A text turn.
    before = { ...rig.tally, frames: frames.length };
    const events = await client.say('what time do you open?');
    await rig.handled(3);
    after = { ...rig.tally };
    const completed = events.at(-1) as Completed;
    expect(completed.type).toBe('turn.completed');
    const record = (await rig.store.loadHead(started.sessionId))!;

    const cost = completed.cost!;
    expect(cost.lines.length).toBeGreaterThan(0);
    expect(cost.total).toBeGreaterThan(0);
    expect(lineOf(cost, 'dynamodb', 'read request unit')!.quantity).toBeGreaterThan(0);
    expect(lineOf(cost, 'dynamodb', 'write request unit')!.quantity).toBeGreaterThan(0);
    expect(lineOf(cost, 'apigateway')!.quantity).toBeGreaterThan(0);
    expect(unpricedLines(cost)).toEqual([]);

    // What the turn reports is what it stored, and what the table and the socket saw.
    expect(record.cost).toEqual(cost);
    expect(record.usage).toEqual(completed.usage);
    expect(record.usage.dynamoReadUnits).toBe(after.read - before.read);
    expect(record.usage.dynamoWriteUnits).toBe(writes(after) - writes(before));
    expect(lineOf(cost, 'dynamodb', 'write request unit')!.quantity).toBe(writes(after) - writes(before));
    // The input.text message in, and every frame out, turn.completed included.
    expect(record.usage.apiGatewayMessages).toBe(1 + billed(frames.slice(before.frames)));
    expect(lineOf(cost, 'apigateway')!.quantity).toBe(record.usage.apiGatewayMessages);
    expect(record.usage.lambdaRequests).toBe(1);
    expect(record.usage.lambdaGbSeconds).toBeCloseTo((record.usage.lambdaMs! / 1000) * (256 / 1024), 12);
    expect(record.usage.lambdaMs).toBeGreaterThanOrEqual(Math.floor(record.metrics.totalMs));

    // The session: its usage sums the turns', and sessionCost prices it.
    const all = await rig.store.listTurns(started.sessionId);
    expect(completed.sessionUsage).toMatchObject({
      dynamoReadUnits: summed(all, 'dynamoReadUnits'),
      dynamoWriteUnits: summed(all, 'dynamoWriteUnits'),
      apiGatewayMessages: summed(all, 'apiGatewayMessages'),
    });
    expect(completed.sessionCost).toEqual(costOf(record.checkpoint.usage, DEFAULT_PRICES));
    expect(completed.sessionCost!.total).toBeGreaterThan(cost.total);
    client.close();
  });

  it('meters turns of many sessions at once apart: their records add up to exactly what the table and sockets saw', async () => {
    const sessions = await Promise.all(Array.from({ length: 6 }, () => rig.connect()));
    const base = rig.invocations;
    for (const { client } of sessions) client.send({ type: 'hello', version: PROTOCOL_VERSION });
    await Promise.all(sessions.map(({ client }) => client.next('hello.ack')));
    await rig.handled(base + sessions.length);
    // From here on every DynamoDB call and every frame belongs to some turn.
    const before = { ...rig.tally, frames: sessions.map((s) => s.frames.length) };
    const inputs = ["I'd like a cappuccino with oat milk", 'large', 'what time do you open?'];
    const sessionIds = await Promise.all(
      sessions.map(async ({ client }) => {
        client.send({ type: 'session.start' });
        client.sessionId = (await client.next('session.started')).sessionId;
        await client.until('turn.completed');
        for (const text of inputs) expect((await client.say(text)).at(-1)?.type).toBe('turn.completed');
        return client.sessionId;
      }),
    );
    await rig.handled(base + sessions.length * (2 + inputs.length));
    const after = { ...rig.tally }; // before the test's own reads below
    const records = (await Promise.all(sessionIds.map((id) => rig.store.listTurns(id)))).flat();
    expect(records).toHaveLength(sessions.length * (1 + inputs.length));
    expect(summed(records, 'dynamoReadUnits')).toBe(after.read - before.read);
    expect(summed(records, 'dynamoWriteUnits')).toBe(writes(after) - writes(before));
    const framesOut = sessions.reduce((sum, s, i) => sum + billed(s.frames.slice(before.frames[i])), 0);
    expect(summed(records, 'apiGatewayMessages')).toBe(records.length + framesOut);
    for (const { client } of sessions) client.close();
  });

});

describe('the cost ledger of LLM and spoken turns, at overridden prices', () => {
  const map = sampleMap();
  const rig = new Rig();
  let openai: FakeOpenAI;
  let espeak: { close(): Promise<void> } | undefined;
  // A deployment's own table: its DynamoDB write price, and a model of its own.
  const prices: PriceTable = mergePrices({ dynamodb: { perMillionWriteUnits: 1.25 }, llm: { 'house-model': { input: 1, output: 2 } } });

  beforeAll(async () => {
    openai = await startFakeOpenAI();
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local', PARLEY_LLM_BUDGET_MS: '5000' });
    let speech: LocalRuntimeOptions['speech'];
    if (espeakInstalled) {
      const { createEspeakSynthesizer } = await import('../../local/speech/espeak');
      const synthesizer = await createEspeakSynthesizer();
      espeak = synthesizer;
      speech = { synthesizer, cache: emptyAudioCache, voiceFor: (language) => voiceFor(map, language, 'espeak') };
    }
    await rig.start({ llm: llmPortsFactory(env)('test-key'), prices, ...(speech ? { speech } : {}) });
  });
  afterEach(() => openai.reset());
  afterAll(async () => {
    await rig.close();
    await openai?.close();
    await espeak?.close();
  });

  const ask = async (client: TestClient, text: string) => (await client.say(text)).at(-1) as Completed;

  it('prices tokens per model (a dated snapshot as its model), flags a model the table lacks, and uses the overridden prices', async () => {
    const { client } = await rig.connect();
    await client.open();
    openai.script({ text: 'We roast on Tuesdays.', model: 'gpt-4o-mini-2024-07-18', usage: { prompt_tokens: 1200, completion_tokens: 40, cached: 1000 } });
    const priced = await ask(client, 'where do your coffee beans come from?');
    const llm = priced.cost!.lines.filter((l) => l.item === 'llm');
    expect(llm.map((l) => [l.detail, l.quantity])).toEqual([
      ['gpt-4o-mini-2024-07-18 input', 200],
      ['gpt-4o-mini-2024-07-18 cached input', 1000],
      ['gpt-4o-mini-2024-07-18 output', 40],
    ]);
    // 200 × $0.15/1M + 1000 × $0.075/1M + 40 × $0.60/1M
    expect(llm.reduce((sum, l) => sum + l.usd, 0)).toBeCloseTo(0.00003 + 0.000075 + 0.000024, 12);
    expect(lineOf(priced.cost!, 'dynamodb', 'write request unit')!.unitPrice).toBe(1.25 / 1e6);

    openai.script({ text: 'It is a mural by a local artist.', usage: { prompt_tokens: 900, completion_tokens: 12 } });
    const unpriced = await ask(client, 'who painted the mural?');
    expect(unpricedLines(unpriced.cost!).map((l) => l.detail)).toEqual(['gpt-test input', 'gpt-test output']);
    expect(unpricedLines(unpriced.cost!).every((l) => l.usd === 0)).toBe(true);
    expect(unpriced.cost!.total).toBeGreaterThan(0); // AWS is still priced
    // The session prices both models; the record holds what turn.completed said.
    expect(unpriced.sessionCost!.lines.filter((l) => l.item === 'llm').map((l) => l.detail)).toEqual([
      'gpt-4o-mini-2024-07-18 input',
      'gpt-4o-mini-2024-07-18 cached input',
      'gpt-4o-mini-2024-07-18 output',
      'gpt-test input',
      'gpt-test output',
    ]);
    expect((await rig.store.loadHead(client.sessionId!))!.cost).toEqual(unpriced.cost);
    client.close();
  });

  it.skipIf(!espeakInstalled)('counts a spoken turn: characters by engine (eSpeak, free) and every audio frame as a message', async () => {
    const { client, frames } = await rig.connect();
    client.send({ type: 'hello', version: PROTOCOL_VERSION });
    await client.next('hello.ack');
    const before = rig.invocations;
    const framesBefore = frames.length;
    client.send({ type: 'session.start', audio: { format: 'pcm', sampleRate: 16000 } });
    const greeting = await client.until('turn.completed');
    await rig.handled(before + 1);
    const completed = greeting.at(-1) as Completed;
    const spoken = textOf(greeting);
    expect(greeting.filter((e: ServerEvent) => e.type === 'response.audio.delta').length).toBeGreaterThan(1);
    expect(completed.usage.ttsCharactersByEngine).toEqual({ espeak: spoken.length });
    expect(lineOf(completed.cost!, 'tts')).toMatchObject({ quantity: spoken.length, unit: 'character', detail: 'espeak', usd: 0 });
    expect(completed.usage.apiGatewayMessages).toBe(1 + billed(frames.slice(framesBefore)));
    client.close();
  });
});

