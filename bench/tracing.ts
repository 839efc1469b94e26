import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchSpanProcessor, InMemorySpanExporter, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { loadDialogueMap } from '../lib/flow/map';
import { loadOrTrain } from '../lib/nlu/model-file';
import { inTurnSpan, startTracing, traceCall } from '../lib/observability/tracing';
import { PROTOCOL_VERSION } from '../lib/protocol/v1';
import { startLocalRuntime, type LocalRuntime } from '../local/runtime';
import { BenchClient } from './client';
import { progress, round3, summarize } from './stats';
import { SCRIPT } from './turns';

/**
 * What tracing costs a turn. Two local runtimes side by side, one built without tracing (the
 * default: bare ports, no SDK) and one with its ports decorated and the SDK on, exporting to an
 * in-memory exporter through the batch processor (the export itself is the collector's cost, not
 * the turn's). Rounds alternate between them so that drift in the machine hits both alike. Then the
 * span machinery alone, in process: one turn span with five child spans, off and on.
 */
export async function benchTracing(repoRoot: string, options: { rounds?: number; turnsPerRound?: number; warmupTurns?: number; microTurns?: number } = {}) {
  const rounds = options.rounds ?? 4;
  const turnsPerRound = options.turnsPerRound ?? 60;
  const warmupTurns = options.warmupTurns ?? 40;
  const microTurns = options.microTurns ?? 20_000;
  const mapPath = join(repoRoot, 'dialogue_map.json');
  const map = loadDialogueMap(JSON.parse(readFileSync(mapPath, 'utf8')));
  const { model: nluModel } = await loadOrTrain(map, mapPath);

  // Span machinery first, before any SDK was installed in this process: the "off" figure is the real default.
  const microBare = await micro(microTurns, true);
  const microOff = await micro(microTurns);

  const invoked = new Invocations();
  const start = (tracing: boolean) => startLocalRuntime({ map, nluModel, port: 0, dynamoPort: 0, tracing, gateway: { onInvoke: invoked.onInvoke } });
  const off = await start(false);
  const on = await start(true);
  try {
    const samples = { off: [] as number[], on: [] as number[] };
    let spans = 0;
    let tracedTurns = 0;
    for (let round = -1; round < rounds; round++) {
      const warm = round < 0;
      const turns = warm ? warmupTurns : turnsPerRound;
      // Off: no SDK in the process at all.
      samples.off.push(...sliceIf(!warm, await session(off, invoked, turns)));
      // A fresh exporter per round: shutting the SDK down shuts its exporter down too.
      const exporter = new InMemorySpanExporter();
      const tracing = await startTracing({ exporter, processor: 'batch' });
      samples.on.push(...sliceIf(!warm, await session(on, invoked, turns)));
      await tracing.flush();
      if (!warm) {
        spans += exporter.getFinishedSpans().length;
        // The greeting turn of the round's session is traced too.
        tracedTurns += turns + 1;
      }
      await tracing.shutdown();
      progress(warm ? `tracing: warm-up done (${turns} turns each)` : `tracing: round ${round + 1}/${rounds}`);
    }
    const offSummary = summarize(samples.off);
    const onSummary = summarize(samples.on);
    const microOn = await microTraced(microTurns);
    return {
      turn: {
        off: { p50: offSummary.p50, p99: offSummary.p99, count: offSummary.count },
        on: { p50: onSummary.p50, p99: onSummary.p99, count: onSummary.count },
        addedP50Ms: round3(onSummary.p50 - offSummary.p50),
        // A scripted text turn: parley.turn, the commit's PutItem, the lease release's UpdateItem.
        spansPerTurn: round3(spans / Math.max(1, tracedTurns)),
        unit: 'ms',
        what: 'server-side duration of the turn handler per input.text (gateway onInvoke), tracing off (bare ports, no SDK) vs on (decorated ports, SDK, batch processor into an in-memory exporter); alternating rounds',
      },
      spanMachinery: {
        offAddedPerTurnUs: round3(microOff - microBare),
        onAddedPerTurnUs: round3(microOn - microBare),
        bareTurnUs: microBare,
        what: 'in process, no I/O: what one inTurnSpan wrapping five traceCall children adds to a turn, in microseconds, over the same awaits without them; off = no SDK installed (the default), on = SDK with a batch processor into an exporter that drops spans (six spans)',
      },
    };
  } finally {
    await on.close();
    await off.close();
  }
}

const sliceIf = (keep: boolean, values: number[]) => (keep ? values : []);

/**
 * Microseconds per turn of the span machinery: inTurnSpan around five calls (as a text turn makes
 * about five DynamoDB calls), or the same awaits without it (`bare`), the baseline both are read against.
 */
async function micro(turns: number, bare = false): Promise<number> {
  const record = { status: 'completed', checkpoint: { currentNode: 'menu' }, usage: { llm: {}, ttsCharacters: 0, sttSeconds: 0 } };
  const work = async (i: number) => {
    for (let c = 0; c < 5; c++) await (bare ? (async () => c)() : traceCall('dynamodb.GetItem', { 'db.system': 'dynamodb' }, async () => c));
    return i;
  };
  const one = (i: number) =>
    bare
      ? work(i)
      : inTurnSpan({ sessionId: `s-${i % 50}`, turnId: `t-${i}`, seq: i, inputKind: 'text', nodeBefore: 'welcome' }, async (span) => {
          await work(i);
          span.committed(record);
        });
  for (let i = 0; i < Math.min(2_000, turns); i++) await one(i);
  const started = performance.now();
  for (let i = 0; i < turns; i++) await one(i);
  return round3(((performance.now() - started) * 1000) / turns);
}

async function microTraced(turns: number): Promise<number> {
  const dropping: SpanExporter = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => undefined };
  const tracing = await startTracing({ exporter: dropping, processor: 'batch' });
  try {
    return await micro(turns);
  } finally {
    await tracing.shutdown();
  }
}

/** The gateway's onInvoke reports, awaited one message at a time. */
class Invocations {
  private next: ((ms: number) => void) | undefined;
  readonly onInvoke = (routeKey: string, ms: number): void => {
    if (routeKey === '$connect' || routeKey === '$disconnect') return;
    const resolve = this.next;
    this.next = undefined;
    resolve?.(ms);
  };
  expect(): Promise<number> {
    return new Promise((resolve) => {
      this.next = resolve;
    });
  }
}

/** One session of `turns` scripted turns; the server-side ms of each. */
async function session(runtime: LocalRuntime, invoked: Invocations, turns: number): Promise<number[]> {
  const client = await BenchClient.open(runtime.wsUrl);
  try {
    let done = invoked.expect();
    let reply = client.waitFor((e) => e.type === 'hello.ack');
    client.send({ type: 'hello', version: PROTOCOL_VERSION });
    await reply;
    await done;
    done = invoked.expect();
    reply = client.waitFor((e) => e.type === 'turn.completed');
    client.send({ type: 'session.start' });
    await reply;
    await done;
    const ms: number[] = [];
    for (let i = 0; i < turns; i++) {
      const step = SCRIPT[i % SCRIPT.length]!;
      const turnId = randomUUID();
      done = invoked.expect();
      reply = client.waitFor((e) => e.type === 'turn.completed' && e.turnId === turnId);
      client.send({ type: 'input.text', turnId, text: step.text });
      await reply;
      ms.push(await done);
    }
    return ms;
  } finally {
    await client.close();
  }
}
