import { GoneException, type ApiGatewayManagementApiClient, type PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { describe, expect, it } from 'vitest';
import type { ServerEvent } from '../../lib/protocol/v1';
import { Outbox } from '../../lib/transport/outbox';
import { ApiGatewaySender, handOver } from '../../lib/transport/sender';

/** A management client that records each post and answers after `delayMs` (or with `fail`). */
function fakeManagement(options: { delayMs?: (n: number) => number; fail?: (n: number) => unknown } = {}) {
  const posted: string[] = [];
  let n = 0;
  const client = {
    async send(command: PostToConnectionCommand) {
      const i = n++;
      await new Promise((resolve) => setTimeout(resolve, options.delayMs?.(i) ?? 0));
      const failure = options.fail?.(i);
      if (failure) throw failure;
      posted.push(new TextDecoder().decode(command.input.Data as Uint8Array));
      return {};
    },
  } as unknown as ApiGatewayManagementApiClient;
  return { client, posted };
}

const ids = () => crypto.randomUUID();
const done = (text: string): ServerEvent => ({ type: 'response.text.done', turnId: 't', text });

describe('the sender counts the messages API Gateway bills', () => {
  it('counts one message per posted payload, an event too large for a frame as its parts', async () => {
    const { client, posted } = fakeManagement();
    const sender = new ApiGatewaySender(client, 'c1', ids);
    await sender.send(done('hello'));
    expect(sender.billedMessages).toBe(1);
    // 80,000 characters do not fit one 32 KB frame: the event travels as event.part pieces, each billed.
    await sender.sendBatch([done('a'), done('x'.repeat(80_000)), done('b')]);
    expect(posted.length).toBeGreaterThan(3);
    expect(sender.billedMessages).toBe(posted.length);
  });

  it('counts what it was given when it is given, before the post; nothing after the client is gone', async () => {
    const { client } = fakeManagement({ delayMs: () => 20, fail: (i) => (i === 1 ? new GoneException({ message: 'gone', $metadata: {} }) : undefined) });
    const sender = new ApiGatewaySender(client, 'c1', ids);
    const first = sender.send(done('one'));
    expect(sender.billedMessages).toBe(1);
    await first;
    await sender.send(done('two')); // 410: the client left
    expect(sender.gone).toBe(true);
    await sender.send(done('three'));
    expect(sender.billedMessages).toBe(2);
  });
});

describe('handing the outbox over: counted at once, posted in order', () => {
  it('lets a turn know every message before the last burst is posted, and keeps the order on the wire', async () => {
    // The first post is slow: before, the outbox waited for it before even framing the next batch.
    const { client, posted } = fakeManagement({ delayMs: (i) => (i === 0 ? 300 : 0) });
    const sender = new ApiGatewaySender(client, 'c1', ids);
    const wire = handOver(sender);
    const outbox = new Outbox(wire);
    outbox.push(done('first'));
    await new Promise((resolve) => setImmediate(resolve)); // the first burst goes out
    outbox.push(done('second'));
    outbox.push(done('third'));
    await outbox.drain();
    // Drained without waiting for the slow post: nothing is on the wire yet, and both bursts are counted.
    expect(posted).toEqual([]);
    expect(sender.billedMessages).toBe(2);
    await wire.posted();
    expect(posted.map((p) => JSON.parse(p))).toEqual([done('first'), [done('second'), done('third')]]);
    // A send after the hand-over (turn.completed) still follows everything handed over.
    await sender.send(done('after'));
    expect(JSON.parse(posted.at(-1)!)).toEqual(done('after'));
  });

  it('absorbs a failing sender as the outbox did, and waits for a slow one', async () => {
    let release!: () => void;
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const calls: string[] = [];
    const wire = handOver({
      send: async () => {},
      sendBatch: async (events) => {
        calls.push(events.map((e) => e.type).join());
        if (calls.length === 1) throw new Error('socket broke');
        await stuck;
      },
      close: async () => {},
      gone: false,
      failure: undefined,
    });
    await expect(wire.sendBatch([done('a')])).resolves.toBeUndefined();
    await expect(wire.sendBatch([done('b')])).resolves.toBeUndefined();
    let posted = false;
    const all = wire.posted().then(() => (posted = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(posted).toBe(false);
    release();
    await all;
    expect(calls).toEqual(['response.text.done', 'response.text.done']);
    expect(wire.billedMessages).toBeUndefined(); // a test double does not meter
  });
});
