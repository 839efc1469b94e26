import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Context } from 'aws-lambda';
import { WebSocketServer, type WebSocket } from 'ws';
import { TURN_EVENT_TEMPLATE, type ConnectEvent, type RouteResult, type WebSocketEvent } from '../lib/host/events';
import { LIMITS } from '../lib/protocol/v1';

/*
 * A stand-in for API Gateway WebSocket APIs on one port: it invokes the same handlers with
 * API-Gateway-shaped events, applies the same route selection and limits, and serves the
 * @connections management API that handlers reach with @aws-sdk/client-apigatewaymanagementapi.
 *
 * Like API Gateway it invokes a handler per message as the message arrives, without waiting for the
 * previous one: clients must wait for acknowledgements (hello.ack, session.started) as they must in AWS.
 *
 * Two kinds of integration, as in the Parley stack (infra/parley-construct.ts):
 * - asynchronous (`$default`): an AWS integration calling Lambda's Invoke API with
 *   `X-Amz-Invocation-Type: Event`. The message is acknowledged at once; the handler gets the event
 *   the route's request template renders (lib/host/events.ts TURN_EVENT_TEMPLATE, rendered here by
 *   `renderRequestTemplate` as API Gateway renders it) and runs in the background for as long as it
 *   needs, its result discarded. There is no integration timeout.
 * - synchronous (every other route): a Lambda proxy integration. API Gateway waits for the handler up
 *   to the integration timeout (29 s); past it, `$connect` refuses the handshake with 504 and a
 *   message route sends the client API Gateway's `Endpoint request timed out` message. The handler
 *   itself keeps running, as a Lambda does until its own timeout.
 */

export type Handler<E> = (event: E, context: Context) => Promise<RouteResult | void>;

export interface GatewayOptions {
  /** Route integrations by route key; Parley's API has $connect, $disconnect and $default. */
  handlers: {
    $connect: Handler<ConnectEvent>;
    $disconnect: Handler<WebSocketEvent>;
    $default: Handler<WebSocketEvent>;
    [routeKey: string]: Handler<WebSocketEvent> | Handler<ConnectEvent>;
  };
  host?: string;
  /** 0: any free port. */
  port?: number;
  stage?: string;
  /** `$request.body.<field>`, as in API Gateway. */
  routeSelectionExpression?: string;
  /** API Gateway closes idle connections after 10 minutes and every connection after 2 hours. */
  idleTimeoutMs?: number;
  maxConnectionMs?: number;
  /** Serves anything that is not WebSocket or @connections (the chat widget and its page). Returns false for 404. */
  serveHttp?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>;
  /** Called after each route invocation; the benchmark measures server-side time with it. */
  onInvoke?: (routeKey: string, durationMs: number) => void;
  /**
   * Routes integrated asynchronously (Lambda Invoke with `X-Amz-Invocation-Type: Event`), each with
   * the request template that builds its handler's event. `$connect` cannot be one: it must answer
   * before the socket opens. `{}` makes every route synchronous (a Lambda proxy integration).
   * @default { $default: TURN_EVENT_TEMPLATE }, as the Parley stack deploys it
   */
  asyncRoutes?: Readonly<Record<string, string>>;
  /**
   * How long API Gateway waits for a synchronous integration.
   * @default 29_000 (API Gateway's maximum)
   */
  integrationTimeoutMs?: number;
}

export interface LocalGateway {
  /** http://host:port */
  httpUrl: string;
  /** ws://host:port — the URL clients connect to (any path). */
  wsUrl: string;
  /** The @connections endpoint handlers post to (the stage URL, as in AWS). */
  callbackUrl: string;
  /** Ids of the open connections, newest last (for tests and diagnostics). */
  connectionIds(): string[];
  close(): Promise<void>;
}

interface Connection {
  id: string;
  socket: WebSocket;
  connectedAt: number;
  lastActiveAt: number;
  sourceIp: string;
  userAgent: string;
  idleTimer?: NodeJS.Timeout;
  maxTimer?: NodeJS.Timeout;
}

const CLOSE_UNSUPPORTED_DATA = 1003;
const CLOSE_GOING_AWAY = 1001;
const TIMED_OUT = Symbol('timed out');

