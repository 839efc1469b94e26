import type { IncomingMessage, ServerResponse } from 'node:http';
import { bundleWidget, demoPage, WIDGET_FILE } from '../web/build';

/**
 * The chat widget and its demo page at `/`, bundled once at start-up (esbuild, in memory), so
 * `npm start` needs no separate build step.
 */
export async function webAssets(): Promise<(req: IncomingMessage, res: ServerResponse) => boolean> {
  const { js } = await bundleWidget();
  const html = demoPage();
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    if (req.method !== 'GET') return false;
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
      return true;
    }
    if (path === `/${WIDGET_FILE}`) {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(js);
      return true;
    }
    return false;
  };
}
