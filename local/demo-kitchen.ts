import { randomInt } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The sample bot's order webhook (`POST /demo/orders`), so `npm start` shows a real action
 * end to end. It answers like a small order service would: an order id and a pickup estimate.
 */
export function demoKitchen(): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    if (new URL(req.url ?? '/', 'http://local').pathname !== '/demo/orders') return false;
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST' }).end();
      return true;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let order: { drink?: unknown; size?: unknown };
    try {
      order = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof order;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'body is not JSON' }));
      return true;
    }
    if (typeof order.drink !== 'string' || typeof order.size !== 'string') {
      res.writeHead(422, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'drink and size are required' }));
      return true;
    }
    res
      .writeHead(201, { 'content-type': 'application/json' })
      .end(JSON.stringify({ id: `P-${randomInt(100, 999)}`, ready_in_minutes: order.size === 'large' ? 7 : 5 }));
    return true;
  };
}
