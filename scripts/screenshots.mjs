// Screenshots of the static demo for the README, from the release build in dist/ (run
// scripts/build-client.sh first), in Debian's Chromium with its colour emoji font. The demo
// is seeded (?seed=), so the same build gives the same rooms; run it again after a change.
// Usage: node scripts/screenshots.mjs [OUT_DIR]   (default docs/screenshots)
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

const out = process.argv[2] ?? 'docs/screenshots';
const port = 4199;
const server = spawn('node', ['tests/e2e/serve-static.mjs', 'dist', String(port), '/cahat/'], {
  stdio: 'ignore',
});
const demo = `http://127.0.0.1:${port}/cahat/?seed=3&speed=6`;

async function shoot(browser, name, { width, height, colorScheme }) {
  const page = await browser.newPage({ viewport: { width, height }, colorScheme });
  await page.goto(demo);
  await page.getByRole('heading', { name: 'CAHAT', level: 1 }).waitFor();
  // The fake users' conversation: replies, reactions, edits and someone typing.
  await page.waitForTimeout(9000);
  const box = page.getByRole('textbox', { name: 'Message' });
  if (width > 700) {
    await box.fill('Looks great @');
  }
  await page.screenshot({ path: `${out}/${name}.png` });
  await page.close();
  console.log(`${out}/${name}.png`);
}

try {
  await new Promise((resolve) => setTimeout(resolve, 500));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
  await shoot(browser, 'light', { width: 1280, height: 800, colorScheme: 'light' });
  await shoot(browser, 'dark', { width: 1280, height: 800, colorScheme: 'dark' });
  await shoot(browser, 'phone', { width: 390, height: 844, colorScheme: 'light' });
  await browser.close();
} finally {
  server.kill();
}
