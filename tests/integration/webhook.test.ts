import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { TemplateContext } from '../../lib/actions/port';
import { MAX_RESULT_BYTES, webhookRunner } from '../../lib/actions/webhook';
import { loadDialogueMap, MESSAGE_KINDS, type DialogueMap } from '../../lib/flow/map';
import { memoryLog } from '../../lib/observability/log';
import type { ActionOutcome } from '../../lib/actions/port';
import { recordFault } from '../support/fault-table';

/** An action's outcome as the fault table shows it (the detail only when asked: some carry ports). */
const shown = (o: ActionOutcome, detail = true) =>
  `${o.ok ? 'ok' : `\`${o.kind}\``} after ${o.attempts} attempt${o.attempts === 1 ? '' : 's'}${!o.ok && detail ? ` (${o.detail})` : ''}`;

/*
 * A real HTTP server on 127.0.0.1: each path answers its own way and every request is recorded as
 * the server saw it.
 */

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const SECRET = 'sk-live-0123456789';
let server: Server;
let base: string;
let seen: Seen[] = [];
const hits = (path: string) => seen.filter((s) => s.url.split('?')[0] === path).length;

type Handler = (req: IncomingMessage, res: ServerResponse, count: number) => void;
const json = (res: ServerResponse, status: number, value: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value));

const routes: Record<string, Handler> = {
  '/ok': (_req, res) => json(res, 200, { price: 4.2, items: ['latte'] }),
  '/orders/*': (_req, res) => json(res, 200, { price: 4.2, items: ['latte'] }),
  '/500': (_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('database\n  exploded'),
  '/404': (_req, res) => json(res, 404, { error: 'no such order' }),
  '/401-echo': (req, res) => res.writeHead(401).end(`bad token ${(req.headers.authorization ?? '').slice('Bearer '.length)} in "${req.headers.authorization}"`),
  '/429-then-ok': (_req, res, n) => (n === 1 ? res.writeHead(429).end() : json(res, 200, { ok: true })),
  '/503-then-ok': (_req, res, n) => (n === 1 ? res.writeHead(503).end() : json(res, 200, { attempt: n })),
  '/never': () => {}, // accepts the request and never answers
  '/bad-json': (_req, res) => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end('{"price": 4.2,'),
  '/text': (_req, res) => res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('Table 7 is booked.'),
  '/no-type': (req, res) => {
    res.removeHeader('content-type');
    res.writeHead(200).end(req.headers['x-answer'] === 'json' ? '{"a":1}' : 'plain words');
  },
  '/204': (_req, res) => res.writeHead(204).end(),
  '/echo': (req, res) => json(res, 201, { method: req.method }),
  '/huge': (_req, res) => json(res, 200, { receipt: 'x'.repeat(600 * 1024) }),
};

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const path = (req.url ?? '').split('?')[0]!;
      const route = routes[path] ?? routes[path.replace(/\/[^/]*$/, '/*')];
      if (!route) return void res.writeHead(418).end();
      route(req, res, hits(path));
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
});

/** A map with these actions; its allowlist names loopback (the test server), unless given another. */
function mapWith(actions: Record<string, unknown>, network: { allow: string[] } = { allow: ['127.0.0.1'] }): DialogueMap {
  return loadDialogueMap({
    network,
    name: 'webhooks',
    language: 'en',
    initial_state: 'start',
    messages: Object.fromEntries(MESSAGE_KINDS.map((k) => [k, k])),
    intents: { yes: { examples: ['yes'] } },
    states: { start: { system_response: { playlist: [{ type: 'tts', text_template: 'Hi.' }] } } },
    actions,
  });
}

const ctx = (variables: Record<string, unknown> = {}): TemplateContext => ({ session: { variables, language: 'en', node: 'start', id: 's-1' } });

/** A webhook action (with a secret header, which must never show in logs or outcomes). */
const action = (url: string, more: Record<string, unknown> = {}) => ({
  type: 'webhook',
  url,
  headers: { authorization: `Bearer ${SECRET}` },
  result_variable: 'result',
  ...more,
});

/** Runs one action with a fake sleep (recording the backoff) and an in-memory log. */
async function run(def: Record<string, unknown>, variables: Record<string, unknown> = {}) {
  const log = memoryLog();
  const sleeps: number[] = [];
  const runner = webhookRunner(mapWith({ act: def }), {
    log,
    sleep: async (ms) => void sleeps.push(ms),
  });
  const outcome = await runner.run('act', ctx(variables));
  // Headers are never logged, nor quoted in an outcome.
  expect(JSON.stringify(log.lines)).not.toContain(SECRET);
  expect(JSON.stringify(outcome)).not.toContain(SECRET);
  return { outcome, log: log.lines, sleeps };
}

describe('webhookRunner against a real HTTP server', () => {
  it('renders and sends a request as the server sees it (escaping included)', async () => {
    const note = 'say "hi" & \\bye\\\nnow é';
    const runner = webhookRunner(
      mapWith({
        order: {
          type: 'webhook',
          method: 'PUT',
          url: `${base}/orders/{{ session.variables.order_id }}?note={{ session.variables.note }}&lang={{ session.language }}`,
          headers: { authorization: `Bearer ${SECRET}`, 'x-session': '{{ session.id }}', 'x-size': '{{ session.variables.size }} cup' },
          body: '{"size": "{{ session.variables.size }}", "note": "{{ session.variables.note }}", "qty": {{ session.variables.qty }}, "extras": "{{ session.variables.extras }}"}',
          result_variable: 'order',
        },
      }),
    );
    const outcome = await runner.run('order', ctx({ order_id: 'A/7 b', note, size: 'large', qty: 2, extras: ['oat', 'vanilla'] }));

    expect(outcome).toMatchObject({ ok: true, result: { price: 4.2, items: ['latte'] }, attempts: 1 });
    expect(outcome.ms).toBeGreaterThanOrEqual(0);
    expect(seen).toHaveLength(1);
    const req = seen[0]!;
    expect(req.method).toBe('PUT');
    expect(req.url).toBe(`/orders/A%2F7%20b?note=${encodeURIComponent(note)}&lang=en`);
    expect(new URL(req.url, base).searchParams.get('note')).toBe(note);
    expect(req.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(req.headers['x-session']).toBe('s-1');
    expect(req.headers['x-size']).toBe('large cup');
    expect(req.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req.body)).toEqual({ size: 'large', note, qty: 2, extras: '["oat","vanilla"]' });
  });

  it('resolves a relative URL against the base URL (PARLEY_ACTIONS_BASE_URL), read when the action runs', async () => {
    let root: string | undefined;
    const runner = webhookRunner(mapWith({ rel: action('/orders/{{ session.variables.id }}?x=1') }), { baseUrl: () => root });
    // Without a base a relative URL cannot go anywhere.
    expect(await runner.run('rel', ctx({ id: 'a b' }))).toMatchObject({ ok: false, kind: 'action_failed', attempts: 0, detail: 'a relative url needs a base url (PARLEY_ACTIONS_BASE_URL)' });
    root = `${base}/ignored-path`;
    const outcome = await runner.run('rel', ctx({ id: 'a b' }));
    expect(outcome).toMatchObject({ ok: true, result: { price: 4.2 }, attempts: 1 });
    expect(seen.map((s) => s.url)).toEqual(['/orders/a%20b?x=1']);
  });

  it('an injected fetch gets the absolute URL, after the address check', async () => {
    const asked: unknown[] = [];
    const runner = webhookRunner(mapWith({ rel: action('/orders/1') }), {
      baseUrl: base,
      fetch: (url, init) => {
        asked.push(url);
        return fetch(url, init);
      },
    });
    expect(await runner.run('rel', ctx())).toMatchObject({ ok: true, attempts: 1 });
    expect(asked).toEqual([`${base}/orders/1`]);
    const blocked = webhookRunner(mapWith({ rel: action('/orders/1') }, { allow: [] }), { baseUrl: base, fetch: () => Promise.reject(new Error('must not be called')) });
    expect(await blocked.run('rel', ctx())).toMatchObject({ ok: false, detail: expect.stringMatching(/^blocked address/) });
  });

  it('lets a header override the JSON content type', async () => {
    const { outcome } = await run(action(`${base}/echo`, { headers: { 'Content-Type': 'text/plain' }, body: 'size={{ session.variables.size }}' }), { size: 'L' });
    expect(outcome).toMatchObject({ ok: true, result: { method: 'POST' }, attempts: 1 });
    expect(seen[0]!.headers['content-type']).toBe('text/plain');
    expect(seen[0]!.body).toBe('size=L');
  });

  it('sends no body and no content type for a GET', async () => {
    const { outcome } = await run(action(`${base}/echo?x={{ session.variables.x }}`, { method: 'GET' }), { x: 1 });
    expect(outcome).toMatchObject({ ok: true, result: { method: 'GET' } });
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/echo?x=1', body: '' });
    expect(seen[0]!.headers['content-type']).toBeUndefined();
  });

  it('500: fails after retries + 1 attempts with a backoff, one warn line per attempt', async () => {
    const { outcome, log, sleeps } = await run(action(`${base}/500`, { retries: 2 }));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 3 });
    expect(outcome.ok === false && outcome.detail).toBe('HTTP 500 Internal Server Error: database exploded');
    expect(hits('/500')).toBe(3);
    expect(sleeps).toEqual([100, 200]);
    expect(log.map((l) => [l.level, l.message, l.attempt, l.status, l.willRetry])).toEqual([
      ['warn', 'webhook attempt failed', 1, 500, true],
      ['warn', 'webhook attempt failed', 2, 500, true],
      ['warn', 'webhook attempt failed', 3, 500, false],
    ]);
    recordFault({ area: 'webhook', fault: 'the server answers 500 every time (retries 2)', outcome: `${shown(outcome)}, with a backoff of ${sleeps.join(' and ')} ms` });
  });

  it('404: fails at once, no retry', async () => {
    const { outcome, sleeps, log } = await run(action(`${base}/404`, { retries: 3 }));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 1 });
    expect(outcome.ok === false && outcome.detail).toBe('HTTP 404 Not Found: {"error":"no such order"}');
    expect(hits('/404')).toBe(1);
    expect(sleeps).toEqual([]);
    expect(log).toHaveLength(1);
    recordFault({ area: 'webhook', fault: 'the server answers 404 (retries 3)', outcome: `${shown(outcome)}: a 4xx is not retried` });
  });

  it('a failure detail never quotes a header value a server echoes', async () => {
    const { outcome } = await run(action(`${base}/401-echo`));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 1, detail: 'HTTP 401 Unauthorized: bad token *** in "***"' });
  });

  it('a server that fails once then succeeds: ok with attempts 2 (5xx and 429 alike)', async () => {
    const a = await run(action(`${base}/503-then-ok`, { retries: 1 }));
    expect(a.outcome).toMatchObject({ ok: true, result: { attempt: 2 }, attempts: 2 });
    expect(a.sleeps).toEqual([100]);
    const b = await run(action(`${base}/429-then-ok`, { retries: 1 }));
    expect(b.outcome).toMatchObject({ ok: true, result: { ok: true }, attempts: 2 });
  });

  it('without retries a 5xx fails on the first attempt', async () => {
    const { outcome } = await run(action(`${base}/503-then-ok`));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 1 });
    expect(outcome.ok === false && outcome.detail).toBe('HTTP 503 Service Unavailable');
  });

  it('a server that never answers: action_timeout after each attempt times out', async () => {
    const log = memoryLog();
    const runner = webhookRunner(mapWith({ slow: action(`${base}/never`, { timeout_ms: 150, retries: 1 }) }), { log }); // real sleep
    const outcome = await runner.run('slow', ctx());
    expect(outcome).toMatchObject({ ok: false, kind: 'action_timeout', attempts: 2 });
    expect(outcome.ok === false && outcome.detail).toBe('no answer within 150 ms');
    // Two timeouts and a 100 ms backoff: at least ~400 ms, and nowhere near "hung".
    expect(outcome.ms).toBeGreaterThanOrEqual(380);
    expect(outcome.ms).toBeLessThan(3000);
    expect(hits('/never')).toBe(2);
    expect(log.lines.map((l) => l.kind)).toEqual(['action_timeout', 'action_timeout']);
    recordFault({ area: 'webhook', fault: 'the server never answers (timeout_ms 150, retries 1)', outcome: shown(outcome) });
  });

  it('a 2xx that says JSON but does not parse fails, without retry', async () => {
    const { outcome } = await run(action(`${base}/bad-json`, { retries: 2 }));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', detail: 'HTTP 200 with an invalid JSON body', attempts: 1 });
    recordFault({ area: 'webhook', fault: 'a 2xx that says JSON but does not parse (retries 2)', outcome: `${shown(outcome)}, not retried` });
  });

  it('a non-JSON 2xx gives its text; an empty 204 gives null', async () => {
    expect((await run(action(`${base}/text`))).outcome).toMatchObject({ ok: true, result: 'Table 7 is booked.', attempts: 1 });
    expect((await run(action(`${base}/204`, { method: 'DELETE' }))).outcome).toMatchObject({ ok: true, result: null, attempts: 1 });
  });

  it('a 2xx without a content type is JSON when it parses, text otherwise', async () => {
    const json = await run(action(`${base}/no-type`, { headers: { 'x-answer': 'json' } }));
    expect(json.outcome).toMatchObject({ ok: true, result: { a: 1 } });
    const text = await run(action(`${base}/no-type`));
    expect(text.outcome).toMatchObject({ ok: true, result: 'plain words' });
  });

  it('connection refused: action_failed after the retries', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const { outcome, sleeps } = await run(action(`http://127.0.0.1:${port}/x`, { retries: 1 }));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 2 });
    expect(outcome.ok === false && outcome.detail).toBe('network error: ECONNREFUSED');
    expect(sleeps).toEqual([100]);
    recordFault({ area: 'webhook', fault: 'connection refused (retries 1)', outcome: shown(outcome) });
  });
});

