import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ActionOutcome, TemplateContext } from '../../lib/actions/port';
import { webhookRunner } from '../../lib/actions/webhook';
import { loadDialogueMap, MESSAGE_KINDS, type DialogueMap } from '../../lib/flow/map';

/*
 * webhookRunner's `warm`: a GET fetched ahead on a partial transcript stands in for the turn's own
 * request of the same action and rendered URL within 10 s; nothing else is ever sent early.
 * A real HTTP server on 127.0.0.1 counts what it receives; each answer says which request it was.
 */

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

let server: Server;
let base: string;
let seen: Seen[] = [];
/** Requests not answered yet (the `/slow` route answers when the test says so). */
let held: Array<() => void> = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      const n = seen.length;
      const answer = () =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ n, method: req.method, url: req.url, user: req.headers['x-user'] ?? null }));
      if ((req.url ?? '').startsWith('/slow')) held.push(answer);
      // The first request to /flaky fails; every later one succeeds.
      else if ((req.url ?? '').startsWith('/down')) res.writeHead(503).end('down');
      else if ((req.url ?? '').startsWith('/flaky') && seen.filter((s) => s.url.startsWith('/flaky')).length === 1) res.writeHead(503).end('busy');
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seen = [];
  held = [];
});

afterEach(() => {
  vi.restoreAllMocks();
});

function mapWith(actions: Record<string, unknown>): DialogueMap {
  return loadDialogueMap({
    network: { allow: ['127.0.0.1'] },
    name: 'prefetch',
    language: 'en',
    initial_state: 'start',
    messages: Object.fromEntries(MESSAGE_KINDS.map((k) => [k, k])),
    intents: { yes: { examples: ['yes'] } },
    states: { start: { system_response: { playlist: [{ type: 'tts', text_template: 'Hi.' }] } } },
    actions,
  });
}

const ctx = (variables: Record<string, unknown> = {}, id = 's-1'): TemplateContext => ({ session: { variables, language: 'en', node: 'start', id } });

const action = (path: string, more: Record<string, unknown> = {}) => ({
  type: 'webhook',
  url: `${base}${path}`,
  method: 'GET',
  result_variable: 'result',
  retries: 0,
  ...more,
});

const resultOf = (o: ActionOutcome) => {
  expect(o.ok).toBe(true);
  return (o as { result: { n: number; method: string; url: string; user: string | null } }).result;
};

/** performance.now as the runner sees it, moved forward by `skew` ms on demand. */
function skewedClock() {
  const real = performance.now.bind(performance);
  let skew = 0;
  vi.spyOn(performance, 'now').mockImplementation(() => real() + skew);
  return { advance: (ms: number) => void (skew += ms) };
}

