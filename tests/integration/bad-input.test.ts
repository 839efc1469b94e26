import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LIMITS } from '../../lib/protocol/v1';
import type { LocalRuntime } from '../../local/runtime';
import { recordFault } from '../support/fault-table';
import { sessionItems, startRuntime, tableSnapshot, TestClient } from './harness';

/**
 * Each bad input gets its typed error and leaves DynamoDB exactly as it was (compared item by item,
 * connection records included, except where the test says otherwise).
 */
describe('bad input', () => {
  let runtime: LocalRuntime;
  let client: TestClient;

  beforeAll(async () => {
    runtime = await startRuntime();
  });
  afterAll(async () => {
    await runtime?.close();
  });
  beforeEach(async () => {
    client = await TestClient.connect(runtime.wsUrl);
    return () => client.close();
  });

  const unchanged = async (act: () => Promise<void>) => {
    const before = await tableSnapshot(runtime);
    await act();
    expect(await tableSnapshot(runtime)).toEqual(before);
  };

  it('invalid JSON: protocol.invalid_json', async () => {
    await client.open();
    await unchanged(async () => {
      client.sendRaw('{"type": "input.text", ');
      await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.invalid_json' });
    });
    recordFault({ area: 'protocol', fault: 'a message that is not JSON', outcome: '`protocol.invalid_json`; the table unchanged' });
  });

  it('unknown message type: protocol.invalid_message', async () => {
    await client.open();
    await unchanged(async () => {
      client.send({ type: 'input.video', turnId: crypto.randomUUID() });
      await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.invalid_message' });
    });
    recordFault({ area: 'protocol', fault: 'an unknown message type (input.video)', outcome: '`protocol.invalid_message`; the table unchanged' });
  });

  it('a malformed input.text: protocol.invalid_message naming the field and echoing the turnId', async () => {
    await client.open();
    const turnId = crypto.randomUUID();
    await unchanged(async () => {
      client.send({ type: 'input.text', turnId, text: '   ' });
      const error = await client.next('error');
      expect(error).toMatchObject({ code: 'protocol.invalid_message', turnId });
      expect(error.message).toContain('text');
      recordFault({ area: 'protocol', fault: 'input.text whose text is blank', outcome: `\`${error.code}\` naming the field, with the turnId; the table unchanged` });
    });
  });

  it('anything before hello: protocol.order', async () => {
    await unchanged(async () => {
      client.send({ type: 'session.start' });
      await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.order' });
    });
    recordFault({ area: 'protocol', fault: 'session.start before hello', outcome: '`protocol.order`; the table unchanged' });
  });

  it('input before session.start: protocol.order', async () => {
    client.send({ type: 'hello', version: '1' });
    await client.next('hello.ack');
    await unchanged(async () => {
      client.send({ type: 'input.text', turnId: crypto.randomUUID(), text: 'coffee' });
      await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.order' });
    });
    recordFault({ area: 'protocol', fault: 'input.text before session.start', outcome: '`protocol.order`; the table unchanged' });
  });

  it('a second hello and a second session.start: protocol.order', async () => {
    await client.open();
    await unchanged(async () => {
      client.send({ type: 'hello', version: '1' });
      await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.order' });
      client.send({ type: 'session.start' });
      await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.order' });
    });
    recordFault({ area: 'protocol', fault: 'a second hello, then a second session.start', outcome: '`protocol.order` for each; the table unchanged' });
  });

  it('a message over the limit: protocol.too_large', async () => {
    await client.open();
    await unchanged(async () => {
      client.send({ type: 'input.text', turnId: crypto.randomUUID(), text: 'a'.repeat(LIMITS.clientMessageBytes) });
      await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.too_large' });
    });
    recordFault({ area: 'protocol', fault: 'a message over 16 KB (in one frame)', outcome: '`protocol.too_large`; the table unchanged' });
  });

  it('an unsupported protocol version: protocol.version_unsupported, then the server closes', async () => {
    client.send({ type: 'hello', version: '2' });
    await expect(client.next('error')).resolves.toMatchObject({ code: 'protocol.version_unsupported' });
    await expect(client.closed).resolves.toMatchObject({ code: 1000 });
    recordFault({ area: 'protocol', fault: 'hello with protocol version 2', outcome: `\`protocol.version_unsupported\`, then the server closes the connection (${(await client.closed).code})` });
  });

  it('a frame over 32 KB closes the connection with 1009, as API Gateway does', async () => {
    await client.open();
    const before = await sessionItems(runtime);
    client.sendRaw(JSON.stringify({ type: 'input.text', turnId: crypto.randomUUID(), text: 'a'.repeat(LIMITS.frameBytes) }));
    await expect(client.closed).resolves.toMatchObject({ code: 1009 });
    // The connection record goes with the connection ($disconnect); the session is untouched.
    expect(await sessionItems(runtime)).toEqual(before);
    recordFault({ area: 'gateway', fault: 'a frame over 32 KB', outcome: `the connection closes with ${(await client.closed).code}, as API Gateway does; the session untouched` });
  });

  it('a binary frame closes the connection with 1003 (unsupported data)', async () => {
    await client.open();
    client.sendRaw(Buffer.from('{"type":"session.stop"}'), { binary: true });
    await expect(client.closed).resolves.toMatchObject({ code: 1003 });
    recordFault({ area: 'gateway', fault: 'a binary frame', outcome: `the connection closes with ${(await client.closed).code} (unsupported data)` });
  });
});
