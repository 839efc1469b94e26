import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { TurnRecord } from '../../lib/checkpoint/record';
import { emptyCheckpoint } from '../../lib/checkpoint/schema';
import { CostEnv, readEnv } from '../../lib/config/env';
import { costOf, formatUsd, unpricedLines, type CostLedger, type CostLine } from '../../lib/cost/ledger';
import { DynamoMeter } from '../../lib/cost/meter';
import { DEFAULT_PRICES, loadPrices, mergePrices, modelPrice, PriceTable } from '../../lib/cost/prices';
import { meterTurn, type TurnCosting } from '../../lib/cost/turn';
import { addMetered, ttsEngineOf } from '../../lib/cost/usage';
import { TurnCompleted, type Usage } from '../../lib/protocol/v1';
import type { ConnectionSender } from '../../lib/transport/sender';
import { billedMessagesOf } from '../../lib/transport/sender';
import { configError } from '../support/errors';

const NO_USAGE: Usage = { llm: {}, ttsCharacters: 0, sttSeconds: 0 };

const line = (ledger: CostLedger, item: CostLine['item'], unit: string, detail?: string) => {
  const found = ledger.lines.filter((l) => l.item === item && l.unit === unit && (detail === undefined || l.detail === detail));
  expect(found, `${item} ${unit} ${detail ?? ''}`).toHaveLength(1);
  return found[0]!;
};

