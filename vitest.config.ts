import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 600_000,
    // Docker-backed suites share one daemon and build the same image; run files one at a time.
    fileParallelism: false,
  },
});
