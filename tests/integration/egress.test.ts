import { afterEach, describe, expect, it } from 'vitest';
import { loadDialogueMap } from '../../lib/flow/map';
import { memoryLog } from '../../lib/observability/log';
import type { LocalRuntime } from '../../local/runtime';
import { sampleMap, sampleModel, startRuntime, storeOf, TestClient, textOf } from './harness';

/*
 * The address guard end to end: the sample bot places its order with the demo kitchen, which the
 * local runtime serves on 127.0.0.1. The sample map allows loopback explicitly; the same map without
 * its allowlist cannot reach the kitchen.
 */

let runtime: LocalRuntime | undefined;
afterEach(async () => {
  await runtime?.close();
  runtime = undefined;
});

async function order(client: TestClient) {
  await client.open();
  await client.say('a large latte with oat milk');
  return client.say('yes please');
}

describe('webhooks and the network allowlist', () => {
  it('the sample map names loopback, so its order reaches the local demo kitchen', async () => {
    expect(sampleMap().network.allow).toEqual(expect.arrayContaining(['127.0.0.1', 'localhost']));
    runtime = await startRuntime();
    const client = await TestClient.connect(runtime.wsUrl);
    expect(textOf(await order(client))).toMatch(/^Your order number is P-\d+, it will be ready in 7 minutes/);
    client.close();
  });

  it('without the allowlist the kitchen on 127.0.0.1 is out of reach: action_failed, blocked address, no request', async () => {
    const { network: _network, ...rest } = sampleMap();
    const map = loadDialogueMap(rest);
    expect(map.network.allow).toEqual([]);
    const log = memoryLog();
    runtime = await startRuntime({ map, nluModel: await sampleModel(), log });
    const client = await TestClient.connect(runtime.wsUrl);
    const events = await order(client);

    // The map's action_failed message, and the turn goes on.
    expect(textOf(events)).toContain(typeof map.messages.action_failed === 'string' ? map.messages.action_failed : map.messages.action_failed.en!);
    expect(events.at(-1)).toMatchObject({ type: 'turn.completed' });
    const store = storeOf(runtime);
    const head = await store.loadHead(client.sessionId!);
    const action = head!.events.find((e) => e.type === 'action');
    // Refused before any connection (attempts 0), and never retried although the action allows one retry.
    expect(action).toMatchObject({ name: 'place_order', ok: false, kind: 'action_failed', attempts: 0, detail: 'blocked address: 127.0.0.1 (loopback)' });
    expect(log.lines.filter((l) => l.message === 'webhook blocked')).toEqual([expect.objectContaining({ level: 'warn', action: 'place_order', host: new URL(runtime.httpUrl).host })]);
    expect(log.lines.filter((l) => l.message === 'webhook attempt failed')).toEqual([]);
    client.close();
  });

  it('a map whose allowlist is not a host, address or range does not load', () => {
    expect(() => loadDialogueMap({ ...sampleMap(), network: { allow: ['127.0.0.1/40'] } })).toThrow(/\$\.network\.allow\.0: a host name, an IP address or a range/);
    expect(() => loadDialogueMap({ ...sampleMap(), network: { allow: [], deny: [] } })).toThrow(/network/);
  });
});