describe('costOf: each line is quantity × the table price, computed by hand here', () => {
  const usage: Usage = {
    llm: { 'gpt-4o-mini': { inputTokens: 1200, outputTokens: 80, cachedTokens: 1000 } },
    ttsCharacters: 500,
    sttSeconds: 30,
    ttsCharactersByEngine: { neural: 500 },
    lambdaRequests: 1,
    lambdaMs: 250,
    lambdaGbSeconds: 0.0625, // 250 ms at 256 MB
    dynamoReadUnits: 3,
    dynamoWriteUnits: 7,
    apiGatewayMessages: 4,
  };
  const ledger = costOf(usage, DEFAULT_PRICES);

  it('prices LLM tokens per model: uncached input, cached input (OpenAI counts them inside the prompt) and output', () => {
    expect(line(ledger, 'llm', 'token', 'gpt-4o-mini input')).toMatchObject({ quantity: 200, usd: 0.00003 }); // 200 × $0.15/1M
    expect(line(ledger, 'llm', 'token', 'gpt-4o-mini cached input')).toMatchObject({ quantity: 1000, usd: 0.000075 }); // 1000 × $0.075/1M
    expect(line(ledger, 'llm', 'token', 'gpt-4o-mini output')).toMatchObject({ quantity: 80, usd: 0.000048 }); // 80 × $0.60/1M
    expect(line(ledger, 'llm', 'token', 'gpt-4o-mini output').unitPrice).toBeCloseTo(0.6e-6, 15);
  });

  it('prices speech by engine, recognition by the second', () => {
    expect(line(ledger, 'tts', 'character', 'neural')).toMatchObject({ quantity: 500, usd: 0.008 }); // 500 × $16/1M
    expect(line(ledger, 'stt', 'second')).toMatchObject({ quantity: 30, usd: 0.012 }); // 30 s × $0.024/min
  });

  it('prices recognition by who did it: Transcribe streaming, OpenAI, a self-hosted recognizer (free by default), an unknown one unpriced', () => {
    const spoken = costOf({ ...NO_USAGE, sttSeconds: 150, sttSecondsByProvider: { transcribe: 30, openai: 60, 'self-hosted': 20, 'my-asr': 10 } }, DEFAULT_PRICES);
    expect(line(spoken, 'stt', 'second', 'streaming')).toMatchObject({ quantity: 30 + 30, usd: 0.024 }); // 30 s attributed + 30 s nobody claimed, × $0.024/min
    expect(line(spoken, 'stt', 'second', 'openai')).toMatchObject({ quantity: 60, usd: 0.006 }); // 1 min × $0.006
    expect(line(spoken, 'stt', 'second', 'self-hosted')).toMatchObject({ quantity: 20, usd: 0 });
    expect(line(spoken, 'stt', 'second', 'my-asr')).toMatchObject({ quantity: 10, usd: 0, unpriced: true });
    const priced = costOf({ ...NO_USAGE, sttSeconds: 60, sttSecondsByProvider: { 'self-hosted': 60 } }, mergePrices({ stt: { perMinute: 0.024, byProvider: { 'self-hosted': 0.002 } } }));
    expect(line(priced, 'stt', 'second', 'self-hosted').usd).toBe(0.002);
  });

  it('prices Lambda GB-seconds on the table architecture (arm64, as the stack deploys) and the request', () => {
    const gbs = line(ledger, 'lambda', 'GB-second');
    expect(gbs).toMatchObject({ quantity: 0.0625, unitPrice: 0.0000133334, detail: 'arm64, 250 ms' });
    expect(gbs.usd).toBeCloseTo(0.0625 * 0.0000133334, 11); // 8.333375e-7
    expect(line(ledger, 'lambda', 'request')).toMatchObject({ quantity: 1, usd: 0.0000002 });
    const x86 = costOf(usage, mergePrices({ lambda: { architecture: 'x86_64' } }));
    expect(line(x86, 'lambda', 'GB-second').usd).toBeCloseTo(0.0625 * 0.0000166667, 11);
  });

  it('prices DynamoDB request units and API Gateway messages', () => {
    expect(line(ledger, 'dynamodb', 'read request unit')).toMatchObject({ quantity: 3, usd: 0.000000375 }); // 3 × $0.125/1M
    expect(line(ledger, 'dynamodb', 'write request unit')).toMatchObject({ quantity: 7, usd: 0.000004375 }); // 7 × $0.625/1M
    expect(line(ledger, 'apigateway', 'message')).toMatchObject({ quantity: 4, usd: 0.000004, detail: 'per started 32 KB' }); // 4 × $1/1M
  });

  it('totals the lines, names the table, and parses as turn.completed cost', () => {
    const expected = 0.00003 + 0.000075 + 0.000048 + 0.008 + 0.012 + 0.0625 * 0.0000133334 + 0.0000002 + 0.000000375 + 0.000004375 + 0.000004;
    expect(ledger.total).toBeCloseTo(expected, 11);
    expect(ledger.total).toBeCloseTo(ledger.lines.reduce((sum, l) => sum + l.usd, 0), 12);
    expect(ledger).toMatchObject({ currency: 'USD', pricesChecked: DEFAULT_PRICES.checked });
    expect(ledger.lines).toHaveLength(10);
    expect(unpricedLines(ledger)).toEqual([]);
    const event = { type: 'turn.completed', turnId: 't', usage, sessionUsage: usage, cost: ledger, sessionCost: ledger, metrics: { runMs: 1, totalMs: 2 } };
    expect(TurnCompleted.parse(event)).toEqual(event);
  });

  it('leaves out what is zero, and prices nothing a record from before metering did not measure', () => {
    expect(costOf(NO_USAGE, DEFAULT_PRICES)).toEqual({ currency: 'USD', lines: [], total: 0, pricesChecked: DEFAULT_PRICES.checked });
    const old = costOf({ llm: {}, ttsCharacters: 12, sttSeconds: 0 }, DEFAULT_PRICES);
    expect(old.lines.map((l) => l.item)).toEqual(['tts']);
  });

  it('flags a model the table lacks as unpriced at $0 instead of guessing or failing', () => {
    const ledger = costOf({ ...NO_USAGE, llm: { 'gpt-test': { inputTokens: 100, outputTokens: 10, cachedTokens: 0 } } }, DEFAULT_PRICES);
    expect(ledger.lines).toEqual([
      { item: 'llm', quantity: 100, unit: 'token', unitPrice: 0, usd: 0, detail: 'gpt-test input', unpriced: true },
      { item: 'llm', quantity: 10, unit: 'token', unitPrice: 0, usd: 0, detail: 'gpt-test output', unpriced: true },
    ]);
    expect(ledger.total).toBe(0);
    expect(unpricedLines(ledger)).toHaveLength(2);
  });

  it('finds a dated snapshot by its model, and only by a date', () => {
    expect(modelPrice(DEFAULT_PRICES, 'gpt-4o-mini-2024-07-18')).toEqual(DEFAULT_PRICES.llm['gpt-4o-mini']);
    expect(modelPrice(DEFAULT_PRICES, 'gpt-4.1-mini-2025-04-14')).toEqual(DEFAULT_PRICES.llm['gpt-4.1-mini']);
    expect(modelPrice(DEFAULT_PRICES, 'gpt-4o-audio-preview')).toBeUndefined();
    expect(modelPrice(DEFAULT_PRICES, 'my-local-llama')).toBeUndefined();
  });

  it('prices characters no engine was recorded for as neural (the map default), or as told', () => {
    const usage: Usage = { ...NO_USAGE, ttsCharacters: 700, ttsCharactersByEngine: { standard: 500 } };
    expect(line(costOf(usage, DEFAULT_PRICES), 'tts', 'character', 'neural')).toMatchObject({ quantity: 200, usd: 0.0032 });
    const told = costOf(usage, DEFAULT_PRICES, { ttsEngine: 'standard' });
    expect(line(told, 'tts', 'character', 'standard')).toMatchObject({ quantity: 700, usd: 0.0028 });
    const free = costOf({ ...NO_USAGE, ttsCharacters: 300, ttsCharactersByEngine: { espeak: 300 } }, DEFAULT_PRICES);
    expect(free.lines).toEqual([{ item: 'tts', quantity: 300, unit: 'character', unitPrice: 0, usd: 0, detail: 'espeak' }]);
    const unknown = costOf({ ...NO_USAGE, ttsCharacters: 10, ttsCharactersByEngine: { 'polly-next': 10 } }, DEFAULT_PRICES);
    expect(unknown.lines[0]).toMatchObject({ detail: 'polly-next', unpriced: true, usd: 0 });
  });
});