export async function startLocalGateway(options: GatewayOptions): Promise<LocalGateway> {
  const host = options.host ?? '127.0.0.1';
  const stage = options.stage ?? 'local';
  const routeField = parseRouteSelection(options.routeSelectionExpression ?? '$request.body.type');
  const idleTimeoutMs = options.idleTimeoutMs ?? 10 * 60_000;
  const maxConnectionMs = options.maxConnectionMs ?? 2 * 3600_000;
  const asyncRoutes = options.asyncRoutes ?? { $default: TURN_EVENT_TEMPLATE };
  const integrationTimeoutMs = options.integrationTimeoutMs ?? 29_000;
  if (Object.hasOwn(asyncRoutes, '$connect')) throw new Error('$connect cannot be integrated asynchronously: it answers the handshake');
  const connections = new Map<string, Connection>();
  const pending = new Set<Promise<unknown>>();
  // ws checks each frame (and the whole message) against maxPayload; API Gateway's frame limit is
  // the one a browser meets, as browsers send every message as a single frame.
  const wss = new WebSocketServer({ noServer: true, maxPayload: LIMITS.frameBytes });
  let domainName = '';

  const track = <T>(p: Promise<T>): Promise<T> => {
    pending.add(p);
    void p.finally(() => pending.delete(p)).catch(() => {});
    return p;
  };

  const invoke = async <E extends WebSocketEvent>(handler: Handler<E>, event: E): Promise<RouteResult | void> => {
    const started = performance.now();
    try {
      return await handler(event, lambdaContext(event.requestContext.routeKey));
    } finally {
      options.onInvoke?.(event.requestContext.routeKey, performance.now() - started);
    }
  };

  /** The invocation's result, or TIMED_OUT once the integration timeout passes first; the invocation runs on. */
  const withinIntegrationTimeout = <T>(call: Promise<T>): Promise<T | typeof TIMED_OUT> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), integrationTimeoutMs);
    });
    return Promise.race([call, timeout]).finally(() => clearTimeout(timer));
  };

  /** What API Gateway sends the client when an integration fails or times out. */
  const sendGatewayError = (c: Connection, message: string, requestId: string) => {
    if (c.socket.readyState === c.socket.OPEN) c.socket.send(JSON.stringify({ message, connectionId: c.id, requestId }));
  };

  const requestContext = (c: Pick<Connection, 'id' | 'connectedAt' | 'sourceIp' | 'userAgent'>, routeKey: string, eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT') => {
    const now = Date.now();
    return {
      routeKey,
      eventType,
      messageDirection: 'IN' as const,
      connectionId: c.id,
      connectedAt: c.connectedAt,
      domainName,
      stage,
      apiId: 'local',
      requestId: randomUUID(),
      extendedRequestId: randomUUID(),
      messageId: eventType === 'MESSAGE' ? randomBytes(8).toString('base64url') : undefined,
      requestTime: new Date(now).toUTCString(),
      requestTimeEpoch: now,
      identity: { sourceIp: c.sourceIp, userAgent: c.userAgent },
    };
  };

  const disconnect = (c: Connection) => {
    if (!connections.delete(c.id)) return;
    clearTimeout(c.idleTimer);
    clearTimeout(c.maxTimer);
    const event = { requestContext: requestContext(c, '$disconnect', 'DISCONNECT'), isBase64Encoded: false } as unknown as WebSocketEvent;
    void track(invoke(options.handlers.$disconnect, event)).catch(() => {});
  };

  const touch = (c: Connection) => {
    c.lastActiveAt = Date.now();
    clearTimeout(c.idleTimer);
    c.idleTimer = setTimeout(() => c.socket.close(CLOSE_GOING_AWAY, 'Going away'), idleTimeoutMs);
    c.idleTimer.unref();
  };

  const onMessage = (c: Connection, data: Buffer, isBinary: boolean) => {
    touch(c);
    if (isBinary) {
      c.socket.close(CLOSE_UNSUPPORTED_DATA, 'Binary frames are not supported');
      return;
    }
    const body = data.toString('utf8');
    // As in API Gateway: the selected key if a route has it, else $default, which the event then names.
    const selected = selectRoute(body, routeField);
    const routeKey = selected !== '$connect' && selected !== '$disconnect' && Object.hasOwn(options.handlers, selected) ? selected : '$default';
    const context = requestContext(c, routeKey, 'MESSAGE');
    const handler = options.handlers[routeKey]! as Handler<WebSocketEvent>;
    if (Object.hasOwn(asyncRoutes, routeKey)) {
      // Lambda's Invoke API with InvocationType Event: the payload is the rendered template, the
      // route is done once Lambda accepts it, and the handler runs on its own.
      let event: WebSocketEvent;
      try {
        event = JSON.parse(renderRequestTemplate(asyncRoutes[routeKey]!, { context, input: { body } })) as WebSocketEvent;
      } catch {
        // Lambda refuses a payload that is not JSON; the integration fails.
        sendGatewayError(c, 'Internal server error', context.requestId);
        return;
      }
      void track(invoke(handler, event)).catch(() => {});
      return;
    }
    const event = { requestContext: context, body, isBase64Encoded: false } as unknown as WebSocketEvent;
    const call = track(invoke(handler, event));
    void withinIntegrationTimeout(call).then(
      (result) => result === TIMED_OUT && sendGatewayError(c, 'Endpoint request timed out', context.requestId),
      () => {},
    );
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node drops its own error listener on upgrade: without one, a client resetting the connection
    // while $connect runs would be an uncaught error that takes the whole runtime down.
    socket.on('error', () => socket.destroy());
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://local');
    } catch {
      refuse(socket, 400, 'Bad Request');
      return;
    }
    const c = {
      id: connectionId(),
      connectedAt: Date.now(),
      sourceIp: req.socket.remoteAddress ?? '127.0.0.1',
      userAgent: req.headers['user-agent'] ?? '',
    };
    const event = {
      requestContext: requestContext(c, '$connect', 'CONNECT'),
      isBase64Encoded: false,
      queryStringParameters: url.searchParams.size ? Object.fromEntries(url.searchParams) : undefined,
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(',') : v])),
    } as unknown as ConnectEvent;
    let result: RouteResult | void | typeof TIMED_OUT;
    try {
      result = await withinIntegrationTimeout(track(invoke(options.handlers.$connect, event)));
    } catch {
      result = { statusCode: 500 };
    }
    if (result === TIMED_OUT) {
      refuse(socket, 504, 'Gateway Timeout');
      return;
    }
    const status = result?.statusCode ?? 200;
    if (status < 200 || status >= 300) {
      refuse(socket, status, status === 401 ? 'Unauthorized' : 'Forbidden');
      return;
    }
    if (socket.destroyed) {
      // The client left while $connect ran: API Gateway sends $disconnect for it, so do we.
      const event = { requestContext: requestContext(c, '$disconnect', 'DISCONNECT'), isBase64Encoded: false } as unknown as WebSocketEvent;
      void track(invoke(options.handlers.$disconnect, event)).catch(() => {});
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn: Connection = { ...c, socket: ws, lastActiveAt: Date.now() };
      connections.set(conn.id, conn);
      touch(conn);
      conn.maxTimer = setTimeout(() => ws.close(CLOSE_GOING_AWAY, 'Going away'), maxConnectionMs);
      conn.maxTimer.unref();
      ws.on('message', (data, isBinary) => onMessage(conn, data as Buffer, isBinary));
      ws.on('close', () => disconnect(conn));
      ws.on('error', () => disconnect(conn));
    });
  };

  const server: Server = createServer((req, res) => {
    void handleHttp(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });

  const handleHttp = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    const match = /^(?:\/[^/]+)?\/@connections\/([^/]+)$/.exec(path);
    if (match) return manage(decodeURIComponent(match[1]!), req, res);
    if (options.serveHttp && (await options.serveHttp(req, res))) return;
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  };

  // The @connections management API, with the status codes and error types the AWS SDK maps to
  // its exceptions (GoneException, PayloadTooLargeException).
  const manage = async (id: string, req: IncomingMessage, res: ServerResponse) => {
    const c = connections.get(id);
    const awsError = (status: number, type: string, message: string) =>
      res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type }).end(JSON.stringify({ message }));
    const body = await readBody(req, LIMITS.messageBytes + 1);
    if (!c || c.socket.readyState !== c.socket.OPEN) return awsError(410, 'GoneException', `connection ${id} is gone`);
    switch (req.method) {
      case 'POST':
        if (body.length > LIMITS.messageBytes) return awsError(413, 'PayloadTooLargeException', 'message exceeds 128 KB');
        touch(c);
        c.socket.send(body.toString('utf8'));
        return res.writeHead(200).end();
      case 'GET':
        return res
          .writeHead(200, { 'content-type': 'application/json' })
          // The wire names are camelCase (the SDK's jsonName); the SDK exposes them as ConnectedAt etc.
          .end(JSON.stringify({
            connectedAt: new Date(c.connectedAt).toISOString(),
            lastActiveAt: new Date(c.lastActiveAt).toISOString(),
            identity: { sourceIp: c.sourceIp, userAgent: c.userAgent },
          }));
      case 'DELETE':
        c.socket.close(1000, 'Closed by the server');
        return res.writeHead(204).end();
      default:
        return awsError(405, 'MethodNotAllowed', `${req.method} is not supported`);
    }
  };

  server.on('upgrade', (req, socket, head) => void onUpgrade(req, socket, head).catch(() => socket.destroy()));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  domainName = `${host}:${port}`;

  return {
    httpUrl: `http://${domainName}`,
    wsUrl: `ws://${domainName}`,
    callbackUrl: `http://${domainName}/${stage}`,
    connectionIds: () => [...connections.keys()],
    async close() {
      for (const c of connections.values()) c.socket.terminate();
      // A terminated socket reports its close (and so its $disconnect) a tick later; an invocation
      // may start another. Wait until nothing is left, or the table closes under a handler.
      await new Promise((resolve) => setImmediate(resolve));
      while (pending.size) await Promise.allSettled([...pending]);
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/*
 * Request templates, rendered as API Gateway renders them: Apache Velocity (VTL) with `$context`,
 * `$input` and `$util`. Only the constructs Parley's templates use are implemented, and anything else
 * is refused rather than guessed at, so a template cannot come to rely on what this stand-in does not
 * do:
 * - references `$a.b.c`, `$!a.b.c` and `${a.b.c}`, where each name must exist (Velocity would print
 *   an unknown reference as its own text, which is never what a JSON payload wants);
 * - method calls on them with reference or string-literal arguments, of `$util.escapeJavaScript(s)`
 *   and of a string's `replaceAll(regex, replacement)` (Java's: a regex, replaced everywhere);
 * - no directives (`#set`, `#if`, `##`…): a `#` anywhere is an error.
 */

export interface TemplateInput {
  /** `$context`: the route's request context. */
  context: object;
  /** `$input.body`: the message, as the client sent it. */
  input: { body: string };
}

/**
 * `$util.escapeJavaScript`: Apache Commons Lang's `StringEscapeUtils.escapeJavaScript` (2.4 and later;
 * 3.x `escapeEcmaScript` writes the same), UTF-16 unit by unit. `'` `"` `\` and `/` get a backslash;
 * \b \t \n \f \r their short escapes; other control characters and everything above U+007F a `\uXXXX`
 * with upper-case hex (so an astral character becomes its surrogate pair); the rest stays as it is.
 */
export function escapeJavaScript(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit > 0x7f || (unit < 0x20 && !SHORT_ESCAPES[unit])) out += `\\u${unit.toString(16).toUpperCase().padStart(4, '0')}`;
    else if (unit < 0x20) out += SHORT_ESCAPES[unit];
    else if (unit === 0x27 || unit === 0x22 || unit === 0x5c || unit === 0x2f) out += `\\${text[i]}`;
    else out += text[i];
  }
  return out;
}

