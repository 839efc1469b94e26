import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

/*
 * A local OpenAI-compatible server for tests and benchmarks: node:http on 127.0.0.1 (a free port),
 * speaking the real wire format of
 *   POST /v1/chat/completions  (stream: true -> SSE `data: {chat.completion.chunk}\n\n` ... `data: [DONE]\n\n`;
 *                               otherwise one `chat.completion` JSON)
 *   POST /v1/moderations       (a `ModerationCreateResponse`)
 *   POST /v1/audio/transcriptions  (multipart/form-data in, parsed into `FakeRequest.form`; a `Transcription`
 *                               JSON out, `verbose_json` or plain text as the request's response_format asks)
 * Answers are scripted: each endpoint has its own queue, answered in order, one entry per request.
 * Anything else answers 404 with an OpenAI-style error body.
 *
 * Latency injection, for benchmarks: the response headers and the `role: "assistant"` chunk are sent at
 * once (as OpenAI does), the first content chunk `firstTokenDelayMs` after the request body arrived,
 * then one chunk every 1000 / tokensPerSecond ms. Chunks are scheduled against absolute times
 * (performance.now()), so the pacing does not drift with timer jitter, and Nagle is off.
 * For pacing, ONE CHUNK COUNTS AS ONE TOKEN (use chunkChars: 4 for English-like token sizes).
 */

/** One scripted answer to POST /v1/chat/completions. */
export interface ScriptedChatResponse {
  /** Assistant text, streamed in chunks of `chunkChars` characters. */
  text?: string;
  /** Characters per content chunk; default 8. */
  chunkChars?: number;
  /**
   * Tool calls, streamed after the text. Each is split across several chunks: id, type and name in
   * the first delta (with empty arguments), the arguments in 3 or more fragments; `index` is the
   * position in this array.
   */
  toolCalls?: Array<{ name: string; arguments: string; id?: string }>;
  /** Delay before the first content chunk (after the request body arrived). Default 0. */
  firstTokenDelayMs?: number;
  /** Chunks per second after the first one (one chunk = one token for pacing). Default: no delay. */
  tokensPerSecond?: number;
  /** An HTTP error status answered with an OpenAI-style JSON error body instead of a completion. */
  status?: number;
  /** Message of the error body for `status`. */
  errorMessage?: string;
  /** Extra response headers (e.g. `retry-after`, `retry-after-ms`, `x-should-retry`). */
  headers?: Record<string, string>;
  /** Stream the role chunk and the text chunks (if any), then a broken JSON data line, then close. */
  malformed?: true;
  /** Accept the request and never answer (no headers). */
  hang?: true;
  /** Send the headers, the role chunk and this many content chunks, then never send anything else. */
  stallAfterChunks?: number;
  /** Send the headers, the role chunk and this many content chunks, then destroy the socket. */
  dropAfterChunks?: number;
  /**
   * Usage sent as the final chunk (empty `choices`) when the request asked for
   * stream_options.include_usage (and in the non-streaming body). Without it the server estimates
   * (prompt: characters of the messages / 4, completion: the number of content chunks, cached: 0).
   */
  usage?: { prompt_tokens: number; completion_tokens: number; cached?: number };
  /** The model the server names in its chunks; default: the request's model. */
  model?: string;
  /** Default 'tool_calls' when toolCalls is set, else 'stop'. */
  finishReason?: string;
}

/** One scripted answer to POST /v1/moderations (every input of the request gets the same result). */
export type ScriptedModeration =
  | { flagged: boolean; categories?: string[] }
  | { status: number; errorMessage?: string; headers?: Record<string, string> }
  | { hang: true };

/**
 * One scripted answer to POST /v1/audio/transcriptions: a transcript (`seconds` goes into the json
 * answer's `usage` and the verbose_json answer's `duration`), an error status, or a hang.
 */
export type ScriptedTranscription =
  | { text: string; seconds?: number; delayMs?: number; headers?: Record<string, string> }
  | { status: number; errorMessage?: string; headers?: Record<string, string> }
  | { hang: true };

