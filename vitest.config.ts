import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["**/*.test.ts"],
    exclude: ["node_modules/**", "dist/**", ".cache/**"],
    pool: "forks",
    // Two cores: more workers only make the heavy tests (model, OpenClaw, browser) fight.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 600_000,
    globalSetup: ["test/support/global-setup.ts"],
  },
});
