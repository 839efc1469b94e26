import { readFileSync } from 'node:fs';
import { ScanCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import WebSocket from 'ws';
import { DynamoSessionStore } from '../../lib/checkpoint/dynamo-store';
import { loadDialogueMap, type DialogueMap } from '../../lib/flow/map';
import type { Log } from '../../lib/observability/log';
import { EventAssembler, PROTOCOL_VERSION, type ClientMessage, type ServerEvent, type ServerEventOf } from '../../lib/protocol/v1';
import { startLocalRuntime, type LocalRuntime, type LocalRuntimeOptions } from '../../local/runtime';
import { loadOrTrain } from '../../lib/nlu/model-file';
import type { NluModel } from '../../lib/nlu/train';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const SAMPLE_MAP_PATH = new URL('../../dialogue_map.json', import.meta.url).pathname;

export const sampleMap = (): DialogueMap => loadDialogueMap(JSON.parse(readFileSync(SAMPLE_MAP_PATH, 'utf8')));

/** The sample map's NLU model, as `npm install` built it (trained here if it is missing or stale). */
export const sampleModel = async (): Promise<NluModel> => (await loadOrTrain(sampleMap(), SAMPLE_MAP_PATH)).model;

/** The real local runtime: in-memory dynalite and the local gateway on free ports. */
export async function startRuntime(options: Partial<LocalRuntimeOptions> & { log?: Log } = {}): Promise<LocalRuntime> {
  const map = options.map ?? sampleMap();
  const nluModel = options.nluModel ?? (await sampleModel());
  return startLocalRuntime({ port: 0, dynamoPort: 0, ...options, map, nluModel });
}

/** Every item in the table, keys and attributes, sorted: a snapshot to compare before and after. */
export async function tableSnapshot(runtime: LocalRuntime): Promise<Record<string, AttributeValue>[]> {
  const items: Record<string, AttributeValue>[] = [];
  let ExclusiveStartKey: Record<string, AttributeValue> | undefined;
  do {
    const page = await runtime.dynamo.client.send(new ScanCommand({ TableName: runtime.tableName, ExclusiveStartKey }));
    items.push(...(page.Items ?? []));
    ExclusiveStartKey = page.LastEvaluatedKey;
  } while (ExclusiveStartKey);
  const key = (i: Record<string, AttributeValue>) => `${i.pk?.S}|${i.sk?.S}`;
  return items.sort((a, b) => key(a).localeCompare(key(b)));
}

/** Snapshot without connection items, which come and go with sockets. */
export async function sessionItems(runtime: LocalRuntime) {
  return (await tableSnapshot(runtime)).filter((i) => i.pk?.S?.startsWith('SESS#'));
}

/** A session store of the test's own over the runtime's table. */
export const storeOf = (runtime: LocalRuntime, ttlSeconds = 3600): DynamoSessionStore =>
  new DynamoSessionStore({ client: runtime.dynamo.client, tableName: runtime.tableName, ttlSeconds });

/** A real WebSocket client that queues every server event for the test to take in order. */
export class TestClient {
  readonly events: ServerEvent[] = [];
  private readonly waiters: Array<() => void> = [];
  private readonly assembler = new EventAssembler();
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The session from the last session.started; say() names it in input.text. */
  sessionId: string | undefined;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.events.push(...this.assembler.receive(String(data)));
      this.waiters.splice(0).forEach((wake) => wake());
    });
    this.closed = new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  static async connect(url: string): Promise<TestClient> {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: ${res.statusCode}`)));
    });
    return new TestClient(socket);
  }

  send(message: ClientMessage | Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  sendRaw(data: string | Buffer, options: { binary?: boolean } = {}): void {
    this.socket.send(data, { binary: options.binary ?? false });
  }

  /** Takes the next event; fails if it is not of the expected type. */
  async next<T extends ServerEvent['type']>(type: T, timeoutMs = 5000): Promise<ServerEventOf<T>> {
    const event = await this.take(timeoutMs);
    if (event.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(event)}`);
    return event as ServerEventOf<T>;
  }

  /** Takes events until one of the given type arrives; returns everything taken, that one last. */
  async until<T extends ServerEvent['type']>(type: T, timeoutMs = 5000): Promise<ServerEvent[]> {
    const taken: ServerEvent[] = [];
    for (;;) {
      const event = await this.take(timeoutMs);
      taken.push(event);
      if (event.type === type) return taken;
    }
  }

  async take(timeoutMs = 15_000): Promise<ServerEvent> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no event arrived in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.events.shift()!;
  }

  /** hello -> hello.ack, then session.start -> session.started and the greeting turn. */
  async open(start: Extract<ClientMessage, { type: 'session.start' }> = { type: 'session.start' }) {
    this.send({ type: 'hello', version: PROTOCOL_VERSION });
    await this.next('hello.ack');
    this.send(start);
    const started = await this.next('session.started');
    this.sessionId = started.sessionId;
    const greeting = started.resumed ? [] : await this.until('turn.completed');
    return { started, greeting };
  }

  /** One text turn, waiting for its turn.completed (or an error). */
  async say(text: string, turnId: string = crypto.randomUUID()): Promise<ServerEvent[]> {
    this.send({ type: 'input.text', turnId, text, ...(this.sessionId ? { sessionId: this.sessionId } : {}) });
    const events: ServerEvent[] = [];
    for (;;) {
      const event = await this.take();
      events.push(event);
      if (event.type === 'turn.completed' || event.type === 'error') return events;
    }
  }

  close(): void {
    this.socket.close();
  }
}

export const textOf = (events: ServerEvent[]): string =>
  events.filter((e): e is ServerEventOf<'response.text.done'> => e.type === 'response.text.done').map((e) => e.text).join(' ');