describe('adding usage', () => {
  it('sums metered fields into the session usage; a field stays absent until measured', () => {
    const session: Usage = { llm: {}, ttsCharacters: 10, sttSeconds: 0, ttsCharactersByEngine: { neural: 10 } };
    const turn = { dynamoReadUnits: 2, dynamoWriteUnits: 5, apiGatewayMessages: 3, ttsCharactersByEngine: { neural: 4, standard: 1 } };
    expect(addMetered(session, turn)).toEqual({ ...session, dynamoReadUnits: 2, dynamoWriteUnits: 5, apiGatewayMessages: 3, ttsCharactersByEngine: { neural: 14, standard: 1 } });
    expect(addMetered(addMetered(NO_USAGE, turn), turn)).toMatchObject({ dynamoWriteUnits: 10, apiGatewayMessages: 6 });
    expect(addMetered(NO_USAGE, {})).toEqual(NO_USAGE);
    expect(ttsEngineOf({ provider: 'polly', engine: 'generative' })).toBe('generative');
    expect(ttsEngineOf({ provider: 'polly' })).toBe('standard');
    expect(ttsEngineOf({ provider: 'espeak', engine: 'neural' })).toBe('espeak');
  });

  it('formats small amounts readably', () => {
    expect(formatUsd(0.000008843)).toBe('$0.000008843');
    expect(formatUsd(0.0112)).toBe('$0.01120');
    expect(formatUsd(0)).toBe('$0');
  });
});

describe('API Gateway bills a message per started 32 KB', () => {
  it('rounds up at the increment', () => {
    expect(billedMessagesOf(0)).toBe(1);
    expect(billedMessagesOf(32 * 1024)).toBe(1);
    expect(billedMessagesOf(32 * 1024 + 1)).toBe(2);
    expect(billedMessagesOf(100_000)).toBe(4);
  });
});

