import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { expect, inject } from 'vitest';
import type { FaultRow, FiledRow } from './fault-table-format';

export type { FaultRow } from './fault-table-format';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where each test file writes the fault rows it observed (tests/support/fault-table-setup.ts). */
    faultTableDir: string;
  }
}

/** The rows recorded so far, per test file (a worker may run several files). */
const recorded = new Map<string, FiledRow[]>();

/**
 * Records a fault or bad input this test tried and the outcome it OBSERVED: pass what the test saw
 * (an error code, a record's status, a count), never a constant that would stay true whatever
 * happened. The rows end up in docs/faults.md (see tests/support/fault-table-format.ts).
 */
export function recordFault(row: FaultRow): void {
  const dir = inject('faultTableDir');
  const testPath = expect.getState().testPath;
  if (!dir || !testPath) return; // run outside the project's vitest config: nothing to keep
  const test = relative(process.cwd(), testPath).split(sep).join('/');
  const rows = recorded.get(test) ?? [];
  rows.push({ ...row, test });
  recorded.set(test, rows);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${test.replace(/[^\w.-]+/g, '_')}.json`), JSON.stringify({ test, rows }));
}
