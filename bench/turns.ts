import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { loadDialogueMap } from '../lib/flow/map';
import { PROTOCOL_VERSION, type ServerEventOf } from '../lib/protocol/v1';
import { startLocalRuntime } from '../local/runtime';
import { loadOrTrain } from '../lib/nlu/model-file';
import { BenchClient } from './client';
import { median, progress, round3, summarize } from './stats';

/**
 * The scripted loop through dialogue_map.json: welcome/change_order -order-> confirm -no-> change_order.
 * Every turn runs the NLU, entity extraction and slot filling, and never reaches an END_CALL state;
 * each turn's node.transition is checked.
 */
export const SCRIPT: ReadonlyArray<{ text: string; to: string }> = [
  { text: 'a large latte with oat milk please', to: 'confirm' },
  { text: 'no', to: 'change_order' },
  { text: 'two small teas', to: 'confirm' },
  { text: 'no, change it', to: 'change_order' },
];

export interface TurnBenchOptions {
  sessions: number;
  turnsPerSession: number;
  warmupTurns: number;
  mapPath: string;
  /** Called around each measured (not warm-up) turn; the profiler attributes work to turns with it. */
  hooks?: { turnStart(): void; turnEnd(sample: TurnSample): void };
}

type Invocation = { routeKey: string; ms: number };
const isMessageRoute = (routeKey: string) => routeKey !== '$connect' && routeKey !== '$disconnect';

/** Turns the gateway's onInvoke reports into awaitable invocations (FIFO per filter). */
class InvocationTracker {
  private readonly waiters: Array<{ filter: (routeKey: string) => boolean; resolve: (i: Invocation) => void }> = [];
  readonly routeKeys: Record<string, number> = {};
  completed = 0;

  readonly onInvoke = (routeKey: string, ms: number): void => {
    this.completed++;
    this.routeKeys[routeKey] = (this.routeKeys[routeKey] ?? 0) + 1;
    const at = this.waiters.findIndex((w) => w.filter(routeKey));
    if (at >= 0) this.waiters.splice(at, 1)[0]!.resolve({ routeKey, ms });
  };

