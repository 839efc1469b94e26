import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../../local/runtime';
import { sessionItems, startRuntime, TestClient } from './harness';

const KEY = 'test-key-0123456789';

describe('API keys (PARLEY_API_KEYS set)', () => {
  let runtime: LocalRuntime;
  beforeAll(async () => {
    runtime = await startRuntime({ apiKeys: [KEY, 'second-key-abcdef'] });
  });
  afterAll(async () => {
    await runtime?.close();
  });

  it('accepts a valid key in the query string at $connect', async () => {
    const client = await TestClient.connect(`${runtime.wsUrl}/?apiKey=${KEY}`);
    const { started } = await client.open();
    expect(started.resumed).toBe(false);
    client.close();
  });

  it('refuses the handshake with 401 for a wrong key in the query string', async () => {
    await expect(TestClient.connect(`${runtime.wsUrl}/?apiKey=wrong-key-000000`)).rejects.toThrow('401');
  });

  it('accepts a valid key in hello when the query string has none', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    client.send({ type: 'hello', version: '1', auth: { apiKey: 'second-key-abcdef' } });
    await client.next('hello.ack');
    client.close();
  });

  it('answers auth.required to a hello without a key, and closes', async () => {
    const before = await sessionItems(runtime);
    const client = await TestClient.connect(runtime.wsUrl);
    client.send({ type: 'hello', version: '1' });
    await expect(client.next('error')).resolves.toMatchObject({ code: 'auth.required' });
    await expect(client.closed).resolves.toMatchObject({ code: 1000 });
    expect(await sessionItems(runtime)).toEqual(before);
  });

  it('answers auth.invalid to a hello with a wrong key, and closes', async () => {
    const client = await TestClient.connect(runtime.wsUrl);
    client.send({ type: 'hello', version: '1', auth: { apiKey: 'not-a-valid-key' } });
    await expect(client.next('error')).resolves.toMatchObject({ code: 'auth.invalid' });
    await expect(client.closed).resolves.toMatchObject({ code: 1000 });
  });

  it('binds a session to its key: another key cannot resume it even with the token', async () => {
    const owner = await TestClient.connect(`${runtime.wsUrl}/?apiKey=${KEY}`);
    const { started } = await owner.open();
    owner.close();
    const other = await TestClient.connect(`${runtime.wsUrl}/?apiKey=second-key-abcdef`);
    other.send({ type: 'hello', version: '1' });
    await other.next('hello.ack');
    other.send({ type: 'session.start', sessionId: started.sessionId, resumeToken: started.resumeToken });
    await expect(other.next('error')).resolves.toMatchObject({ code: 'auth.invalid' });
    other.close();
  });
});