/** A multipart/form-data body as the server received it. */
export interface FakeForm {
  /** The text parts (model, language, response_format, …). */
  fields: Record<string, string>;
  /** The file parts by field name: the filename, content type and bytes as sent. */
  files: Record<string, { name: string; type: string; bytes: Uint8Array }>;
}

/** What `script` accepts: an object with a `flagged` key goes to the moderation queue, anything else to chat. */
export type ScriptedResponse = ScriptedChatResponse | Extract<ScriptedModeration, { flagged: boolean }>;

export interface FakeRequest {
  method: string;
  /** The path without the query, e.g. '/v1/chat/completions'. */
  path: string;
  /** The parsed JSON body (undefined when the body was not JSON). */
  body: any;
  /** The parsed multipart/form-data body (transcription requests), set before the server answers. */
  form?: FakeForm;
  headers: IncomingHttpHeaders;
  /** performance.now() when the request body had arrived. */
  receivedAt: number;
  /**
   * Resolves when the exchange is over: 'completed' (the server finished its answer), 'aborted' (the
   * client closed the connection before the server finished), or 'dropped' (the server destroyed it,
   * `dropAfterChunks`).
   */
  finished: Promise<'completed' | 'aborted' | 'dropped'>;
}

export interface FakeOpenAIOptions {
  /**
   * What a chat request gets when the queue is empty. Default 'error': HTTP 500 with the message
   * "fake-openai: no scripted chat response" (loud, so an unexpected call fails the test).
   * Pass a ScriptedChatResponse (e.g. `{ text: 'OK.' }`) to answer every unscripted request with it.
   */
  fallback?: 'error' | ScriptedChatResponse;
  /** What a moderation request gets when its queue is empty. Default `{ flagged: false }`. */
  moderationFallback?: 'error' | ScriptedModeration;
  /** What a transcription request gets when its queue is empty. Default 'error' (HTTP 500, loud). */
  transcriptionFallback?: 'error' | ScriptedTranscription;
}

export interface FakeOpenAI {
  /** e.g. 'http://127.0.0.1:53211/v1' — pass as the SDK's baseURL. */
  baseURL: string;
  /** Every request, in arrival order (both endpoints, and unknown paths). */
  requests: FakeRequest[];
  /** Queues answers: chat responses and `{ flagged }` moderation results, each to its endpoint's queue. */
  script(...responses: ScriptedResponse[]): void;
  /** Queues moderation answers, including errors and hangs. */
  scriptModeration(...responses: ScriptedModeration[]): void;
  /** Queues transcription answers (POST /v1/audio/transcriptions), including errors and hangs. */
  scriptTranscription(...responses: ScriptedTranscription[]): void;
  /** Requests to one endpoint, e.g. fake.requestsTo('/v1/chat/completions'). */
  requestsTo(path: string): FakeRequest[];
  /** Forgets the queues and the recorded requests. */
  reset(): void;
  /** Destroys every open connection (hanging ones too) and stops the server. */
  close(): Promise<void>;
}

export const MODERATION_CATEGORIES = [
  'harassment',
  'harassment/threatening',
  'hate',
  'hate/threatening',
  'illicit',
  'illicit/violent',
  'self-harm',
  'self-harm/intent',
  'self-harm/instructions',
  'sexual',
  'sexual/minors',
  'violence',
  'violence/graphic',
] as const;

const CHAT_PATH = '/v1/chat/completions';
const MODERATION_PATH = '/v1/moderations';
const TRANSCRIPTION_PATH = '/v1/audio/transcriptions';

