import { QueryCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import { FunctionEnv, readEnv } from '../../lib/config/env';
import { llmPortsFactory } from '../../lib/llm/configure';
import type { LocalRuntime } from '../../local/runtime';
import { startFakeOpenAI, type FakeOpenAI } from '../support/openai-server';
import { startRuntime, storeOf, TestClient } from './harness';

/** DynamoDB's item size: attribute names plus values (strings and binaries by length, numbers ~ digits). */
function itemBytes(item: Record<string, AttributeValue>): number {
  let bytes = 0;
  for (const [name, value] of Object.entries(item)) {
    bytes += Buffer.byteLength(name);
    if (value.S !== undefined) bytes += Buffer.byteLength(value.S);
    else if (value.B !== undefined) bytes += value.B.byteLength;
    else if (value.N !== undefined) bytes += Math.ceil(value.N.length / 2) + 1;
  }
  return bytes;
}

/** Write capacity units of one put: 1 per started KB. */
const writeUnits = (bytes: number) => Math.ceil(bytes / 1024);

/**
 * A long conversation, scripted and LLM turns mixed, through the real gateway and dynalite: the
 * stored state must stay small and the cost of a turn must not grow with the conversation.
 */
describe('bounded state', () => {
  let openai: FakeOpenAI;
  let runtime: LocalRuntime;
  let store: DynamoSessionStore;

  beforeAll(async () => {
    // Every LLM answer is long-ish (about 600 characters), and every summary request gets one too.
    const answer = Array.from({ length: 12 }, (_, i) => `Point ${i + 1}: our beans are roasted fresh every Tuesday.`).join(' ');
    openai = await startFakeOpenAI({ fallback: { text: answer, chunkChars: 200 } });
    const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'gpt-test', PARLEY_SAFETY: 'local' });
    runtime = await startRuntime({ llm: llmPortsFactory(env)('test-key') });
    store = storeOf(runtime);
  });
  afterAll(async () => {
    await runtime?.close();
    await openai?.close();
  });

  it('300 turns: every checkpoint and record stays under 32 KB, and write units per turn stay flat', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const { started } = await client.open();
    const inputs = ['where do your coffee beans come from?', 'menu', 'what time do you open?', 'tell me more about the beans please', 'a large latte with oat milk', 'no'];
    for (let i = 0; i < 300; i++) {
      const events = await client.say(`${inputs[i % inputs.length]!}${i % 7 === 0 ? ` (turn ${i})` : ''}`);
      expect(events.at(-1)?.type, `turn ${i}: ${JSON.stringify(events.at(-1))}`).toBe('turn.completed');
    }
    client.close();

    const items: Record<string, AttributeValue>[] = [];
    let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
    do {
      const page = await runtime.dynamo.client.send(
        new QueryCommand({
          TableName: runtime.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :t)',
          ExpressionAttributeValues: { ':pk': { S: `SESS#${started.sessionId}` }, ':t': { S: 'TURN#' } },
          ExclusiveStartKey,
        }),
      );
      items.push(...(page.Items ?? []));
      ExclusiveStartKey = page.LastEvaluatedKey;
    } while (ExclusiveStartKey);
    expect(items).toHaveLength(301);

    const records = await store.listTurns(started.sessionId);
    const checkpointBytes = records.map((r) => Buffer.byteLength(JSON.stringify(r.checkpoint)));
    const units = items.map(itemBytes).map(writeUnits);
    for (const [i, bytes] of checkpointBytes.entries()) expect(bytes, `checkpoint ${i}`).toBeLessThan(32 * 1024);
    for (const [i, item] of items.entries()) expect(itemBytes(item), `record ${i}`).toBeLessThan(32 * 1024);
    // Flat: the last hundred turns cost no more than the turns after the window first filled up.
    const settled = Math.max(...units.slice(20, 120));
    expect(Math.max(...units.slice(-100))).toBeLessThanOrEqual(settled + 1);
    expect(Math.max(...checkpointBytes.slice(-100))).toBeLessThanOrEqual(Math.max(...checkpointBytes.slice(20, 120)) * 1.25);
    // The conversation really went through the LLM and was folded into a summary along the way.
    expect(records.at(-1)!.checkpoint.summary).toBeTruthy();
    expect(records.at(-1)!.checkpoint.usage.llm['gpt-test']?.outputTokens).toBeGreaterThan(0);
  });
});