const SHORT_ESCAPES: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };

const TEMPLATE_UTIL: Record<string, (...args: unknown[]) => unknown> = {
  escapeJavaScript: (text) => (typeof text === 'string' ? escapeJavaScript(text) : null),
};

type TemplateArg = { literal: string } | { ref: TemplateReference };
interface TemplateReference {
  quiet: boolean;
  root: string;
  chain: { name: string; args?: TemplateArg[] }[];
  end: number;
}

const IDENTIFIER = /[A-Za-z][\w-]*/y;

/** Renders a request template with the message's `$context` and `$input`, as API Gateway would. */
export function renderRequestTemplate(template: string, vars: TemplateInput): string {
  const roots: Record<string, unknown> = { context: vars.context, input: vars.input, util: TEMPLATE_UTIL };
  let out = '';
  let i = 0;
  while (i < template.length) {
    const ch = template[i]!;
    if (ch === '#') throw new Error(`request template: directives are not supported (at ${i})`);
    const ref = ch === '$' ? parseReference(template, i) : undefined;
    if (!ref) {
      out += ch;
      i++;
      continue;
    }
    const value = evaluateReference(ref, roots, template.slice(i, ref.end));
    out += value === null || value === undefined ? (ref.quiet ? '' : template.slice(i, ref.end)) : String(value);
    i = ref.end;
  }
  return out;
}

