import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import type { TestProject } from 'vitest/node';
import { FAULTS_DOC, normalize, parseFaultTable, renderFaultTable, type FiledRow } from './fault-table-format';

/*
 * vitest globalSetup: gives the test files a folder for the fault rows they observe
 * (tests/support/fault-table.ts), and at the end of the run checks docs/faults.md against them,
 * like `npm run build:schema -- --check`. Only test files that ran completely and passed are
 * checked (a file run with -t, or with a failing test, has rows missing for reasons of its own);
 * rows of files that did not run stay as they are. With PARLEY_FAULTS_WRITE=1 (`npm run
 * docs:faults`) the file is rewritten instead.
 */
export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'parley-faults-'));
  project.provide('faultTableDir', dir);
  return () => {
    try {
      finish(project, dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function finish(project: TestProject, dir: string): void {
  const root = project.config.root;
  const docPath = join(root, FAULTS_DOC);
  const write = process.env.PARLEY_FAULTS_WRITE === '1';
  const observed = new Map<string, FiledRow[]>();
  for (const name of readdirSync(dir)) {
    const { test, rows } = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { test: string; rows: FiledRow[] };
    observed.set(test, rows);
  }
  // The files whose rows this run can vouch for: every test ran, and passed.
  const complete = new Set<string>();
  const incomplete: string[] = [];
  for (const module of project.vitest.state.getTestModules()) {
    const test = relative(root, module.moduleId).split(sep).join('/');
    const tests = [...module.children.allTests()];
    if (module.state() === 'passed' && tests.every((t) => t.result().state === 'passed')) complete.add(test);
    else if (observed.has(test)) incomplete.push(test);
  }
  const committed = existsSync(docPath) ? parseFaultTable(readFileSync(docPath, 'utf8')) : [];
  if (!observed.size && !write) return;
  // Rows of files that ran completely come from this run; the others stay, unless their file is gone.
  const kept = committed.filter((r) => !complete.has(r.test) && existsSync(join(root, r.test)));
  const fresh = [...observed].filter(([test]) => complete.has(test)).flatMap(([, rows]) => rows);
  const rendered = renderFaultTable([...kept, ...fresh]);
  const current = existsSync(docPath) ? readFileSync(docPath, 'utf8') : '';
  const note = incomplete.length ? ` (not checked, some of their tests failed or were skipped: ${incomplete.join(', ')})` : '';
  if (rendered === current) return;
  if (write) {
    mkdirSync(dirname(docPath), { recursive: true });
    writeFileSync(docPath, rendered);
    console.log(`fault table: wrote ${FAULTS_DOC}${note}`);
    return;
  }
  const key = (r: FiledRow) => JSON.stringify([r.area, r.fault, r.outcome, r.test]);
  const before = new Set(normalize(committed).map(key));
  const after = new Set(normalize([...kept, ...fresh]).map(key));
  const added = [...after].filter((k) => !before.has(k));
  const removed = [...before].filter((k) => !after.has(k));
  const show = (rows: string[]) =>
    rows
      .slice(0, 20)
      .map((k) => {
        const [area, fault, outcome, test] = JSON.parse(k) as string[];
        return `    ${area} | ${fault} | ${outcome} (${test})`;
      })
      .join('\n');
  console.error(
    [
      `\n${FAULTS_DOC} differs from what the tests observed; run \`npm run docs:faults\` and commit it${note}.`,
      added.length ? `  observed, not in the file:\n${show(added)}` : '',
      removed.length ? `  in the file, not observed:\n${show(removed)}` : '',
      !current ? `  (${FAULTS_DOC} is missing)` : !added.length && !removed.length ? '  (only the layout differs)' : '',
    ]
      .filter(Boolean)
      .join('\n'),
  );
  // A teardown's exception is only logged; the exit code is what CI and `npm test` see.
  process.exitCode = 1;
}
