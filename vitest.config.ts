import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Integration tests start dynalite and the local gateway on free ports; CDK tests bundle with esbuild.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Collects the faults the tests inject and checks docs/faults.md against them (npm run docs:faults rewrites it).
    globalSetup: ['tests/support/fault-table-setup.ts'],
  },
});
