import { createHash } from 'node:crypto';
import type { DialogueMap, Webhook } from '../flow/map';
import { renderTemplate } from '../flow/template';
import type { Log } from '../observability/log';
import { Allowlist } from './address';
import { pinnedRequest, systemResolve, vetHost, type Resolve } from './egress';
import type { ActionOutcome, ActionRunner, RenderedRequest, TemplateContext } from './port';

/*
 * Runs the map's webhook actions: templates rendered with the session (URL values URL-encoded,
 * body values JSON-escaped), one request per attempt under its own timeout, retries with a short
 * backoff on what may pass (network errors, timeouts, 5xx, 429) and never on what will not (other
 * 4xx, an unusable answer, a broken template).
 *
 * Headers may carry secrets: they are never logged, nor put in an outcome's detail.
 *
 * Every attempt resolves the host and refuses private, loopback, link-local and other non-public
 * addresses unless the map's `network.allow` names them (lib/actions/egress.ts); the request then
 * connects to the addresses that were checked. A refused address fails the action at once
 * (`action_failed`, detail `blocked address: …`), without a retry.
 */

export interface WebhookRunnerOptions {
  /**
   * Replaces the transport (tests, benchmarks). The address check still runs first, but the
   * connection is the injected fetch's own: only the built-in transport pins the checked address.
   */
  fetch?: typeof fetch;
  /** Relative URLs in the map (`/orders`) resolve against this (PARLEY_ACTIONS_BASE_URL); a function when known late. */
  baseUrl?: string | (() => string | undefined) | undefined;
  /** DNS (tests inject answers). */
  resolve?: Resolve;
  log?: Log;
  /** Waits between attempts (tests pass a fake one). */
  sleep?: (ms: number) => Promise<void>;
}

/** Backoff before attempt n + 1: 100 ms * n. */
export const BACKOFF_MS = 100;
/** The largest result kept: it is stored in the session's variables and sent back to the LLM. */
export const MAX_RESULT_BYTES = 16 * 1024;
/** How much of a failed response's body the detail quotes. */
const DETAIL_BODY_CHARS = 120;

type Attempt =
  | { ok: true; result: unknown }
  | { ok: false; kind: 'action_failed' | 'action_timeout'; detail: string; retry: boolean; status?: number; blocked?: true };

interface Request {
  url: URL;
  init: RequestInit;
  host: string;
  /** Header values, blanked out of any response text a detail quotes (a server may echo them). */
  secrets: string[];
}

const isJson = (contentType: string | null): boolean => !!contentType && /^(application|text)\/([\w.+-]*\+)?json\b/i.test(contentType.trim());

const quote = (text: string, secrets: readonly string[]): string => {
  let flat = text;
  for (const secret of secrets) flat = flat.split(secret).join('***');
  flat = flat.replace(/\s+/g, ' ').trim();
  return flat.length > DETAIL_BODY_CHARS ? `${flat.slice(0, DETAIL_BODY_CHARS)}…` : flat;
};