export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const fallback = options.fallback ?? 'error';
  const moderationFallback = options.moderationFallback ?? { flagged: false };
  let chatQueue: ScriptedChatResponse[] = [];
  let moderationQueue: ScriptedModeration[] = [];
  const transcriptionFallback = options.transcriptionFallback ?? 'error';
  let transcriptionQueue: ScriptedTranscription[] = [];
  let requests: FakeRequest[] = [];
  let counter = 0;

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const bytes = Buffer.concat(chunks);
      const raw = bytes.toString('utf8');
      let body: any;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = undefined;
      }
      const path = (req.url ?? '').split('?')[0] ?? '';
      let settle!: (how: 'completed' | 'aborted' | 'dropped') => void;
      const finished = new Promise<'completed' | 'aborted' | 'dropped'>((resolve) => (settle = resolve));
      const record: FakeRequest = { method: req.method ?? '', path, body, headers: req.headers, receivedAt: performance.now(), finished };
      requests.push(record);
      const exchange = new Exchange(res, settle);
      counter += 1;
      if (req.method === 'POST' && path === CHAT_PATH) {
        if (body === undefined) return exchange.error(400, 'fake-openai: the body is not JSON');
        const next = chatQueue.shift() ?? (fallback === 'error' ? { status: 500, errorMessage: 'fake-openai: no scripted chat response' } : fallback);
        void answerChat(exchange, record, next, counter);
      } else if (req.method === 'POST' && path === MODERATION_PATH) {
        if (body === undefined) return exchange.error(400, 'fake-openai: the body is not JSON');
        const next =
          moderationQueue.shift() ?? (moderationFallback === 'error' ? { status: 500, errorMessage: 'fake-openai: no scripted moderation response' } : moderationFallback);
        answerModeration(exchange, body, next, counter);
      } else if (req.method === 'POST' && path === TRANSCRIPTION_PATH) {
        const next =
          transcriptionQueue.shift() ??
          (transcriptionFallback === 'error' ? { status: 500, errorMessage: 'fake-openai: no scripted transcription response' } : transcriptionFallback);
        void answerTranscription(exchange, record, bytes, next);
      } else {
        exchange.error(404, `fake-openai: no route ${req.method} ${path}`);
      }
    });
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseURL: `http://127.0.0.1:${port}/v1`,
    get requests() {
      return requests;
    },
    script(...responses) {
      for (const r of responses) {
        if ('flagged' in r) moderationQueue.push(r as ScriptedModeration);
        else chatQueue.push(r);
      }
    },
    scriptModeration(...responses) {
      moderationQueue.push(...responses);
    },
    scriptTranscription(...responses) {
      transcriptionQueue.push(...responses);
    },
    requestsTo(path) {
      return requests.filter((r) => r.path === path);
    },
    reset() {
      chatQueue = [];
      moderationQueue = [];
      transcriptionQueue = [];
      requests = [];
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One response in progress: knows whether the client went away. */
class Exchange {
  closedByClient = false;
  private over = false;

  constructor(
    readonly res: ServerResponse,
    private readonly settle: (how: 'completed' | 'aborted' | 'dropped') => void,
  ) {
    res.socket?.setNoDelay(true);
    res.on('close', () => {
      if (!res.writableFinished && !this.over) {
        this.closedByClient = true;
        this.finish('aborted');
      }
    });
  }

  get gone(): boolean {
    return this.closedByClient || this.res.destroyed;
  }

  finish(how: 'completed' | 'aborted' | 'dropped'): void {
    if (this.over) return;
    this.over = true;
    this.settle(how);
  }

  json(status: number, value: unknown, headers: Record<string, string> = {}): void {
    if (this.gone) return;
    this.res.writeHead(status, { 'content-type': 'application/json', 'x-request-id': `req_fake_${Date.now()}`, ...headers });
    this.res.end(JSON.stringify(value), () => this.finish('completed'));
  }

  error(status: number, message: string, headers: Record<string, string> = {}): void {
    const type = status === 429 ? 'requests' : status >= 500 ? 'server_error' : 'invalid_request_error';
    const code = status === 429 ? 'rate_limit_exceeded' : null;
    this.json(status, { error: { message, type, param: null, code } }, headers);
  }

  startStream(headers: Record<string, string> = {}): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': `req_fake_${Date.now()}`,
      ...headers,
    });
    this.res.flushHeaders();
  }

  send(data: string): void {
    if (!this.gone) this.res.write(`data: ${data}\n\n`);
  }

  end(): void {
    if (this.gone) return;
    this.res.end(() => this.finish('completed'));
  }

  drop(): void {
    this.finish('dropped');
    this.res.socket?.destroy();
  }
}

