import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FunctionEnv, readEnv } from '../lib/config/env';
import { loadDialogueMap } from '../lib/flow/map';
import { llmPortsFactory } from '../lib/llm/configure';
import { loadOrTrain } from '../lib/nlu/model-file';
import { PROTOCOL_VERSION } from '../lib/protocol/v1';
import { startLocalRuntime } from '../local/runtime';
import { startFakeOpenAI } from '../tests/support/openai-server';
import { BenchClient } from './client';
import { progress, round3, summarize } from './stats';

/**
 * What the runner adds to an LLM turn: the provider is a local OpenAI-compatible server with
 * injected latency (time to first token, tokens per second); the figure is the client-observed
 * time from sending input.text to the first response.text.delta, minus the injected time to first
 * token. It holds the NLU, the routing, the gateway, the SDK, the first-sentence safety check
 * (local checker) and the framing: everything but the model.
 */
export async function benchLlm(repoRoot: string, options: { turns?: number; firstTokenMs?: number; tokensPerSecond?: number } = {}) {
  const turns = options.turns ?? 60;
  const firstTokenMs = options.firstTokenMs ?? 300;
  const tokensPerSecond = options.tokensPerSecond ?? 40;
  const mapPath = join(repoRoot, 'dialogue_map.json');
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const { model } = await loadOrTrain(map, mapPath);
  const openai = await startFakeOpenAI({
    // The first chunk completes the first sentence ("Good question. O…"), so the figure is the
    // runner's own overhead; a longer first sentence adds its streaming time, because nothing of it
    // is sent before the safety check (seed 004).
    fallback: { text: 'Good question. Our mural was painted by a local artist in 2019, and she still visits.', chunkChars: 16, firstTokenDelayMs: firstTokenMs, tokensPerSecond },
  });
  const env = readEnv(FunctionEnv, { OPENAI_BASE_URL: openai.baseURL, OPENAI_MODEL: 'bench-model', PARLEY_SAFETY: 'local' });
  const runtime = await startLocalRuntime({ map, nluModel: model, port: 0, dynamoPort: 0, llm: llmPortsFactory(env)('bench-key') });
  const client = await BenchClient.open(runtime.wsUrl);
  try {
    const acked = client.waitFor((e) => e.type === 'hello.ack');
    client.send({ type: 'hello', version: PROTOCOL_VERSION });
    await acked;
    const greeted = client.waitFor((e) => e.type === 'turn.completed');
    client.send({ type: 'session.start' });
    await greeted;

    const added: number[] = [];
    for (let i = 0; i < turns + 5; i++) {
      const turnId = randomUUID();
      const first = client.waitFor((e) => e.type === 'response.text.delta' && e.turnId === turnId);
      const started = performance.now();
      client.send({ type: 'input.text', turnId, text: 'who painted the mural on your wall?' });
      await first;
      const toFirstDelta = performance.now() - started;
      const done = client.waitFor((e) => e.type === 'turn.completed' && e.turnId === turnId, 30_000);
      await done;
      // The first turns warm the JIT, the sockets and the SDK; they are not counted.
      if (i >= 5) added.push(toFirstDelta - firstTokenMs);
      if (i % 20 === 0) progress(`llm: ${i}/${turns + 5} turns`);
    }
    return {
      what: `time from input.text to the first response.text.delta, minus the injected ${firstTokenMs} ms to first token (${tokensPerSecond} tokens/s after it)`,
      turns: added.length,
      runnerAddedMs: summarize(added.map(round3)),
    };
  } finally {
    await client.close();
    await runtime.close();
    await openai.close();
  }
}