  /** Register before sending the message that causes the invocation. */
  next(filter: (routeKey: string) => boolean, timeoutMs = 10_000): Promise<Invocation> {
    return new Promise((resolve, reject) => {
      const waiter = {
        filter,
        resolve: (i: Invocation) => {
          clearTimeout(timer);
          resolve(i);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no invocation reported within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

export interface TurnSample {
  serverMs: number;
  rttMs: number;
  position: number;
  metrics: ServerEventOf<'turn.completed'>['metrics'];
  /** Other invocations that finished while this turn was measured (should be 0). */
  overlaps: number;
}

async function openSession(url: string, tracker: InvocationTracker): Promise<BenchClient> {
  // The gateway runs $connect before it completes the upgrade, so it has finished once `open` fires.
  const client = await BenchClient.open(url);
  let invoked = tracker.next(isMessageRoute);
  let reply = client.waitFor((e) => e.type === 'hello.ack');
  client.send({ type: 'hello', version: PROTOCOL_VERSION });
  await reply;
  await invoked;
  invoked = tracker.next(isMessageRoute);
  // session.started, then the greeting (turn 0) ends with turn.completed.
  reply = client.waitFor((e) => e.type === 'turn.completed');
  client.send({ type: 'session.start' });
  await reply;
  await invoked;
  return client;
}

async function closeSession(client: BenchClient, tracker: InvocationTracker): Promise<void> {
  const disconnected = tracker.next((k) => k === '$disconnect');
  await client.close();
  await disconnected;
}

async function runTurn(client: BenchClient, tracker: InvocationTracker, step: { text: string; to: string }, position: number): Promise<TurnSample> {
  const turnId = randomUUID();
  const invoked = tracker.next(isMessageRoute);
  const done = client.waitFor((e) => e.type === 'turn.completed' && e.turnId === turnId);
  client.clearSeen();
  const before = tracker.completed;
  const sentAt = performance.now();
  client.send({ type: 'input.text', turnId, text: step.text });
  const completed = (await done) as ServerEventOf<'turn.completed'>;
  const rttMs = performance.now() - sentAt;
  // The handler returns after its last post, which can be just after the client got turn.completed:
  // the next turn is sent only once this invocation has finished, so invocations never overlap.
  const { ms } = await invoked;
  const overlaps = tracker.completed - before - 1;
  const transition = client.seen.find((e) => e.type === 'node.transition' && e.turnId === turnId);
  if (!transition || transition.type !== 'node.transition' || transition.to !== step.to) {
    throw new Error(`turn ${position} ('${step.text}') did not move to '${step.to}': ${JSON.stringify(client.seen)}`);
  }
  return { serverMs: ms, rttMs, position, metrics: completed.metrics, overlaps };
}

export async function benchTurns(options: TurnBenchOptions) {
  const tracker = new InvocationTracker();
  const map = loadDialogueMap(JSON.parse(readFileSync(options.mapPath, 'utf8')));
  const { model: nluModel } = await loadOrTrain(map, options.mapPath);
  const runtime = await startLocalRuntime({ map, nluModel, port: 0, dynamoPort: 0, gateway: { onInvoke: tracker.onInvoke } });
  try {
    progress(`runtime up at ${runtime.wsUrl} (dynalite ${runtime.dynamo.endpoint})`);

    // Warm-up: JIT, SDK clients, sockets; its own session, not counted.
    let client = await openSession(runtime.wsUrl, tracker);
    for (let i = 0; i < options.warmupTurns; i++) await runTurn(client, tracker, SCRIPT[i % SCRIPT.length]!, i + 1);
    await closeSession(client, tracker);
    progress(`warm-up done (${options.warmupTurns} turns)`);

    const samples: TurnSample[] = [];
    const contention = cpuMeter();
    const startedAt = performance.now();
    for (let s = 0; s < options.sessions; s++) {
      client = await openSession(runtime.wsUrl, tracker);
      for (let i = 0; i < options.turnsPerSession; i++) {
        options.hooks?.turnStart();
        const sample = await runTurn(client, tracker, SCRIPT[i % SCRIPT.length]!, i + 1);
        options.hooks?.turnEnd(sample);
        samples.push(sample);
      }
      await closeSession(client, tracker);
      progress(`session ${s + 1}/${options.sessions}: ${options.turnsPerSession} turns`);
    }
    const wallMs = performance.now() - startedAt;
    const cpu = contention.stop();

    const server = samples.map((t) => t.serverMs);
    const rtt = summarize(samples.map((t) => t.rttMs));
    const at = (from: number, to: number) => samples.filter((t) => t.position >= from && t.position <= to).map((t) => t.serverMs);
    const late = options.turnsPerSession - 9;
    const metric = (name: 'runMs' | 'commitMs' | 'totalMs') =>
      median(samples.map((t) => t.metrics[name]).filter((v): v is number => typeof v === 'number'));
    return {
      ...summarize(server),
      unit: 'ms',
      what: 'server-side duration of the $default (turn) handler invocation per input.text, from the gateway onInvoke hook',
      sessions: options.sessions,
      turnsPerSession: options.turnsPerSession,
      warmupTurns: options.warmupTurns,
      script: SCRIPT.map((s) => s.text),
      routeKeysReported: tracker.routeKeys,
      overlappingInvocations: samples.reduce((n, t) => n + t.overlaps, 0),
      clientRoundTrip: { p50: rtt.p50, p99: rtt.p99, mean: rtt.mean, what: 'client send(input.text) -> turn.completed received' },
      serverP50ByPositionInSession: {
        [`turns1to10`]: median(at(1, 10)),
        [`turns${late}to${options.turnsPerSession}`]: median(at(late, options.turnsPerSession)),
      },
      handlerReportedMetricsP50: {
        runMs: metric('runMs'),
        commitMs: metric('commitMs'),
        totalMs: metric('totalMs'),
        what: 'turn.completed metrics: runMs = runner, commitMs = PutItem of the turn record, totalMs = handler receipt -> committed',
      },
      throughputTurnsPerSec: round3((samples.length / wallMs) * 1000),
      cpuDuringMeasuredTurns: cpu,
    };
  } finally {
    await runtime.close();
  }
}

/**
 * CPU use while the turns ran, in percent of one core: this process (handlers, dynalite, gateway and
 * client all share it) and everything else on the machine. Other processes busy on a 2-core box
 * inflate the figures, so the report says how busy the box was.
 */
function cpuMeter() {
  const busy = () => os.cpus().reduce((sum, c) => sum + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0);
  const busyBefore = busy();
  const processBefore = process.cpuUsage();
  const started = performance.now();
  return {
    stop() {
      const wall = performance.now() - started;
      const self = process.cpuUsage(processBefore);
      const selfMs = (self.user + self.system) / 1000;
      const allMs = busy() - busyBefore;
      return {
        thisProcessPercent: Math.round((selfMs / wall) * 100),
        otherProcessesPercent: Math.max(0, Math.round(((allMs - selfMs) / wall) * 100)),
        cores: os.cpus().length,
      };
    },
  };
}
