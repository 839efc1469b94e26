import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { EventAssembler, PROTOCOL_VERSION, type ClientMessage, type ServerEvent } from '../../lib/protocol/v1';
import type { LocalRuntime } from '../../local/runtime';
import { startRuntime, storeOf, textOf } from './harness';

/*
 * A turn longer than API Gateway's integration timeout, through the real handlers, dynalite and the
 * local gateway. The integration timeout is 300 ms here instead of 29 s, and the order webhook takes
 * 1.2 s (an injected fetch that waits before calling the demo kitchen), so the order turn outlives the
 * timeout four times over.
 */

const INTEGRATION_TIMEOUT_MS = 300;
const WEBHOOK_DELAY_MS = 1200;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const slowFetch: typeof fetch = async (input, init) => {
  await sleep(WEBHOOK_DELAY_MS);
  return fetch(input, init);
};

interface Frame {
  at: number;
  /** A message from API Gateway itself ({ message, connectionId, requestId }), not from Parley. */
  gateway?: { message: string };
  events: ServerEvent[];
}

/** A client that keeps every frame with its arrival time, API Gateway's own messages included. */
class FrameClient {
  readonly frames: Frame[] = [];
  private readonly assembler = new EventAssembler();
  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const json = JSON.parse(String(data)) as unknown;
      const at = Date.now();
      if (json && typeof json === 'object' && !Array.isArray(json) && !('type' in json)) this.frames.push({ at, gateway: json as Frame['gateway'], events: [] });
      else this.frames.push({ at, events: this.assembler.receive(String(data)) });
    });
  }

  static async connect(url: string): Promise<FrameClient> {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new FrameClient(socket);
  }

  send(message: ClientMessage): number {
    this.socket.send(JSON.stringify(message));
    return Date.now();
  }

  /** The frames from index `from` on, once one of them holds an event of `type`. */
  async until(type: ServerEvent['type'], from: number, timeoutMs = 10_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frames = this.frames.slice(from);
      if (frames.some((f) => f.events.some((e) => e.type === type))) return frames;
      if (Date.now() > deadline) throw new Error(`no ${type} in time`);
      await sleep(10);
    }
  }

  close(): void {
    this.socket.close();
  }
}

/** hello, a new session, an order up to the confirmation; then "yes please", the turn that calls the slow webhook. */
async function orderUpToConfirmation(client: FrameClient): Promise<string> {
  client.send({ type: 'hello', version: PROTOCOL_VERSION });
  await client.until('hello.ack', 0);
  client.send({ type: 'session.start' });
  const started = (await client.until('turn.completed', 0)).flatMap((f) => f.events).find((e) => e.type === 'session.started');
  if (started?.type !== 'session.started') throw new Error('no session.started');
  const from = client.frames.length;
  client.send({ type: 'input.text', turnId: crypto.randomUUID(), text: 'a large latte please', sessionId: started.sessionId });
  expect(textOf((await client.until('turn.completed', from)).flatMap((f) => f.events))).toBe("So that's 1 × large latte. Shall I place the order?");
  return started.sessionId;
}

describe('a turn longer than the integration timeout', () => {
  let runtime: LocalRuntime | undefined;

  afterEach(async () => {
    await runtime?.close();
    runtime = undefined;
  });

  it('completes and streams: $default is acknowledged at once and the turn runs in the background, then commits', async () => {
    runtime = await startRuntime({ fetch: slowFetch, gateway: { integrationTimeoutMs: INTEGRATION_TIMEOUT_MS } });
    const client = await FrameClient.connect(runtime.wsUrl);
    const sessionId = await orderUpToConfirmation(client);

    const from = client.frames.length;
    const turnId = crypto.randomUUID();
    const sent = client.send({ type: 'input.text', turnId, text: 'yes please', sessionId });
    const frames = await client.until('turn.completed', from);
    const events = frames.flatMap((f) => f.events);

    // The turn streamed while it ran: it started (and said its filler) before the integration timeout.
    expect(frames[0]!.events[0]).toMatchObject({ type: 'turn.started', turnId });
    expect(frames[0]!.at - sent).toBeLessThan(INTEGRATION_TIMEOUT_MS);
    expect(events.some((e) => e.type === 'response.filler')).toBe(true);
    // It ended long after the timeout, with the webhook's answer, and nothing from API Gateway came.
    expect(frames.at(-1)!.at - sent).toBeGreaterThanOrEqual(WEBHOOK_DELAY_MS);
    expect(textOf(events)).toMatch(/Your order number is P-\d+/);
    expect(events.at(-1)).toMatchObject({ type: 'turn.completed', turnId });
    expect(client.frames.filter((f) => f.gateway)).toEqual([]);

    // And it committed.
    const store = storeOf(runtime);
    const last = (await store.listTurns(sessionId)).at(-1)!;
    expect(last).toMatchObject({ turnId, status: 'completed', input: { kind: 'text', text: 'yes please' } });
    expect(last.checkpoint.variables).toMatchObject({ order: { id: expect.stringMatching(/^P-\d+$/) } });
    client.close();
  });

  it('was cut off by the old synchronous integration: API Gateway times out on the client mid-turn', async () => {
    // asyncRoutes {}: $default as the Lambda proxy integration it used to be.
    runtime = await startRuntime({ fetch: slowFetch, gateway: { integrationTimeoutMs: INTEGRATION_TIMEOUT_MS, asyncRoutes: {} } });
    const client = await FrameClient.connect(runtime.wsUrl);
    const sessionId = await orderUpToConfirmation(client);

    const from = client.frames.length;
    const sent = client.send({ type: 'input.text', turnId: crypto.randomUUID(), text: 'yes please', sessionId });
    const frames = await client.until('turn.completed', from);
    const timedOut = frames.findIndex((f) => f.gateway);
    expect(frames[timedOut]?.gateway).toMatchObject({ message: 'Endpoint request timed out' });
    expect(frames[timedOut]!.at - sent).toBeGreaterThanOrEqual(INTEGRATION_TIMEOUT_MS - 10);
    // Before the turn's answer: the client was told its message failed while the turn was still running.
    const completed = frames.findIndex((f) => f.events.some((e) => e.type === 'turn.completed'));
    expect(timedOut).toBeLessThan(completed);
    expect(frames.slice(0, timedOut).flatMap((f) => f.events).some((e) => e.type === 'response.text.done' && /order number/.test(e.text))).toBe(false);
    client.close();
  });
});