/** Resolves at performance.now() >= at (absolute, so consecutive waits do not accumulate drift). */
function sleepUntil(at: number): Promise<void> {
  const ms = at - performance.now();
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

function splitEvery(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/** Splits into max(3, ceil(len / size)) fragments; the fragments join to the text (some may be empty). */
function fragments(text: string, size: number): string[] {
  const n = Math.max(3, Math.ceil(text.length / size));
  const step = Math.ceil(text.length / n);
  const out: string[] = [];
  for (let i = 0; i < n; i += 1) out.push(text.slice(i * step, (i + 1) * step));
  return out;
}

function promptChars(body: any): number {
  const messages: unknown[] = Array.isArray(body?.messages) ? body.messages : [];
  return messages.reduce<number>((n, m: any) => n + (typeof m?.content === 'string' ? m.content.length : 0), 0);
}

async function answerChat(ex: Exchange, record: FakeRequest, s: ScriptedChatResponse, n: number): Promise<void> {
  if (s.hang) return;
  if (s.status !== undefined) return ex.error(s.status, s.errorMessage ?? `fake-openai: scripted status ${s.status}`, s.headers);

  const body = record.body;
  const model: string = s.model ?? (typeof body.model === 'string' ? body.model : 'fake-model');
  const id = `chatcmpl-fake${n}`;
  const created = Math.floor(Date.now() / 1000);
  const chunkChars = Math.max(1, s.chunkChars ?? 8);
  const textChunks = s.text ? splitEvery(s.text, chunkChars) : [];
  const toolCalls = (s.toolCalls ?? []).map((t, i) => ({ ...t, id: t.id ?? `call_fake${n}_${i}` }));
  const finishReason = s.finishReason ?? (toolCalls.length ? 'tool_calls' : 'stop');
  const usage = {
    prompt_tokens: s.usage?.prompt_tokens ?? Math.ceil(promptChars(body) / 4),
    completion_tokens: s.usage?.completion_tokens ?? textChunks.length + toolCalls.reduce((k, t) => k + Math.ceil(t.arguments.length / 4) + 1, 0),
    cached: s.usage?.cached ?? 0,
  };
  const wireUsage = {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
    prompt_tokens_details: { cached_tokens: usage.cached, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
  const start = record.receivedAt;
  const firstAt = start + (s.firstTokenDelayMs ?? 0);
  const interval = s.tokensPerSecond && s.tokensPerSecond > 0 ? 1000 / s.tokensPerSecond : 0;

  if (body.stream !== true) {
    await sleepUntil(firstAt + interval * Math.max(0, textChunks.length - 1));
    return ex.json(200, {
      id,
      object: 'chat.completion',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: s.text ?? null,
            refusal: null,
            ...(toolCalls.length
              ? { tool_calls: toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } })) }
              : {}),
          },
          logprobs: null,
          finish_reason: finishReason,
        },
      ],
      usage: wireUsage,
    });
  }

  const includeUsage = body.stream_options?.include_usage === true;
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    JSON.stringify({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });

  ex.startStream(s.headers);
  // The first chunk always carries the role (the SDK's stream helpers require it), as OpenAI sends it.
  ex.send(chunk({ role: 'assistant', content: '', refusal: null }));

  // Every later delta, in order; each is sent at its own absolute time.
  const deltas: Array<Record<string, unknown>> = textChunks.map((content) => ({ content }));
  toolCalls.forEach((t, index) => {
    deltas.push({ tool_calls: [{ index, id: t.id, type: 'function', function: { name: t.name, arguments: '' } }] });
    for (const f of fragments(t.arguments, chunkChars)) deltas.push({ tool_calls: [{ index, function: { arguments: f } }] });
  });

  const cut = s.malformed ? textChunks.length : (s.stallAfterChunks ?? s.dropAfterChunks);
  for (let i = 0; i < deltas.length; i += 1) {
    if (cut !== undefined && i >= cut) break;
    await sleepUntil(firstAt + interval * i);
    if (ex.gone) return;
    ex.send(chunk(deltas[i]!));
  }
  if (s.malformed) {
    await sleepUntil(firstAt + interval * textChunks.length);
    if (ex.gone) return;
    ex.send(`{"id":"${id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"bro`);
    return ex.end();
  }
  if (s.stallAfterChunks !== undefined) return; // never another byte
  if (s.dropAfterChunks !== undefined) {
    // Let the written chunks leave before the reset.
    await new Promise((resolve) => setTimeout(resolve, 5));
    return ex.drop();
  }
  if (ex.gone) return;
  ex.send(chunk({}, finishReason));
  if (includeUsage) {
    ex.send(JSON.stringify({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'fp_fake', choices: [], usage: wireUsage }));
  }
  ex.send('[DONE]');
  ex.end();
}