describe('the price table override (PARLEY_PRICES)', () => {
  it('is the defaults when unset or blank', () => {
    expect(loadPrices(undefined)).toBe(DEFAULT_PRICES);
    expect(readEnv(CostEnv, {}).PARLEY_PRICES).toEqual(DEFAULT_PRICES);
    expect(PriceTable.parse(DEFAULT_PRICES)).toEqual(DEFAULT_PRICES);
  });

  it('merges inline JSON over the defaults: one field of a model changes, a new model is added, the rest stays', () => {
    const prices = loadPrices('{"llm": {"gpt-4o-mini": {"input": 0.2}, "my-model": {"input": 1, "output": 3}}, "dynamodb": {"perMillionWriteUnits": 1.25}}');
    expect(prices.llm['gpt-4o-mini']).toEqual({ input: 0.2, cachedInput: 0.075, output: 0.6 });
    expect(prices.llm['my-model']).toEqual({ input: 1, output: 3 });
    expect(prices.llm['gpt-4.1-mini']).toEqual(DEFAULT_PRICES.llm['gpt-4.1-mini']);
    expect(prices.dynamodb).toEqual({ perMillionReadUnits: 0.125, perMillionWriteUnits: 1.25 });
    // A model without a cached price bills cached tokens at its input price.
    const ledger = costOf({ ...NO_USAGE, llm: { 'my-model': { inputTokens: 10, outputTokens: 0, cachedTokens: 4 } } }, prices);
    expect(line(ledger, 'llm', 'token', 'my-model cached input')).toMatchObject({ quantity: 4, unitPrice: 1e-6 });
  });

  it('reads a JSON file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-prices-'));
    const file = join(dir, 'prices.json');
    writeFileSync(file, JSON.stringify({ region: 'eu-west-1', tts: { neural: 19.2 } }));
    const prices = readEnv(CostEnv, { PARLEY_PRICES: file }).PARLEY_PRICES;
    expect(prices).toMatchObject({ region: 'eu-west-1', tts: { neural: 19.2, standard: 4 } });
  });

  it('refuses a bad value at start-up with a message naming the variable and the path', () => {
    const refused = (value: string) => configError(() => readEnv(CostEnv, { PARLEY_PRICES: value })).message;
    expect(refused('{"llm": {"gpt-4o-mini": {"input": "cheap"}}}')).toMatch(/PARLEY_PRICES: llm\.gpt-4o-mini\.input: .*number/);
    expect(refused('{"dynamodb": {"perMillionWriteUnit": 1}}')).toMatch(/PARLEY_PRICES: dynamodb: .*perMillionWriteUnit/);
    expect(refused('{"tts": {"neural": -1}}')).toMatch(/PARLEY_PRICES: tts\.neural/);
    expect(refused('{"lambda": {"architecture": "sparc"}}')).toMatch(/PARLEY_PRICES: lambda\.architecture/);
    expect(refused('{not json')).toMatch(/PARLEY_PRICES: the inline price table is not JSON/);
    expect(refused('[1, 2]')).toMatch(/PARLEY_PRICES: cannot read the price file \[1, 2\]/);
    expect(refused('/nonexistent/prices.json')).toMatch(/PARLEY_PRICES: cannot read the price file \/nonexistent\/prices\.json/);
  });

  it('reads the Lambda memory, with the stack default elsewhere', () => {
    expect(readEnv(CostEnv, {}).AWS_LAMBDA_FUNCTION_MEMORY_SIZE).toBe(256);
    expect(readEnv(CostEnv, { AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '1024' }).AWS_LAMBDA_FUNCTION_MEMORY_SIZE).toBe(1024);
    expect(() => readEnv(CostEnv, { AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '64' })).toThrow(/AWS_LAMBDA_FUNCTION_MEMORY_SIZE/);
  });
});

