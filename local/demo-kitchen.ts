import { randomInt } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The sample bot's webhooks, so `npm start` shows real actions end to end: `POST /demo/orders`
 * answers like a small order service (an order id and a pickup estimate), `GET /demo/wait-time`
 * tells the LLM's pickup_wait tool how long orders take.
 */
export function demoKitchen(): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    if (path === '/demo/wait-time') {
      // The LLM's pickup_wait tool: how busy the counter is right now.
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ minutes: 6 }));
      return true;
    }
    if (path !== '/demo/orders') return false;
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