describe('webhookRunner.warm', () => {
  it('fetches a GET ahead, and the next run of the same request takes its result without a second request', async () => {
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await runner.warm!('order', ctx({ id: 42 }));
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['GET /orders/42']);

    const outcome = await runner.run('order', ctx({ id: 42 }));
    expect(seen).toHaveLength(1);
    expect(resultOf(outcome)).toMatchObject({ n: 1, url: '/orders/42' });
    // Recorded with the request, as a run of its own would be.
    expect(outcome.request).toEqual({ method: 'GET', url: `${base}/orders/42` });
    expect(outcome.attempts).toBe(1);
  });

  it('a prefetched result stands in once: the run after it asks again', async () => {
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await runner.warm!('order', ctx({ id: 1 }));
    expect(resultOf(await runner.run('order', ctx({ id: 1 }))).n).toBe(1);
    expect(resultOf(await runner.run('order', ctx({ id: 1 }))).n).toBe(2);
    expect(seen).toHaveLength(2);
  });

  it('warming the same request twice sends it once', async () => {
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await runner.warm!('order', ctx({ id: 5 }));
    await runner.warm!('order', ctx({ id: 5 }));
    expect(seen).toHaveLength(1);
    expect(resultOf(await runner.run('order', ctx({ id: 5 }))).n).toBe(1);
    expect(seen).toHaveLength(1);
  });

  it('a run arriving while the warm request is still in flight waits for it instead of sending another', async () => {
    const runner = webhookRunner(mapWith({ slow: action('/slow/{{ session.variables.id }}', { timeout_ms: 5000 }) }));
    const warming = runner.warm!('slow', ctx({ id: 9 }));
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const running = runner.run('slow', ctx({ id: 9 }));
    // Give a second request every chance to arrive.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen).toHaveLength(1);
    held.shift()!();
    const [, outcome] = await Promise.all([warming, running]);
    expect(resultOf(outcome)).toMatchObject({ n: 1, url: '/slow/9' });
    expect(seen).toHaveLength(1);
  });

  it('never sends anything but a GET early: a POST is requested only by its run', async () => {
    const runner = webhookRunner(
      mapWith({
        book: action('/book/{{ session.variables.id }}', { method: 'POST', body: '{"id": "{{ session.variables.id }}"}' }),
        put: action('/put/1', { method: 'PUT' }),
      }),
    );
    await runner.warm!('book', ctx({ id: 3 }));
    await runner.warm!('put', ctx());
    expect(seen).toEqual([]);
    const outcome = await runner.run('book', ctx({ id: 3 }));
    expect(resultOf(outcome)).toMatchObject({ n: 1, method: 'POST' });
    expect(seen.map((s) => s.method)).toEqual(['POST']);
  });

  it('a different rendered URL is requested anew', async () => {
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await runner.warm!('order', ctx({ id: 1 }));
    const outcome = await runner.run('order', ctx({ id: 2 }));
    expect(resultOf(outcome)).toMatchObject({ n: 2, url: '/orders/2' });
    expect(seen.map((s) => s.url)).toEqual(['/orders/1', '/orders/2']);
  });

  it('another action with the same URL does not take the prefetched result', async () => {
    const runner = webhookRunner(mapWith({ a: action('/same'), b: action('/same') }));
    await runner.warm!('a', ctx());
    expect(resultOf(await runner.run('b', ctx())).n).toBe(2);
    expect(seen).toHaveLength(2);
  });

  it('warming an unknown action or one with a missing variable sends nothing and does not throw', async () => {
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await expect(runner.warm!('nope', ctx())).resolves.toBeUndefined();
    await expect(runner.warm!('order', ctx({}))).resolves.toBeUndefined();
    expect(seen).toEqual([]);
  });

  it('a result fetched ahead is used up to 10 s later', async () => {
    const clock = skewedClock();
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await runner.warm!('order', ctx({ id: 7 }));
    clock.advance(9_900);
    expect(resultOf(await runner.run('order', ctx({ id: 7 }))).n).toBe(1);
    expect(seen).toHaveLength(1);
  });

  it('a result fetched ahead more than 10 s ago is not used: the run asks again', async () => {
    const clock = skewedClock();
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await runner.warm!('order', ctx({ id: 7 }));
    clock.advance(10_001);
    expect(resultOf(await runner.run('order', ctx({ id: 7 }))).n).toBe(2);
    expect(seen).toHaveLength(2);
  });

  it('an expired entry does not stop a new warm of the same request', async () => {
    const clock = skewedClock();
    const runner = webhookRunner(mapWith({ order: action('/orders/{{ session.variables.id }}') }));
    await runner.warm!('order', ctx({ id: 7 }));
    clock.advance(10_001);
    await runner.warm!('order', ctx({ id: 7 }));
    expect(seen).toHaveLength(2);
    expect(resultOf(await runner.run('order', ctx({ id: 7 }))).n).toBe(2);
    expect(seen).toHaveLength(2);
  });

  /*
   * BUG (lib/actions/webhook.ts, prefetchKey): the key is the action name and rendered URL only, but
   * the request also carries its rendered headers, which may hold a session's own credentials. The
   * runner is shared by every session of the host (lib/host/deps.ts), so a GET warmed for one user is
   * handed to another user's run of the same URL within 10 s, answered with the first user's
   * credentials, without a request of its own.
   */
  it('a request with other rendered headers (another user\'s credentials) is not answered with the prefetched result', async () => {
    const runner = webhookRunner(mapWith({ me: action('/me', { headers: { 'x-user': '{{ session.variables.user }}' } }) }));
    await runner.warm!('me', ctx({ user: 'alice' }, 's-alice'));
    const outcome = await runner.run('me', ctx({ user: 'bob' }, 's-bob'));
    expect(resultOf(outcome).user).toBe('bob');
    expect(seen.map((s) => s.headers['x-user'])).toEqual(['alice', 'bob']);
  });

  it('a prefetch that failed does not stand in for the turn: the turn sends its own request', async () => {
    const runner = webhookRunner(mapWith({ flaky: action('/flaky') }));
    await runner.warm!('flaky', ctx());
    const outcome = await runner.run('flaky', ctx());
    expect(outcome.ok).toBe(true);
    expect(seen.map((s) => s.url)).toEqual(['/flaky', '/flaky']);
  });

  it('a warm makes one attempt, whatever the action\'s retries: the turn\'s own run retries as configured', async () => {
    const runner = webhookRunner(mapWith({ down: action('/down', { retries: 1 }) }));
    await runner.warm!('down', ctx());
    expect(seen).toHaveLength(1);
    const outcome = await runner.run('down', ctx());
    expect(outcome.ok).toBe(false);
    expect(outcome.attempts).toBe(2);
    expect(seen).toHaveLength(3);
  });
});