/** A reference starting at `start` (a `$`), or undefined when the `$` is plain text. */
function parseReference(s: string, start: number): TemplateReference | undefined {
  let i = start + 1;
  const quiet = s[i] === '!';
  if (quiet) i++;
  const braced = s[i] === '{';
  if (braced) i++;
  const name = (at: number) => {
    IDENTIFIER.lastIndex = at;
    return IDENTIFIER.exec(s)?.[0];
  };
  const root = name(i);
  if (!root) return undefined;
  i += root.length;
  const chain: TemplateReference['chain'] = [];
  for (;;) {
    const next = s[i] === '.' ? name(i + 1) : undefined;
    if (!next) break;
    i += 1 + next.length;
    if (s[i] !== '(') {
      chain.push({ name: next });
      continue;
    }
    const args: TemplateArg[] = [];
    i++;
    for (;;) {
      while (s[i] === ' ') i++;
      if (s[i] === ')' && args.length === 0) break;
      const quote = s[i];
      if (quote === '"' || quote === "'") {
        const close = s.indexOf(quote, i + 1);
        if (close < 0) throw new Error(`request template: unterminated string at ${i}`);
        const literal = s.slice(i + 1, close);
        // Velocity interpolates references in double-quoted strings; these templates need none.
        if (quote === '"' && /[$#]/.test(literal)) throw new Error(`request template: interpolated string at ${i}`);
        args.push({ literal });
        i = close + 1;
      } else if (quote === '$') {
        const ref = parseReference(s, i);
        if (!ref) throw new Error(`request template: bad argument at ${i}`);
        args.push({ ref });
        i = ref.end;
      } else {
        throw new Error(`request template: unsupported argument at ${i}`);
      }
      while (s[i] === ' ') i++;
      if (s[i] === ',') {
        i++;
        continue;
      }
      if (s[i] === ')') break;
      throw new Error(`request template: expected , or ) at ${i}`);
    }
    i++; // the ')'
    chain.push({ name: next, args });
  }
  if (braced) {
    if (s[i] !== '}') throw new Error(`request template: expected } at ${i}`);
    i++;
  }
  return { quiet, root, chain, end: i };
}

function evaluateReference(ref: TemplateReference, roots: Record<string, unknown>, source: string): unknown {
  if (!Object.hasOwn(roots, ref.root)) throw new Error(`request template: unknown reference ${source}`);
  let value: unknown = roots[ref.root];
  let target: unknown;
  for (const step of ref.chain) {
    if (value === null || value === undefined) return value;
    target = value;
    if (!step.args) {
      if (typeof value !== 'object' || !Object.hasOwn(value, step.name)) throw new Error(`request template: unknown reference ${source}`);
      value = (value as Record<string, unknown>)[step.name];
      continue;
    }
    const args = step.args.map((a) => ('literal' in a ? a.literal : evaluateReference(a.ref, roots, source)));
    if (target === TEMPLATE_UTIL && Object.hasOwn(TEMPLATE_UTIL, step.name)) value = TEMPLATE_UTIL[step.name]!(...args);
    else if (typeof target === 'string' && step.name === 'replaceAll' && args.length === 2) value = javaReplaceAll(target, String(args[0]), String(args[1]));
    else throw new Error(`request template: unsupported method in ${source}`);
  }
  return value;
}

/** Java's String.replaceAll, for the regexes JavaScript reads alike and a replacement without $ or \\. */
function javaReplaceAll(text: string, regex: string, replacement: string): string {
  if (/[$\\]/.test(replacement)) throw new Error('request template: replacement with $ or \\ is not supported');
  return text.replace(new RegExp(regex, 'g'), () => replacement);
}

/** Answers a handshake with an HTTP error and drops the socket, whatever the client does next. */
function refuse(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () => socket.destroy());
  // A client that never reads would keep the socket (and the gateway's close) waiting.
  setTimeout(() => socket.destroy(), 1000).unref();
}

function parseRouteSelection(expression: string): string {
  const match = /^\$request\.body\.([A-Za-z_][\w]*)$/.exec(expression);
  if (!match) throw new Error(`unsupported route selection expression ${expression}`);
  return match[1]!;
}

/** API Gateway's route selection: the body's field if the body is JSON with it, else $default. */
function selectRoute(body: string, field: string): string {
  try {
    const value = (JSON.parse(body) as Record<string, unknown>)[field];
    return typeof value === 'string' ? value : '$default';
  } catch {
    return '$default';
  }
}

/** Connection ids shaped like API Gateway's (12 random bytes, base64, ending in '='). */
function connectionId(): string {
  return randomBytes(11).toString('base64').replace(/\//g, 'A').replace(/\+/g, 'B');
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= limit) chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function lambdaContext(routeKey: string): Context {
  const deadline = Date.now() + 60_000;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `parley-local-${routeKey.replace('$', '')}`,
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:parley-local',
    memoryLimitInMB: '256',
    awsRequestId: randomUUID(),
    logGroupName: '/aws/lambda/parley-local',
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
