import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';

/**
 * Runs `node <script> <bundle URL>` in a fresh process with exactly `env` (no tsx loader, as in
 * Lambda) and parses the one JSON document it prints. Anything else on stdout fails the run, on
 * purpose: a library printing at import is a finding.
 */
export function runJsonChild<T>(script: string, bundle: string, env: NodeJS.ProcessEnv, label: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, pathToFileURL(bundle).href], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`${label} exited with ${code}: ${err.trim().slice(0, 500)}`));
      try {
        resolve(JSON.parse(out) as T);
      } catch {
        reject(new Error(`${label} printed ${JSON.stringify(out.slice(0, 500))} (stderr: ${err.trim().slice(0, 500)})`));
      }
    });
  });
}
