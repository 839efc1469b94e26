import { writeFileSync } from 'node:fs';
import { ParleyError } from '../lib/errors';
import { exportSession } from '../lib/replay/export';
import { renderHtml } from '../lib/replay/render-html';
import { ansi, plain, renderText } from '../lib/replay/render-text';
import { replaySession } from '../lib/replay/replay';
import { reportFails, type ReplayReport } from '../lib/replay/report';
import { parseCli, type ExportArgs, type ReplayArgs, type SessionsArgs } from './args';
import { replaySetup } from './setup';
import { loadSession, openStore } from './stores';

/** Where the CLI writes and what it reads: the process's, or a test's. */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
  /** Colours and a progress line that rewrites itself. */
  tty: boolean;
  width: number;
}

/** Runs one command line; returns the exit code (0: fine, and for replay: no differences). */
export async function main(argv: readonly string[], io: Io): Promise<number> {
  const parsed = parseCli(argv);
  if (parsed.kind === 'help') {
    io.stdout(parsed.text);
    return 0;
  }
  if (parsed.kind === 'error') {
    io.stderr(`parley: ${parsed.message}\n\n${parsed.help}`);
    return 1;
  }
  try {
    const { args } = parsed;
    if (args.command === 'replay') return await replay(args, io);
    if (args.command === 'export') return await exportCommand(args, io);
    return await sessions(args, io);
  } catch (err) {
    const message = err instanceof ParleyError ? `${err.message} (${err.code})` : err instanceof Error ? err.message : String(err);
    io.stderr(`parley: ${message}\n`);
    return 1;
  }
}

async function replay(args: ReplayArgs, io: Io): Promise<number> {
  const note = (line: string) => {
    if (!args.quiet) io.stderr(`${line}\n`);
  };
  const session = await loadSession(args.session, args, io.env);
  note(`session ${session.sessionId}: ${session.records.length} turn records from ${session.source}`);
  const setup = await replaySetup(args, io.env, note);
  const started = performance.now();
  const { report, records } = await replaySession(
    session,
    {
      ...setup,
      onProgress: (done, total) => {
        if (args.quiet) return;
        const line = `replaying turn ${Math.min(done + 1, total)}/${total}`;
        if (io.tty) io.stderr(`\r${line}${done === total ? '\n' : ''}`);
        else if (done < total) io.stderr(`${line}\n`);
      },
    },
    args.from === undefined ? undefined : { from: args.from, inputs: args.input },
  );
  note(`replayed in ${Math.round(performance.now() - started)} ms: ${report.summary.same} same, ${report.summary.changed} changed, ${report.summary.diverged} diverged`);

  const rendered = render(report, args.format, io);
  if (args.out) {
    writeFileSync(args.out, rendered);
    note(`report written to ${args.out}`);
  } else io.stdout(rendered);
  if (args.json) writeFileSync(args.json, render(report, 'json', io));
  if (args.html) writeFileSync(args.html, render(report, 'html', io));
  if (args.save) {
    const base = args.from === undefined ? [] : session.records.filter((r) => r.seq <= args.from!);
    writeFileSync(args.save, `${JSON.stringify(exportSession({ sessionId: session.sessionId, source: args.save, records: [...base, ...records] }), null, 2)}\n`);
    note(`replayed session written to ${args.save}`);
  }
  // A what-if has nothing recorded to differ from: only a divergence fails it.
  return reportFails(report) ? 1 : 0;
}

function render(report: ReplayReport, format: 'table' | 'json' | 'html', io: Io): string {
  if (format === 'json') return `${JSON.stringify(report, null, 2)}\n`;
  if (format === 'html') return renderHtml(report);
  return `${renderText(report, io.tty && !io.env.NO_COLOR ? ansi : plain, io.width)}\n`;
}

async function exportCommand(args: ExportArgs, io: Io): Promise<number> {
  const session = await loadSession(args.session, args, io.env);
  const file = exportSession(session);
  const text = `${JSON.stringify(args.transcript ? file.transcript : file, null, 2)}\n`;
  if (args.out) {
    writeFileSync(args.out, text);
    io.stderr(`${session.records.length} turn records of session ${session.sessionId} written to ${args.out}\n`);
  } else io.stdout(text);
  return 0;
}

async function sessions(args: SessionsArgs, io: Io): Promise<number> {
  const open = await openStore(args, io.env);
  try {
    const found = await open.store.listSessions(args.limit);
    if (!found.length) io.stderr(`no sessions in ${open.describe}\n`);
    for (const s of found) io.stdout(`${s.sessionId}  ${s.createdAt}\n`);
    return 0;
  } finally {
    await open.close();
  }
}

/** The process's own streams. */
export const processIo = (): Io => ({
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  tty: Boolean(process.stderr.isTTY && process.stdout.isTTY),
  width: process.stdout.columns ?? 120,
});
