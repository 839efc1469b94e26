import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The file, inside the data folder, that holds the local runtime's resume secret. */
export const RESUME_SECRET_FILE = 'resume-secret';

/**
 * `npm start` without PARLEY_RESUME_SECRET: a random secret made once per data folder and kept
 * there (owner-only), next to the sessions it signs tokens for. A restart keeps it, so resume
 * tokens outlive the process exactly as long as the sessions do; deleting the folder forgets both.
 */
export function localResumeSecret(dataDir: string): string {
  const file = join(dataDir, RESUME_SECRET_FILE);
  const existing = read(file);
  if (existing) return existing;
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  try {
    // 'wx': never overwrite a secret another start wrote meanwhile.
    writeFileSync(file, `${secret}\n`, { flag: 'wx', mode: 0o600 });
    return secret;
  } catch (err) {
    const winner = (err as NodeJS.ErrnoException).code === 'EEXIST' ? read(file) : undefined;
    if (winner) return winner;
    throw err;
  }
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
