import { ApiGatewayManagementApiClient, GetConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTurnDeps } from '../../lib/host/deps';
import { silentLog } from '../../lib/observability/log';
import { LIMITS } from '../../lib/protocol/v1';
import { handleClientMessage } from '../../lib/session/dispatch';
import { ApiGatewaySender } from '../../lib/transport/sender';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/dynamodb';
import type { LocalRuntime } from '../../local/runtime';
import { recordFault } from '../support/fault-table';
import { sampleMap, sampleModel, startRuntime, storeOf, TestClient } from './harness';

/** The sender against the local gateway's @connections API, through the real AWS SDK client. */
describe('sending through @connections', () => {
  let runtime: LocalRuntime;
  let management: ApiGatewayManagementApiClient;

  beforeAll(async () => {
    runtime = await startRuntime();
    management = new ApiGatewayManagementApiClient({ endpoint: runtime.callbackUrl, region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS });
  });
  afterAll(async () => {
    management?.destroy();
    await runtime?.close();
  });

  it('splits a reply larger than a frame into deltas the client joins back', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const connectionId = await connectionIdOf(client);
    const text = 'Ünïcödé ☕ "quoted" \\ '.repeat(3000);
    const sender = new ApiGatewaySender(management, connectionId, () => crypto.randomUUID());
    await sender.send({ type: 'response.text.delta', turnId: 't', text });
    await sender.send({ type: 'response.text.done', turnId: 't', text });
    const deltas = await client.until('response.text.done');
    const done = deltas.pop();
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((d) => (d.type === 'response.text.delta' ? d.text : '')).join('')).toBe(text);
    expect(done).toEqual({ type: 'response.text.done', turnId: 't', text });
    expect(sender.gone).toBe(false);
    client.close();
  });

  it('stops sending on 410 Gone without failing', async () => {
    const sender = new ApiGatewaySender(management, 'no-such-connection=', () => crypto.randomUUID());
    await sender.send({ type: 'turn.started', turnId: 't' });
    await sender.send({ type: 'turn.started', turnId: 't' });
    expect(sender.gone).toBe(true);
    expect(sender.failure).toBeUndefined();
    recordFault({ area: 'client', fault: 'posting to a connection that is gone (410 Gone)', outcome: `sending stops without an error (gone: ${sender.gone}, failure: ${sender.failure === undefined ? 'none' : 'set'})` });
  });

  it('commits the turn when the client is gone: a later resume finds it', async () => {
    // A connection whose socket vanished: its record is there, every post answers 410.
    const deps = buildTurnDeps({ dynamo: runtime.dynamo.client, tableName: runtime.tableName, apiKeys: [], sessionTtlHours: 1, map: sampleMap(), nluModel: await sampleModel(), log: silentLog });
    const connectionId = 'vanished-client=';
    await deps.connections.create({ connectionId, phase: 'ready', principal: 'public', connectedAt: new Date().toISOString() });
    const sender = new ApiGatewaySender(management, connectionId, () => crypto.randomUUID());
    const message = (body: object) => ({ connectionId, sender, receivedAtMs: performance.now(), body: JSON.stringify(body) });

    await handleClientMessage(deps, message({ type: 'session.start' }));
    const { sessionId } = (await deps.connections.get(connectionId))!;
    await handleClientMessage(deps, message({ type: 'input.text', turnId: crypto.randomUUID(), text: 'a large espresso' }));

    expect(sender.gone).toBe(true);
    const store = storeOf(runtime, 60);
    const records = await store.listTurns(sessionId!);
    expect(records.map((r) => r.checkpoint.currentNode)).toEqual(['welcome', 'confirm']);
    recordFault({ area: 'client', fault: 'a whole session on a connection whose client is gone (every post 410)', outcome: `every turn still commits (${records.length} records in the table)` });
  });

  it('frames every posted message within the frame limit', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    const connectionId = await connectionIdOf(client);
    const sizes: number[] = [];
    client.socket.on('message', (data: Buffer) => sizes.push(data.length));
    const sender = new ApiGatewaySender(management, connectionId, () => crypto.randomUUID());
    await sender.send({ type: 'error', code: 'server.internal', message: 'x'.repeat(100_000) });
    const event = await client.next('error');
    expect(event.message).toHaveLength(100_000);
    expect(sizes.length).toBeGreaterThan(3);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(LIMITS.frameBytes);
    client.close();
  });

  /** The gateway does not tell clients their id (neither does AWS): the newest open one is this client's. */
  async function connectionIdOf(client: TestClient): Promise<string> {
    client.send({ type: 'hello', version: '1' });
    await client.next('hello.ack');
    const id = runtime.connectionIds().at(-1)!;
    await expect(management.send(new GetConnectionCommand({ ConnectionId: id }))).resolves.toHaveProperty('ConnectedAt');
    return id;
  }
});