describe('webhookRunner: results that would not fit the checkpoint', () => {
  it('fails a success whose body is larger than MAX_RESULT_BYTES, without retrying it', async () => {
    const { outcome } = await run(action(`${base}/huge`, { retries: 2 }));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 1 });
    expect(outcome.ok ? '' : outcome.detail).toContain(`at most ${MAX_RESULT_BYTES}`);
    recordFault({ area: 'webhook', fault: `a 2xx body larger than ${MAX_RESULT_BYTES} bytes (retries 2)`, outcome: `${shown(outcome, false)}, not retried` });
  });
});

describe('webhookRunner: failures before any request', () => {
  it('missing variables fail with their names, nothing is sent', async () => {
    const { outcome, log } = await run(
      action(`${base}/ok?id={{ session.variables.order_id }}`, {
        headers: { 'x-user': '{{ session.variables.user.name }}' },
        body: '{"size": "{{ session.variables.size }}", "n": "{{ session.variables.order_id }}"}',
        retries: 3,
      }),
      { user: {} },
    );
    expect(outcome).toMatchObject({
      ok: false,
      kind: 'action_failed',
      detail: 'missing variables: session.variables.order_id, session.variables.user.name, session.variables.size',
      attempts: 0,
    });
    expect(seen).toEqual([]);
    expect(log.map((l) => l.message)).toEqual(['webhook not run']);
  });

  it('an unknown action fails', async () => {
    const runner = webhookRunner(mapWith({}));
    expect(await runner.run('nope', ctx())).toMatchObject({ ok: false, kind: 'action_failed', detail: "unknown action 'nope'", attempts: 0 });
    expect(await runner.run('constructor', ctx())).toMatchObject({ ok: false, kind: 'action_failed', attempts: 0 });
  });

  it('a URL that does not render to an http(s) URL fails', async () => {
    // Values are URL-encoded, so a variable cannot supply the scheme and host.
    const { outcome } = await run(action('{{ session.variables.base }}/ok'), { base });
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', detail: 'the rendered url is not a valid URL', attempts: 0 });
    expect((await run(action('ftp://127.0.0.1/x'))).outcome).toMatchObject({ detail: "unsupported url scheme 'ftp:'" });
  });

  it('a body that is not valid JSON after rendering fails (a value in an unquoted slot)', async () => {
    const { outcome } = await run(action(`${base}/ok`, { body: '{"size": {{ session.variables.size }}}' }), { size: 'large' });
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', detail: 'the rendered body is not valid JSON', attempts: 0 });
  });

  it('a header value that cannot be sent fails without quoting it', async () => {
    const { outcome } = await run(action(`${base}/ok`, { headers: { 'x-token': '{{ session.variables.t }}' } }), { t: `${SECRET}\r\nx-evil: 1` });
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', detail: "header 'x-token' is not a valid header", attempts: 0 });
    expect(seen).toEqual([]);
  });

  it('a broken template fails as action_failed', async () => {
    const { outcome } = await run(action(`${base}/ok?x={{#session.variables.x}}`));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 0 });
    expect(outcome.ok === false && outcome.detail).toMatch(/^invalid template: Unclosed section/);
  });
});

