import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // WebGPU on llvmpipe and the runtime tests are heavy: one file at a time keeps the
    // 2-core machines from thrashing.
    fileParallelism: false,
    reporters: ['default', ['json', { outputFile: '.vitest-report.json' }]],
  },
});