function answerModeration(ex: Exchange, body: any, s: ScriptedModeration, n: number): void {
  if ('hang' in s) return;
  if ('status' in s) return ex.error(s.status, s.errorMessage ?? `fake-openai: scripted status ${s.status}`, s.headers);
  const inputs = Array.isArray(body.input) ? body.input.length : 1;
  const flaggedCategories = new Set(s.categories ?? []);
  const result = {
    flagged: s.flagged,
    categories: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, flaggedCategories.has(c)])),
    category_scores: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, flaggedCategories.has(c) ? 0.97 : 0.0001])),
    category_applied_input_types: Object.fromEntries(MODERATION_CATEGORIES.map((c) => [c, ['text']])),
  };
  ex.json(200, {
    id: `modr-fake${n}`,
    model: typeof body.model === 'string' ? body.model : 'omni-moderation-latest',
    results: Array.from({ length: inputs }, () => result),
  });
}

/** Parses a multipart/form-data body with undici's own parser (the one fetch's Response.formData uses). */
async function parseForm(bytes: Buffer, contentType: string | undefined): Promise<FakeForm | undefined> {
  if (!contentType?.toLowerCase().startsWith('multipart/form-data')) return undefined;
  try {
    const data = await new Response(new Uint8Array(bytes), { headers: { 'content-type': contentType } }).formData();
    const form: FakeForm = { fields: {}, files: {} };
    for (const [key, value] of data.entries()) {
      if (typeof value === 'string') form.fields[key] = value;
      else form.files[key] = { name: value.name, type: value.type, bytes: new Uint8Array(await value.arrayBuffer()) };
    }
    return form;
  } catch {
    return undefined;
  }
}

async function answerTranscription(ex: Exchange, record: FakeRequest, bytes: Buffer, s: ScriptedTranscription): Promise<void> {
  const form = await parseForm(bytes, record.headers['content-type']);
  if (form) record.form = form;
  if ('hang' in s) return;
  if ('status' in s) return ex.error(s.status, s.errorMessage ?? `fake-openai: scripted status ${s.status}`, s.headers);
  // What OpenAI answers to a request it cannot read.
  if (!form) return ex.error(400, 'fake-openai: the body is not multipart/form-data');
  if (!form.files.file) return ex.error(400, "fake-openai: missing the 'file' part");
  if (!form.fields.model) return ex.error(400, "fake-openai: missing the 'model' part");
  if (s.delayMs) await new Promise((resolve) => setTimeout(resolve, s.delayMs));
  if (ex.gone) return;
  const format = form.fields.response_format ?? 'json';
  if (format === 'text') {
    if (ex.gone) return;
    ex.res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', ...s.headers });
    return void ex.res.end(`${s.text}\n`, () => ex.finish('completed'));
  }
  if (format === 'verbose_json') {
    return ex.json(
      200,
      { task: 'transcribe', language: form.fields.language ?? 'english', duration: s.seconds ?? 0, text: s.text, segments: [] },
      s.headers,
    );
  }
  ex.json(200, { text: s.text, ...(s.seconds !== undefined ? { usage: { type: 'duration', seconds: s.seconds } } : {}) }, s.headers);
}
