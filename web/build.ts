import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { build, buildSync, type BuildOptions } from 'esbuild';

/*
 * How the chat widget is built (node side; never part of the bundle). One set of esbuild options
 * serves the local runtime (in memory at start-up), `npm run build:web` (files to host anywhere)
 * and the CDK stack (synth time), so all three ship the same bytes.
 */

const here = (file: string): string => new URL(file, import.meta.url).pathname;

/** The widget's file name wherever it is hosted. */
export const WIDGET_FILE = 'parley-chat.js';

/**
 * Live transcription (Amazon Transcribe through the AWS SDK), hosted next to the widget, which
 * loads it only when a session's speech goes to Transcribe: it is about three times the widget's size.
 */
import { TRANSCRIBE_FILE } from './widget/transcribe-loader';
export { TRANSCRIBE_FILE };

/** The scripts a host page gets, by file name: the widget, and the live transcription it loads on demand. */
const ENTRIES = { [WIDGET_FILE]: 'widget/index.ts', [TRANSCRIBE_FILE]: 'widget/transcribe-entry.ts' } as const;
export type BundleFile = keyof typeof ENTRIES;

const OPTIONS: BuildOptions = {
  bundle: true,
  // A classic script: one <script src> tag on any page defines <parley-chat>, module or not.
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'none',
  write: false,
};

export interface WidgetBundle {
  js: Uint8Array;
  /** Size gzipped at level 9, what a host's CDN roughly sends. */
  gzipBytes: number;
}

const bundleOf = (js: Uint8Array): WidgetBundle => ({ js, gzipBytes: gzipSync(js, { level: 9 }).length });

const optionsFor = (file: BundleFile): BuildOptions => ({ ...OPTIONS, entryPoints: [here(ENTRIES[file])] });

export async function bundle(file: BundleFile): Promise<WidgetBundle> {
  const result = await build(optionsFor(file));
  return bundleOf(result.outputFiles![0]!.contents);
}

/** The same bundle, synchronously (CDK constructs are built synchronously). */
export function bundleSync(file: BundleFile): WidgetBundle {
  const result = buildSync(optionsFor(file));
  return bundleOf(result.outputFiles![0]!.contents);
}

export const bundleWidget = (): Promise<WidgetBundle> => bundle(WIDGET_FILE);
/** The lazily loaded live-transcription bundle (TRANSCRIBE_FILE). */
export const bundleTranscribe = (): Promise<WidgetBundle> => bundle(TRANSCRIBE_FILE);

/**
 * The demo page: the sample host page with one <parley-chat>. With `endpoint` the widget talks to
 * that WebSocket URL; without, to the server that served the page (the local runtime).
 */
export function demoPage(endpoint?: string): string {
  const html = readFileSync(here('index.html'), 'utf8');
  if (endpoint === undefined) return html;
  const attr = endpoint.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
  return html.replace('<parley-chat', `<parley-chat endpoint="${attr}"`);
}
