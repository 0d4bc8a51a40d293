import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/peer.test.ts needs llama.cpp (scripts/install-peer.sh): only with CTCSPEC_PEER=1
    exclude: [...configDefaults.exclude, ...(process.env.CTCSPEC_PEER === '1' ? [] : ['test/peer.test.ts'])],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // WebGPU on llvmpipe and the runtime tests are heavy: one file at a time keeps the
    // 2-core machines from thrashing.
    fileParallelism: false,
    reporters: ['default', ['json', { outputFile: '.vitest-report.json' }]],
  },
});
