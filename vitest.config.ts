import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/lib/**/*.test.ts', 'test/agent/**/*.test.ts', 'test/web/**/*.test.ts', 'test/scripts/**/*.test.ts'],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: ['test/e2e/global_setup.ts'],
          // @livekit/rtc-node logs at debug unless NODE_ENV=production; keep test output readable.
          env: { NODE_ENV: 'production' },
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // e2e files share one livekit-server and start real worker processes: run them one at a
          // time, in one fork (the rtc-node native client is process-wide; it is not disposed per file).
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
        },
      },
    ],
  },
});
