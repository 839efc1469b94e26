import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { WebSocketEvent } from '../../lib/host/events';
import { startLocalGateway, type GatewayOptions, type LocalGateway } from '../../local/gateway';

/*
 * The local gateway's two kinds of integration, as the stack deploys them: `$default` invoked
 * asynchronously through its request template (acknowledged at once, no integration timeout), and
 * synchronous Lambda proxy integrations that API Gateway gives up on after the integration timeout.
 */

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A raw client that records every frame, API Gateway's own error messages included. */
async function rawClient(url: string) {
  const socket = new WebSocket(url);
  const frames: { at: number; data: Record<string, unknown> }[] = [];
  socket.on('message', (data) => frames.push({ at: Date.now(), data: JSON.parse(String(data)) as Record<string, unknown> }));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return { socket, frames };
}

describe('local gateway integrations', () => {
  let gateway: LocalGateway | undefined;

  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  const start = (options: Partial<GatewayOptions> & Pick<GatewayOptions, 'handlers'>) => startLocalGateway({ integrationTimeoutMs: 200, ...options });

  const noop = {
    $connect: async () => ({ statusCode: 200 }),
    $disconnect: async () => {},
  };

  it('$default is acknowledged at once and runs in the background well past the integration timeout, with the template\'s event', async () => {
    const events: WebSocketEvent[] = [];
    let finished = 0;
    gateway = await start({
      handlers: {
        ...noop,
        $default: async (event) => {
          events.push(event);
          await sleep(700);
          finished = Date.now();
          return { statusCode: 200 };
        },
      },
    });
    const client = await rawClient(gateway.wsUrl);
    const body = `{"type":"input.text","text":"it's \\"quoted\\" \\\\ Привет 😀\\n"}`;
    const sent = Date.now();
    client.socket.send(body);
    await sleep(1000);
    expect(finished - sent).toBeGreaterThanOrEqual(700);
    // Nothing from API Gateway: no timeout message for an asynchronous integration.
    expect(client.frames).toEqual([]);
    expect(events).toHaveLength(1);
    const event = events[0]!;
    expect(event.body).toBe(body);
    expect(event.isBase64Encoded).toBe(false);
    expect(event.requestContext).toMatchObject({
      routeKey: '$default',
      eventType: 'MESSAGE',
      connectionId: gateway.connectionIds()[0],
      domainName: new URL(gateway.httpUrl).host,
      stage: 'local',
    });
    expect(event.requestContext.requestTimeEpoch).toBeGreaterThanOrEqual(sent - 1000);
    expect(typeof event.requestContext.connectedAt).toBe('number');
    client.socket.close();
  });

  it('close() waits for a turn still running in the background', async () => {
    let done = false;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    gateway = await start({
      handlers: {
        ...noop,
        $default: async () => {
          started();
          await sleep(400);
          done = true;
        },
      },
    });
    const client = await rawClient(gateway.wsUrl);
    client.socket.send('{"type":"input.text"}');
    await running;
    await gateway.close();
    gateway = undefined;
    expect(done).toBe(true);
  });

  it('a synchronous route past the integration timeout gets API Gateway\'s timeout message; its handler still runs to its end', async () => {
    let finished = false;
    gateway = await start({
      asyncRoutes: {},
      handlers: {
        ...noop,
        $default: async () => {
          await sleep(600);
          finished = true;
          return { statusCode: 200 };
        },
      },
    });
    const client = await rawClient(gateway.wsUrl);
    const sent = Date.now();
    client.socket.send('{"type":"input.text"}');
    await sleep(400);
    expect(client.frames).toHaveLength(1);
    expect(client.frames[0]!.data).toEqual({ message: 'Endpoint request timed out', connectionId: gateway.connectionIds()[0], requestId: expect.any(String) });
    expect(client.frames[0]!.at - sent).toBeGreaterThanOrEqual(190);
    expect(finished).toBe(false);
    await sleep(400);
    expect(finished).toBe(true);
    client.socket.close();
  });

  it('a synchronous route that answers in time sends nothing', async () => {
    gateway = await start({ asyncRoutes: {}, handlers: { ...noop, $default: async () => ({ statusCode: 200 }) } });
    const client = await rawClient(gateway.wsUrl);
    client.socket.send('{"type":"input.text"}');
    await sleep(400);
    expect(client.frames).toEqual([]);
    client.socket.close();
  });

  it('$connect stays synchronous: past the integration timeout the handshake is refused with 504', async () => {
    gateway = await start({
      handlers: {
        ...noop,
        $connect: async () => {
          await sleep(400);
          return { statusCode: 200 };
        },
        $default: async () => {},
      },
    });
    const status = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(gateway!.wsUrl);
      socket.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.once('open', () => reject(new Error('the handshake should have been refused')));
      socket.once('error', () => {});
    });
    expect(status).toBe(504);
    await expect(startLocalGateway({ handlers: { ...noop, $default: async () => {} }, asyncRoutes: { $connect: '{}' } })).rejects.toThrow(/\$connect/);
  });

  it('a template that does not render to JSON fails the integration with API Gateway\'s internal error, and the handler is not called', async () => {
    let called = false;
    gateway = await start({
      asyncRoutes: { $default: '{"body": "$input.body"}' },
      handlers: {
        ...noop,
        $default: async () => {
          called = true;
        },
      },
    });
    const client = await rawClient(gateway.wsUrl);
    client.socket.send('{"type":"x"}');
    await sleep(200);
    expect(called).toBe(false);
    expect(client.frames.map((f) => f.data.message)).toEqual(['Internal server error']);
    client.socket.close();
  });
});
