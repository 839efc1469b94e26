import { readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readScript, runScript } from './script';

/** Every *.yaml under tests/conversations/ and examples/<bot>/conversations/ is a conversation test. */
const root = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const find = (dir: string): string[] => {
  try {
    return readdirSync(dir, { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile() && e.name.endsWith('.yaml'))
      .map((e) => join(e.parentPath, e.name));
  } catch {
    return [];
  }
};
const scripts = [...find(join(root, 'tests/conversations')), ...find(join(root, 'examples'))].sort();

describe('conversation scripts', () => {
  it('finds the scripts', () => {
    expect(scripts.length).toBeGreaterThanOrEqual(9);
  });
  for (const path of scripts) {
    it(`${relative(root, path)}: ${readScript(path).name}`, async () => {
      expect(await runScript(path)).toEqual([]);
    });
  }
});