export function webhookRunner(map: DialogueMap, options: WebhookRunnerOptions = {}): ActionRunner {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const log = options.log;
  const allow = new Allowlist(map.network.allow);
  const resolve = options.resolve ?? systemResolve;
  const base = options.baseUrl;
  const baseUrl = typeof base === 'function' ? base : () => base;

  /** The request for an action, or why there is none (a map or data problem: never retried). */
  function prepare(action: Webhook, context: TemplateContext): { request: Request | string; rendered?: RenderedRequest } {
    let rendered: ReturnType<typeof renderActionRequest>;
    const headers: Array<[string, ReturnType<typeof renderTemplate>]> = [];
    try {
      rendered = renderActionRequest(action, context);
      for (const [name, value] of Object.entries(action.headers)) headers.push([name, renderTemplate(value, context, 'text')]);
    } catch (err) {
      return { request: (err as Error).message };
    }
    return { request: check(action, rendered, headers), rendered: rendered.request };
  }

  function check(action: Webhook, rendered: ReturnType<typeof renderActionRequest>, headers: Array<[string, ReturnType<typeof renderTemplate>]>): Request | string {
    const { url, body } = rendered.request;
    const missing = [...new Set([...rendered.missing.url, ...headers.flatMap(([, h]) => h.missing), ...rendered.missing.body])];
    if (missing.length) return `missing variables: ${missing.join(', ')}`;

    // A relative URL (`/orders`) resolves against the deployment's base (PARLEY_ACTIONS_BASE_URL),
    // so one map serves every stage; the address check applies to where it resolves.
    const relative = url.startsWith('/') && !url.startsWith('//');
    const root = relative ? baseUrl() : undefined;
    if (relative && !root) return 'a relative url needs a base url (PARLEY_ACTIONS_BASE_URL)';
    let parsed: URL;
    try {
      parsed = relative ? new URL(url, root) : new URL(url);
    } catch {
      return 'the rendered url is not a valid URL';
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `unsupported url scheme '${parsed.protocol}'`;

    const h = new Headers();
    for (const [name, value] of headers) {
      try {
        h.set(name, value.text);
      } catch {
        return `header '${name}' is not a valid header`; // its value is not quoted: it may be a secret
      }
    }
    if (body !== undefined) {
      if (action.method === 'GET') return 'a GET action cannot send a body';
      if (!h.has('content-type')) h.set('content-type', 'application/json');
      if (isJson(h.get('content-type'))) {
        try {
          JSON.parse(body);
        } catch {
          return 'the rendered body is not valid JSON';
        }
      }
    }
    return {
      url: parsed,
      host: parsed.host,
      secrets: secretsOf(headers.map(([, v]) => v.text)),
      init: { method: action.method, headers: h, ...(body !== undefined ? { body: body } : {}) },
    };
  }

  async function attempt(action: Webhook, request: Request): Promise<Attempt> {
    const signal = AbortSignal.timeout(action.timeout_ms);
    // Real fetch aborts on the signal; the race also holds a fetch that would not.
    const timedOut = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    timedOut.catch(() => {}); // also when fetch throws at once and nothing else listens
    const within = <T>(p: Promise<T>): Promise<T> => Promise.race([p, timedOut]);
    try {
      // Resolved on every attempt (a retry may find the service moved), checked, then pinned.
      const vetted = await within(vetHost(request.url, allow, resolve));
      if (!vetted.ok) return { ok: false, kind: 'action_failed', detail: vetted.detail, retry: false, blocked: true };
      const { method = 'GET', headers, body } = request.init;
      const res = await within(
        options.fetch
          ? options.fetch(request.url.href, { ...request.init, signal })
          : pinnedRequest(request.url, { method, headers: headers as Headers, body: body as string | undefined, signal }, vetted.addresses),
      );
      // The body is read under the same timeout.
      const text = await within(res.text());
      if (res.ok && Buffer.byteLength(text) > MAX_RESULT_BYTES) {
        // The result lands in the checkpoint: a large one would make the commit fail (400 KB item
        // limit) after the user heard the answer, and a retry would repeat the action.
        return { ok: false, kind: 'action_failed', detail: `the response is ${Buffer.byteLength(text)} bytes; at most ${MAX_RESULT_BYTES} are kept`, retry: false, status: res.status };
      }
      if (!res.ok) {
        const quoted = text.trim() ? `: ${quote(text, request.secrets)}` : '';
        return {
          ok: false,
          kind: 'action_failed',
          detail: `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${quoted}`,
          retry: res.status >= 500 || res.status === 429,
          status: res.status,
        };
      }
      if (!text.trim()) return { ok: true, result: null };
      const contentType = res.headers.get('content-type');
      if (isJson(contentType) || contentType === null) {
        try {
          return { ok: true, result: JSON.parse(text) as unknown };
        } catch {
          // Without a content type, a body that is not JSON is text; one that says JSON must be.
          if (contentType === null) return { ok: true, result: text };
          return { ok: false, kind: 'action_failed', detail: `HTTP ${res.status} with an invalid JSON body`, retry: false, status: res.status };
        }
      }
      return { ok: true, result: text };
    } catch (err) {
      if (signal.aborted) return { ok: false, kind: 'action_timeout', detail: `no answer within ${action.timeout_ms} ms`, retry: true };
      return { ok: false, kind: 'action_failed', detail: `network error: ${networkReason(err)}`, retry: true };
    }
  }

  /** The request sent, retried while it may pass; or why it was not sent. */
  async function send(name: string, action: Webhook, request: Request | string, elapsed: () => number): Promise<ActionOutcome> {
    if (typeof request === 'string') {
      log?.warn('webhook not run', { action: name, detail: request });
      return { ok: false, kind: 'action_failed', detail: request, ms: elapsed(), attempts: 0 };
    }
    const allowed = action.retries + 1;
    for (let n = 1; ; n++) {
      const t = performance.now();
      const outcome = await attempt(action, request);
      if (outcome.ok) return { ok: true, result: outcome.result, ms: elapsed(), attempts: n };
      if (outcome.blocked) {
        // No request was made: the address was refused before any connection.
        log?.warn('webhook blocked', { action: name, method: action.method, host: request.host, detail: outcome.detail });
        return { ok: false, kind: outcome.kind, detail: outcome.detail, ms: elapsed(), attempts: n - 1 };
      }
      const last = !outcome.retry || n >= allowed;
      log?.warn('webhook attempt failed', {
        action: name,
        method: action.method,
        host: request.host,
        attempt: n,
        of: allowed,
        kind: outcome.kind,
        ...(outcome.status !== undefined ? { status: outcome.status } : {}),
        detail: outcome.detail,
        ms: Math.round(performance.now() - t),
        willRetry: !last,
      });
      if (last) return { ok: false, kind: outcome.kind, detail: outcome.detail, ms: elapsed(), attempts: n };
      await sleep(BACKOFF_MS * n);
    }
  }

  /*
   * GET results fetched ahead on a partial transcript (warm). A GET is safe by HTTP's definition,
   * so asking early changes nothing; the result answers only the very same request (action, URL
   * and every rendered header, which may carry one user's credentials: the runner serves every
   * session of the host) within PREFETCH_TTL_MS, and only when it succeeded. At most PREFETCH_MAX
   * are kept; the key is a hash, so no header value is held in it.
   */
  const prefetched = new Map<string, { at: number; outcome: Promise<ActionOutcome> }>();
  const prefetchKey = (name: string, request: Request): string => {
    const headers = [...(request.init.headers as Headers).entries()].sort(([a], [b]) => a.localeCompare(b));
    return createHash('sha256').update(JSON.stringify([name, request.url.href, headers])).digest('hex');
  };
  const takePrefetched = async (key: string): Promise<ActionOutcome | undefined> => {
    const entry = prefetched.get(key);
    prefetched.delete(key);
    if (!entry || performance.now() - entry.at > PREFETCH_TTL_MS) return undefined;
    const outcome = await entry.outcome;
    // A failure ahead of time is not the turn's failure: it tries for itself.
    return outcome.ok ? outcome : undefined;
  };

  return {
    async run(name: string, context: TemplateContext): Promise<ActionOutcome> {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      const action = Object.hasOwn(map.actions, name) ? map.actions[name] : undefined;
      if (!action) {
        log?.warn('webhook not run', { action: name, detail: 'unknown action' });
        return { ok: false, kind: 'action_failed', detail: `unknown action '${name}'`, ms: elapsed(), attempts: 0 };
      }
      const { request, rendered } = prepare(action, context);
      const early = action.method === 'GET' && typeof request !== 'string' && prefetched.size > 0 ? await takePrefetched(prefetchKey(name, request)) : undefined;
      const outcome = early ?? (await send(name, action, request, elapsed));
      // Recorded with the outcome, so a replay can answer the same request with the same result.
      return rendered ? { ...outcome, request: rendered } : outcome;
    },

    async warm(name: string, context: TemplateContext): Promise<void> {
      const action = Object.hasOwn(map.actions, name) ? map.actions[name] : undefined;
      // Anything but a GET may change something: it runs when the turn runs, never on a guess.
      if (!action || action.method !== 'GET') return;
      const { request } = prepare(action, context);
      if (typeof request === 'string') return;
      const key = prefetchKey(name, request);
      const now = performance.now();
      for (const [k, entry] of prefetched) if (now - entry.at > PREFETCH_TTL_MS) prefetched.delete(k);
      if (prefetched.has(key)) return;
      if (prefetched.size >= PREFETCH_MAX) prefetched.delete(prefetched.keys().next().value!);
      // One attempt: a failure ahead of time is thrown away and the turn tries for itself, retries and all.
      const outcome = send(name, { ...action, retries: 0 }, request, () => Math.round(performance.now() - now));
      prefetched.set(key, { at: now, outcome });
      await outcome;
    },
  };
}

/** How long a GET result fetched ahead may stand in for the turn's own request. */
const PREFETCH_TTL_MS = 10_000;
const PREFETCH_MAX = 32;

/**
 * The URL and body of an action as its templates render them (URL values URL-encoded, body values
 * JSON-escaped); the headers are left out, for they may hold secrets. Throws on a broken template.
 */
export function renderActionRequest(action: Webhook, context: TemplateContext): { request: RenderedRequest; missing: { url: string[]; body: string[] } } {
  const url = renderTemplate(action.url, context, 'url');
  const body = action.body === undefined ? undefined : renderTemplate(action.body, context, 'json');
  return {
    request: { method: action.method, url: url.text, ...(body ? { body: body.text } : {}) },
    missing: { url: url.missing, body: body?.missing ?? [] },
  };
}

/** Header values and their words (`Bearer <token>`: the token alone), longest first; short ones are not worth it. */
function secretsOf(values: readonly string[]): string[] {
  const all = values.flatMap((v) => [v.trim(), ...v.split(/\s+/)]).filter((v) => v.length >= 8);
  return [...new Set(all)].sort((a, b) => b.length - a.length);
}

/**
 * The useful part of a network failure: node:http throws the socket error itself (`code`), undici
 * a TypeError('fetch failed') with the socket error as cause.
 */
function networkReason(err: unknown): string {
  const own = (err as { code?: unknown })?.code;
  if (typeof own === 'string' && own !== 'ABORT_ERR') return own;
  const cause = (err as { cause?: unknown })?.cause;
  const code = (cause as { code?: unknown })?.code;
  if (typeof code === 'string') return code;
  if (cause instanceof Error && cause.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
