import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * An HTTP proxy in front of dynalite that speaks DynamoDB's error protocol: the requests of an
 * operation (the X-Amz-Target header's `DynamoDB_20120810.<Operation>`) can be answered with an
 * error instead of being forwarded, or forwarded with the answer lost. The SDK cannot tell it from
 * DynamoDB, so its real retry logic runs.
 *
 *   throttle  400 ProvisionedThroughputExceededException (the SDK retries it as throttling)
 *   fail      500 InternalServerError (retried as a transient error)
 *   lose      forwarded to dynalite, which executes it, but the client gets a 500 instead of the answer
 */

export type DynamoFaultKind = 'throttle' | 'fail' | 'lose';

export interface SeenRequest {
  operation: string;
  /** The SDK's `amz-sdk-request` header: `attempt=2; max=4` on a retry. */
  attempt: number;
  /** What the proxy did with it. */
  outcome: 'forwarded' | DynamoFaultKind;
  at: number;
}

export interface DynamoProxy {
  endpoint: string;
  /** The next `count` requests of `operation` get the fault. */
  inject(operation: string, kind: DynamoFaultKind, count: number): void;
  /** Every request since the last reset, in arrival order. */
  readonly seen: SeenRequest[];
  reset(): void;
  close(): Promise<void>;
}

const ERRORS: Record<Exclude<DynamoFaultKind, 'lose'>, { status: number; type: string; message: string }> = {
  throttle: {
    status: 400,
    type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
    message: 'The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.',
  },
  fail: { status: 500, type: 'com.amazonaws.dynamodb.v20120810#InternalServerError', message: 'Internal server error' },
};

export async function startDynamoProxy(target: string): Promise<DynamoProxy> {
  const upstream = new URL(target);
  const pending = new Map<string, Array<DynamoFaultKind>>();
  let seen: SeenRequest[] = [];

  const answer = (res: ServerResponse, kind: Exclude<DynamoFaultKind, 'lose'>) => {
    const e = ERRORS[kind];
    const body = JSON.stringify({ __type: e.type, message: e.message });
    res.writeHead(e.status, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': crypto.randomUUID(), 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const forward = (req: IncomingMessage, body: Buffer): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const out = request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 500, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      out.on('error', reject);
      out.end(body);
    });

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const operation = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? '';
        const attempt = Number(/attempt=(\d+)/.exec(String(req.headers['amz-sdk-request'] ?? ''))?.[1] ?? 1);
        const kind = pending.get(operation)?.shift();
        seen.push({ operation, attempt, outcome: kind ?? 'forwarded', at: performance.now() });
        if (kind === 'throttle' || kind === 'fail') return answer(res, kind);
        const upstreamAnswer = await forward(req, Buffer.concat(chunks));
        if (kind === 'lose') return answer(res, 'fail');
        res.writeHead(upstreamAnswer.status, upstreamAnswer.headers);
        res.end(upstreamAnswer.body);
      })().catch((err: unknown) => {
        res.writeHead(502).end(String(err));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    inject(operation, kind, count) {
      pending.set(operation, [...(pending.get(operation) ?? []), ...Array.from({ length: count }, () => kind)]);
    },
    get seen() {
      return seen;
    },
    reset() {
      pending.clear();
      seen = [];
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
