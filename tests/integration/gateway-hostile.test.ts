import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalGateway, type LocalGateway } from '../../local/gateway';
import { recordFault } from '../support/fault-table';
import { TestClient } from './harness';

/** The local gateway survives what a hostile or broken client can send, as API Gateway does. */
describe('local gateway against hostile clients', () => {
  let gateway: LocalGateway | undefined;
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);

  afterEach(async () => {
    process.off('unhandledRejection', onUnhandled);
    process.off('uncaughtException', onUnhandled);
    await gateway?.close();
    gateway = undefined;
  });

  const start = async () => {
    // Per gateway: a closing gateway of an earlier test may still report its own disconnects.
    const disconnected: string[] = [];
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    gateway = await startLocalGateway({
      handlers: {
        // $connect takes a while, as a DynamoDB write does: the window a reset falls into.
        $connect: async () => {
          await new Promise((resolve) => setTimeout(resolve, 100));
          return { statusCode: 200 };
        },
        $disconnect: async (event) => void disconnected.push(event.requestContext.connectionId),
        $default: async () => ({ statusCode: 200 }),
      },
    });
    return { port: Number(new URL(gateway.httpUrl).port), disconnected };
  };

  const rawUpgrade = (port: number, path: string, after: (socket: ReturnType<typeof connect>) => void) =>
    new Promise<void>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
        after(socket);
      });
      socket.on('error', () => {});
      socket.resume(); // read the answer, or the socket never sees the server close it
      socket.on('close', () => resolve());
    });

  it('refuses an upgrade whose URL does not parse, and keeps serving', async () => {
    const { port } = await start();
    await rawUpgrade(port, 'http://[bad', () => {});
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    client.close();
    expect(unhandled).toEqual([]);
    recordFault({ area: 'gateway', fault: 'a WebSocket upgrade whose URL does not parse', outcome: `refused; ${unhandled.length} unhandled errors; the next client connects` });
  });

  it('survives a client that resets the connection while $connect runs', async () => {
    const { port, disconnected } = await start();
    await rawUpgrade(port, '/', (socket) => setTimeout(() => socket.resetAndDestroy(), 20));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(unhandled).toEqual([]);
    // The connection $connect recorded is forgotten again, as API Gateway sends $disconnect.
    expect(disconnected).toHaveLength(1);
    expect(gateway!.connectionIds()).toEqual([]);
    const client = await TestClient.connect(`ws://127.0.0.1:${port}/`);
    client.close();
    recordFault({ area: 'gateway', fault: 'a client that resets the connection while $connect runs', outcome: `${unhandled.length} unhandled errors; $disconnect sent ${disconnected.length} time; no connection left` });
  });

  it('routes message types named like Object.prototype members to $default', async () => {
    const seen: string[] = [];
    process.on('unhandledRejection', onUnhandled);
    gateway = await startLocalGateway({
      handlers: {
        $connect: async () => ({ statusCode: 200 }),
        $disconnect: async () => {},
        $default: async (event) => {
          seen.push(event.requestContext.routeKey);
          return { statusCode: 200 };
        },
      },
    });
    const client = await TestClient.connect(gateway.wsUrl);
    client.sendRaw('{"type":"constructor"}');
    client.sendRaw('{"type":"hasOwnProperty"}');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen).toEqual(['$default', '$default']);
    client.close();
    recordFault({ area: 'gateway', fault: 'message types named like Object.prototype members (constructor, hasOwnProperty)', outcome: `routed to ${[...new Set(seen)].join(', ')}` });
  });
});
