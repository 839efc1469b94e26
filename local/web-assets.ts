import type { IncomingMessage, ServerResponse } from 'node:http';
import { bundleTranscribe, bundleWidget, demoPage, TRANSCRIBE_FILE, WIDGET_FILE } from '../web/build';

/**
 * The chat widget and its demo page at `/`, bundled once at start-up (esbuild, in memory), so
 * `npm start` needs no separate build step. The live-transcription bundle next to it is bundled on
 * its first request: only a session whose speech goes to Amazon Transcribe loads it.
 */
export async function webAssets(): Promise<(req: IncomingMessage, res: ServerResponse) => boolean> {
  const { js } = await bundleWidget();
  const html = demoPage();
  let transcribe: Promise<Uint8Array> | undefined;
  const script = (res: ServerResponse, body: Uint8Array) =>
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(body);
  return (req, res) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    if (req.method !== 'GET') return false;
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
      return true;
    }
    if (path === `/${WIDGET_FILE}`) {
      script(res, js);
      return true;
    }
    if (path === `/${TRANSCRIBE_FILE}`) {
      transcribe ??= bundleTranscribe().then((b) => b.js);
      transcribe.then(
        (body) => script(res, body),
        (err: unknown) => {
          transcribe = undefined;
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`bundling ${TRANSCRIBE_FILE} failed: ${String(err)}`);
        },
      );
      return true;
    }
    return false;
  };
}
