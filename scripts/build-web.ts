/*
 * npm run build:web [-- --endpoint wss://…/prod]
 *
 * Builds the chat widget (web/build.ts) into build/web: `parley-chat.js`, the one script a host page
 * needs for <parley-chat>, `parley-transcribe.js` next to it (live transcription, which the widget
 * loads itself when a session's speech goes to Amazon Transcribe), and `index.html`, the demo page. With --endpoint the demo page's widget
 * connects to that WebSocket URL (a deployed stack's WebSocketUrl output); without, to the host that
 * served the page. Prints what it wrote, with the script's size raw and gzipped.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundleTranscribe, bundleWidget, demoPage, TRANSCRIBE_FILE, WIDGET_FILE, type WidgetBundle } from '../web/build';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where build:web writes. */
export const DEFAULT_WEB_DIR = join(REPO_ROOT, 'build', 'web');

export const USAGE = `Usage: npm run build:web [-- --endpoint wss://…/prod]

Writes build/web/${WIDGET_FILE} (the <parley-chat> widget), build/web/${TRANSCRIBE_FILE} (live transcription,
loaded by the widget when needed: host it next to ${WIDGET_FILE}) and build/web/index.html (its demo page).
  --endpoint <url>  the WebSocket URL (ws:// or wss://) the demo page's widget connects to
                    (default: the host that serves the page)
  --help            this text`;

export interface BuildWebRun {
  /** What to print on stdout (or stderr when code is not 0). */
  text: string;
  /** 0; 2 for bad arguments. */
  code: number;
}

/** `--endpoint url`, `--endpoint=url` and `--help`; anything else is an error. */
export function parseBuildWebArgs(args: string[]): { help: true } | { help: false; endpoint?: string } | { error: string } {
  let endpoint: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') return { help: true };
    const value = arg === '--endpoint' ? args[++i] : arg.startsWith('--endpoint=') ? arg.slice('--endpoint='.length) : null;
    if (value === null) return { error: `unknown argument '${arg}'` };
    if (value === undefined || !/^wss?:\/\/[^/]/.test(value)) return { error: `--endpoint needs a ws:// or wss:// URL, got '${value ?? ''}'` };
    endpoint = value;
  }
  return endpoint === undefined ? { help: false } : { help: false, endpoint };
}

const kB = (bytes: number): string => `${(bytes / 1024).toFixed(1)} kB`;

/** The whole command, without the process: testable with a temp folder and a fake bundle. */
export async function runBuildWeb(
  args: string[],
  options: { outDir?: string; bundle?: () => Promise<WidgetBundle>; bundleTranscribe?: () => Promise<WidgetBundle> } = {},
): Promise<BuildWebRun> {
  const parsed = parseBuildWebArgs(args);
  if ('error' in parsed) return { text: `build:web: ${parsed.error}\n\n${USAGE}`, code: 2 };
  if (parsed.help) return { text: USAGE, code: 0 };

  const dir = options.outDir ?? DEFAULT_WEB_DIR;
  const { js, gzipBytes } = await (options.bundle ?? bundleWidget)();
  const live = await (options.bundleTranscribe ?? bundleTranscribe)();
  mkdirSync(dir, { recursive: true });
  const script = join(dir, WIDGET_FILE);
  const liveScript = join(dir, TRANSCRIBE_FILE);
  const page = join(dir, 'index.html');
  writeFileSync(script, js);
  writeFileSync(liveScript, live.js);
  writeFileSync(page, demoPage(parsed.endpoint));

  const show = (p: string) => {
    const rel = relative(process.cwd(), p);
    return rel && !rel.startsWith('..') ? rel : p;
  };
  const target = parsed.endpoint ?? 'the host that serves it';
  return {
    text: [
      `build:web: ${show(script)}: ${kB(js.length)}, ${kB(gzipBytes)} gzipped`,
      `build:web: ${show(page)}: the demo page, connecting to ${target}`,
      `build:web: ${show(liveScript)}: ${kB(live.js.length)}, ${kB(live.gzipBytes)} gzipped (loaded only for live transcription)`,
    ].join('\n'),
    code: 0,
  };
}

async function main(): Promise<number> {
  const run = await runBuildWeb(process.argv.slice(2));
  (run.code === 0 ? process.stdout : process.stderr).write(`${run.text}\n`);
  return run.code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`build:web failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