describe('webhookRunner: the address guard (SSRF)', () => {
  const port = () => new URL(base).port;

  it('refuses loopback without an allowlist: action_failed, blocked address, no request, no retry', async () => {
    const log = memoryLog();
    const runner = webhookRunner(mapWith({ act: action(`${base}/ok`, { retries: 3 }) }, { allow: [] }), { log, sleep: async () => {} });
    const outcome = await runner.run('act', ctx());
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 0, detail: 'blocked address: 127.0.0.1 (loopback)' });
    expect(seen).toEqual([]);
    expect(log.lines.map((l) => [l.level, l.message, l.host])).toEqual([['warn', 'webhook blocked', `127.0.0.1:${port()}`]]);
    recordFault({ area: 'webhook', fault: 'a webhook to loopback without an allowlist', outcome: `${shown(outcome)}; no request, no retry` });
  });

  it('refuses every spelling of loopback and the metadata address', async () => {
    const urls = [
      `http://2130706433:${port()}/ok`,
      `http://0x7f.1:${port()}/ok`,
      `http://0177.0.0.1:${port()}/ok`,
      `http://127.1:${port()}/ok`,
      `http://[::ffff:127.0.0.1]:${port()}/ok`,
      `http://[::1]:${port()}/ok`,
      `http://localhost:${port()}/ok`,
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/latest/meta-data/',
      'http://100.100.100.200/latest/meta-data/',
      'http://0.0.0.0/',
      'http://10.0.0.1/',
    ];
    const runner = webhookRunner(mapWith(Object.fromEntries(urls.map((url, i) => [`a${i}`, action(url)])), { allow: [] }));
    for (let i = 0; i < urls.length; i++) {
      const outcome = await runner.run(`a${i}`, ctx());
      expect(outcome, urls[i]).toMatchObject({ ok: false, kind: 'action_failed', attempts: 0, detail: expect.stringMatching(/^blocked address: /) });
    }
    expect(seen).toEqual([]);
    recordFault({ area: 'webhook', fault: `${urls.length} spellings of loopback, private and metadata addresses (decimal, hex, octal, IPv4-mapped, ::1, 169.254.169.254…)`, outcome: `all \`action_failed\` as a blocked address; ${seen.length} requests` });
  });

  it('the allowlist opens exactly what it names', async () => {
    const byName = webhookRunner(mapWith({ act: action(`http://localhost:${port()}/ok`) }, { allow: ['localhost'] }));
    expect(await byName.run('act', ctx())).toMatchObject({ ok: true, result: { price: 4.2 } });
    const byAddress = webhookRunner(mapWith({ act: action(`http://2130706433:${port()}/ok`) }, { allow: ['127.0.0.0/8'] }));
    expect(await byAddress.run('act', ctx())).toMatchObject({ ok: true });
    const other = webhookRunner(mapWith({ act: action(`${base}/ok`) }, { allow: ['10.0.0.0/8', 'localhost'] }));
    expect(await other.run('act', ctx())).toMatchObject({ ok: false, detail: 'blocked address: 127.0.0.1 (loopback)' });
  });

  it('connects to the address that was checked, never to a second DNS answer (rebinding)', async () => {
    // The first answer is checked; a rebinding server would answer differently the next time.
    const answers = [[{ address: '127.0.0.1', family: 4 as const }], [{ address: '169.254.169.254', family: 4 as const }]];
    let lookups = 0;
    const runner = webhookRunner(mapWith({ act: action(`http://kitchen.parley.invalid:${port()}/ok`) }, { allow: ['127.0.0.1'] }), {
      resolve: async () => answers[Math.min(lookups++, 1)]!,
    });
    // The name exists only in the injected resolver: the connection used the vetted address.
    expect(await runner.run('act', ctx())).toMatchObject({ ok: true, result: { price: 4.2 }, attempts: 1 });
    expect(lookups).toBe(1);
    expect(seen[0]!.headers.host).toBe(`kitchen.parley.invalid:${port()}`);
    // The next run resolves again and is refused before any connection.
    expect(await runner.run('act', ctx())).toMatchObject({ ok: false, detail: 'blocked address: kitchen.parley.invalid resolves to 169.254.169.254 (link-local)' });
    expect(seen).toHaveLength(1);
    recordFault({ area: 'webhook', fault: 'DNS rebinding (the second answer is the metadata address)', outcome: `the request goes to the address that was checked; the next run resolves again and is refused as a blocked address (${lookups} lookups for 2 runs)` });
  });

  it('a name that does not resolve is a network error, retried', async () => {
    const { outcome, sleeps } = await run(action('http://nowhere.parley.invalid/x', { retries: 1 }));
    expect(outcome).toMatchObject({ ok: false, kind: 'action_failed', attempts: 2, detail: expect.stringMatching(/^network error: (ENOTFOUND|EAI_AGAIN)/) });
    expect(sleeps).toEqual([100]);
    recordFault({ area: 'webhook', fault: 'a host name that does not resolve (retries 1)', outcome: `${shown(outcome, false)}, a network error` });
  });
});
