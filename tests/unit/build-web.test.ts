import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseBuildWebArgs, runBuildWeb, USAGE } from '../../scripts/build-web.js';
import type { WidgetBundle } from '../../web/build.js';

const FAKE_JS = new TextEncoder().encode('/* fake widget */'.repeat(200));
const fakeBundle = async (): Promise<WidgetBundle> => ({ js: FAKE_JS, gzipBytes: gzipSync(FAKE_JS, { level: 9 }).length });
const SOURCE_PAGE = readFileSync(new URL('../../web/index.html', import.meta.url), 'utf8');

describe('npm run build:web', () => {
  let outDir: string;
  beforeEach(() => {
    outDir = mkdtempSync(path.join(tmpdir(), 'parley-build-web-'));
  });
  afterEach(() => rmSync(outDir, { recursive: true, force: true }));

  it('writes parley-chat.js, parley-transcribe.js and index.html and prints them, with the raw and gzipped sizes', async () => {
    const live = new TextEncoder().encode('/* live transcription */');
    const run = await runBuildWeb([], { outDir, bundle: fakeBundle, bundleTranscribe: async () => ({ js: live, gzipBytes: gzipSync(live, { level: 9 }).length }) });
    expect(run.code).toBe(0);
    expect(readdirSync(outDir).sort()).toEqual(['index.html', 'parley-chat.js', 'parley-transcribe.js']);
    expect(new Uint8Array(readFileSync(path.join(outDir, 'parley-chat.js')))).toEqual(FAKE_JS);
    expect(new Uint8Array(readFileSync(path.join(outDir, 'parley-transcribe.js')))).toEqual(live);
    const [scriptLine, pageLine, liveLine] = run.text.split('\n');
    expect(liveLine).toContain(path.join(outDir, 'parley-transcribe.js'));
    expect(liveLine).toMatch(/loaded only for live transcription/);
    expect(scriptLine).toContain(path.join(outDir, 'parley-chat.js'));
    expect(scriptLine).toMatch(/: 3\.3 kB, 0\.\d kB gzipped$/);
    expect(pageLine).toContain(path.join(outDir, 'index.html'));
    expect(pageLine).toContain('the host that serves it');
  });

  it('without --endpoint, the demo page is web/index.html as it is (its widget connects to the host that serves it)', async () => {
    await runBuildWeb([], { outDir, bundle: fakeBundle, bundleTranscribe: fakeBundle });
    expect(readFileSync(path.join(outDir, 'index.html'), 'utf8')).toBe(SOURCE_PAGE);
  });

  // Needs web/index.html to hold a <parley-chat> tag: demoPage() puts the endpoint there.
  it("with --endpoint, the demo page's <parley-chat> connects there", async () => {
    for (const args of [['--endpoint', 'wss://chat.example.com/prod'], ['--endpoint=wss://chat.example.com/prod']]) {
      const run = await runBuildWeb(args, { outDir, bundle: fakeBundle, bundleTranscribe: fakeBundle });
      expect(run.text).toContain('connecting to wss://chat.example.com/prod');
      expect(readFileSync(path.join(outDir, 'index.html'), 'utf8')).toContain('<parley-chat endpoint="wss://chat.example.com/prod"');
    }
  });

  it('--help prints the usage and builds nothing', async () => {
    const run = await runBuildWeb(['--help'], { outDir, bundle: () => Promise.reject(new Error('bundled')) });
    expect(run).toEqual({ text: USAGE, code: 0 });
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('rejects a missing or non-WebSocket endpoint and unknown arguments with code 2 and the usage', async () => {
    for (const args of [['--endpoint'], ['--endpoint', 'https://chat.example.com'], ['--endpoint=wss://'], ['--out', 'x']]) {
      const run = await runBuildWeb(args, { outDir, bundle: fakeBundle, bundleTranscribe: fakeBundle });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.text).toContain(USAGE);
    }
    expect(readdirSync(outDir)).toEqual([]);
  });

  it('parses --endpoint url and --endpoint=url, the last one winning', () => {
    expect(parseBuildWebArgs([])).toEqual({ help: false });
    expect(parseBuildWebArgs(['--endpoint', 'ws://localhost:3000'])).toEqual({ help: false, endpoint: 'ws://localhost:3000' });
    expect(parseBuildWebArgs(['--endpoint=wss://a.example/prod', '--endpoint', 'wss://b.example/prod'])).toEqual({
      help: false,
      endpoint: 'wss://b.example/prod',
    });
  });
});
