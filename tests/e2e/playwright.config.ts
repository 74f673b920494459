import { defineConfig } from '@playwright/test';

// The release build (dist/) is served by a plain static file server under a sub-path, as
// GitHub Pages serves it (/<repo>/): see serve-static.mjs.
const port = Number(process.env.CAHAT_E2E_PORT ?? 4173);

export default defineConfig({
  testDir: '.',
  timeout: 30_000,
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}/cahat/`,
    launchOptions: {
      // Debian's Chromium here; CI elsewhere may point CAHAT_CHROMIUM at another Chromium build.
      executablePath: process.env.CAHAT_CHROMIUM || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  webServer: {
    command: `node tests/e2e/serve-static.mjs dist ${port} /cahat/`,
    url: `http://127.0.0.1:${port}/cahat/`,
    reuseExistingServer: false,
    cwd: '../..',
  },
});