describe('meterTurn: the record carries its whole turn, its own commit included', () => {
  const draft = (ttsCharacters = 0): TurnRecord => ({
    seq: 3,
    turnId: 'turn-3',
    status: 'completed',
    createdAt: '2026-11-21T12:00:00.000Z',
    input: { kind: 'text', text: 'large' },
    outputs: [],
    events: [],
    usage: { ...NO_USAGE, ttsCharacters },
    metrics: { runMs: 3, totalMs: 4 },
    checkpoint: { ...emptyCheckpoint(), usage: { llm: {}, ttsCharacters: 40 + ttsCharacters, sttSeconds: 0, dynamoWriteUnits: 20, apiGatewayMessages: 9 } },
  });
  const sender = (billedMessages: number, gone = false) => ({ billedMessages, gone }) as unknown as ConnectionSender;
  // A stand-in for the store's sizing: one unit per started 300 bytes of the record's JSON.
  const bySize = (record: TurnRecord) => Math.ceil(JSON.stringify(record).length / 300);
  const costing: TurnCosting = { prices: DEFAULT_PRICES, memoryMb: 512, recordWriteUnits: (_id, record) => bySize(record) };
  const meter = Object.assign(new DynamoMeter(), { readUnits: 2, writeUnits: 1 });
  const metered: TurnCosting = { ...costing, meter };

  it('adds the commit as big as the record it is in, the lease release, the inbound message and turn.completed', () => {
    const record = meterTurn(metered, { sessionId: 's', draft: draft(), voice: undefined, inboundBody: 'x'.repeat(40_000), sender: sender(3), elapsedMs: 120.2, completes: true });
    const commit = bySize(record);
    expect(commit).toBeGreaterThan(1);
    expect(record.usage).toEqual({
      ...NO_USAGE,
      lambdaRequests: 1,
      lambdaMs: 121,
      lambdaGbSeconds: 0.121 * 0.5,
      dynamoReadUnits: 2,
      dynamoWriteUnits: 1 + commit + 1,
      dynamoRecordWriteUnits: commit,
      apiGatewayMessages: 2 + 3 + 1, // a 40,000-byte inbound message is two; three sent; turn.completed
    });
    expect(record.checkpoint.usage).toMatchObject({ ttsCharacters: 40, dynamoWriteUnits: 20 + 1 + commit + 1, apiGatewayMessages: 9 + 6, dynamoReadUnits: 2 });
    expect(record.cost).toEqual(costOf(record.usage, DEFAULT_PRICES));
  });

  it('counts no turn.completed for a stop or a gone client, and no DynamoDB outside a meter', () => {
    const stop = meterTurn(metered, { sessionId: 's', draft: draft(), voice: undefined, inboundBody: '{}', sender: sender(2), elapsedMs: 5, completes: false });
    expect(stop.usage.apiGatewayMessages).toBe(1 + 2);
    const gone = meterTurn(metered, { sessionId: 's', draft: draft(), voice: undefined, inboundBody: '{}', sender: sender(2, true), elapsedMs: 5, completes: true });
    expect(gone.usage.apiGatewayMessages).toBe(1 + 2);
    const unmetered = meterTurn(costing, { sessionId: 's', draft: draft(), voice: undefined, inboundBody: '{}', sender: sender(2), elapsedMs: 5, completes: true });
    expect(unmetered.usage.dynamoReadUnits).toBeUndefined();
    expect(unmetered.usage.dynamoWriteUnits).toBeUndefined();
  });

  it('attributes spoken characters to the voice engine', () => {
    const record = meterTurn(metered, { sessionId: 's', draft: draft(25), voice: { provider: 'polly', engine: 'neural' }, inboundBody: '{}', sender: sender(1), elapsedMs: 5, completes: true });
    expect(record.usage.ttsCharactersByEngine).toEqual({ neural: 25 });
    expect(line(record.cost!, 'tts', 'character', 'neural')).toMatchObject({ quantity: 25, usd: 0.0004 });
  });

  it("starts from the previous record's size, so a turn usually sizes its record once", () => {
    let calls = 0;
    const counting: TurnCosting = { ...metered, recordWriteUnits: (id, r) => (calls++, bySize(r)) };
    const first = meterTurn(counting, { sessionId: 's', draft: draft(), voice: undefined, inboundBody: '{}', sender: sender(1), elapsedMs: 5, completes: true });
    expect(calls).toBe(2); // no previous record: 1 unit guessed, then the size's
    calls = 0;
    const next = meterTurn(counting, { sessionId: 's', draft: draft(), voice: undefined, inboundBody: '{}', sender: sender(1), elapsedMs: 5, completes: true, previous: first });
    expect(calls).toBe(1);
    expect(next.usage.dynamoRecordWriteUnits).toBe(first.usage.dynamoRecordWriteUnits);
  });

  it('settles on a consistent count when the record sits at a unit boundary', () => {
    // Sizing that flips with the count: whatever it says, meterTurn returns a record it was sized for or one unit over.
    let calls = 0;
    const flipping: TurnCosting = { ...costing, recordWriteUnits: (_id, r) => (calls++, (r.usage.dynamoWriteUnits ?? 0) % 2 === 0 ? 3 : 4) };
    const record = meterTurn({ ...flipping, meter }, { sessionId: 's', draft: draft(), voice: undefined, inboundBody: '{}', sender: sender(1), elapsedMs: 5, completes: true });
    expect(calls).toBeLessThanOrEqual(4);
    expect([3, 4]).toContain(record.usage.dynamoWriteUnits! - 2);
  });
});
