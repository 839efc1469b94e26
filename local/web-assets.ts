import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { build } from 'esbuild';

const root = new URL('../web/', import.meta.url);

/**
 * The chat page: web/index.html plus web/chat.ts bundled once at start-up (esbuild, in memory), so
 * `npm start` needs no separate build step.
 */
export async function webAssets(): Promise<(req: IncomingMessage, res: ServerResponse) => boolean> {
  const [html, bundle] = await Promise.all([
    readFile(new URL('index.html', root), 'utf8'),
    build({
      entryPoints: [new URL('chat.ts', root).pathname],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      write: false,
      legalComments: 'none',
    }),
  ]);
  const js = bundle.outputFiles[0]!.contents;
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    if (req.method !== 'GET') return false;
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
      return true;
    }
    if (path === '/chat.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(js);
      return true;
    }
    return false;
  };
}
