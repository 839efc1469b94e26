import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../../local/runtime';
import { startRuntime, TestClient } from './harness';

/*
 * `npx parley` as a user runs it: the bin script in a process of its own, reading the local store
 * of a running `npm start` (through the endpoint it publishes in its data folder, since LevelDB
 * allows one process per folder), then the same folder once nothing else holds it.
 */

const BIN = new URL('../../bin/parley.mjs', import.meta.url).pathname;

function parley(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...argv], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('npx parley against the local store', () => {
  let dir: string;
  let runtime: LocalRuntime | undefined;
  let sessionId: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'parley-cli-'));
    runtime = await startRuntime({ dataDir: join(dir, 'data') });
    const client = await TestClient.connect(runtime.wsUrl);
    sessionId = (await client.open()).started.sessionId;
    await client.say('a small latte please');
    client.close();
  }, 30_000);

  afterAll(async () => {
    await runtime?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists and replays a session while npm start holds the store; exit 0 when nothing changed, 1 when the bot did', async () => {
    const data = join(dir, 'data');
    const sessions = await parley('sessions', '--data-dir', data);
    expect(sessions).toMatchObject({ code: 0, stderr: '' });
    expect(sessions.stdout).toMatch(new RegExp(`^${sessionId}  \\d{4}-\\d\\d-\\d\\dT`));

    const same = await parley('replay', sessionId, '--data-dir', data);
    expect(same.code).toBe(0);
    expect(same.stderr).toContain(`session ${sessionId}: 2 turn records from the local store in ${data}`);
    expect(same.stderr).toContain('replaying turn 2/2');
    expect(same.stdout).toContain('no differences: 2 turns, 2 same');

    const map = JSON.parse(readFileSync(new URL('../../dialogue_map.json', import.meta.url), 'utf8'));
    delete map.$schema;
    map.prompts['cache:confirm_question'] = 'Ready to order?';
    writeFileSync(join(dir, 'changed.json'), JSON.stringify(map));
    const changed = await parley('replay', sessionId, '--data-dir', data, '--map', join(dir, 'changed.json'), '--quiet');
    expect(changed.code).toBe(1);
    expect(changed.stderr).toBe('');
    expect(changed.stdout).toContain('DIFFERENCES: 2 turns, 1 same, 1 changed');
  }, 60_000);

  it('opens the store itself once npm start is gone, and says clearly when a session or a store is missing', async () => {
    await runtime!.close();
    runtime = undefined;
    const data = join(dir, 'data');
    const exported = await parley('export', sessionId, '--data-dir', data, '--transcript');
    expect(exported.code).toBe(0);
    expect(JSON.parse(exported.stdout).map((r: { speaker: string; text: string }) => `${r.speaker}: ${r.text}`)).toEqual([
      expect.stringMatching(/^bot: Hi, welcome to Parley Café!/),
      'user: a small latte please',
      "bot: So that's 1 × small latte. Shall I place the order?",
    ]);

    const unknown = await parley('replay', 'no-such-session', '--data-dir', data);
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toContain(`parley: no session no-such-session in the local store in ${data} (session.not_found)`);

    const nowhere = await parley('sessions', '--data-dir', join(dir, 'nothing-here'));
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/no local data in .*nothing-here: run `npm start`/);

    const usage = await parley('replay');
    expect(usage.code).toBe(1);
    expect(usage.stderr).toMatch(/^parley: name a session id or an export file\n\nparley replay <session-id \| export\.json> \[options\]/);
  }, 60_000);
});
