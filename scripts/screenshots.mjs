// Screenshots of the static demo for the README, from the release build in dist/ (run
// scripts/build-client.sh first), in Debian's Chromium with its colour emoji font and a fake
// camera. The demo is seeded (?seed=), so the same build gives the same rooms; run it again
// after a change. Four: the room (light), a direct conversation (dark), a call, a phone.
// Usage: node scripts/screenshots.mjs [OUT_DIR]   (default docs/screenshots)
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

const out = process.argv[2] ?? 'docs/screenshots';
const port = 4199;
const server = spawn('node', ['tests/e2e/serve-static.mjs', 'dist', String(port), '/cahat/'], {
  stdio: 'ignore',
});
const demo = (query) => `http://127.0.0.1:${port}/cahat/?${query}`;

async function shoot(browser, name, { width, height, colorScheme, scene }) {
  const context = await browser.newContext({
    viewport: { width, height },
    colorScheme,
    permissions: ['camera', 'microphone'],
  });
  const page = await context.newPage();
  await scene(page);
  await page.screenshot({ path: `${out}/${name}.png` });
  await context.close();
  console.log(`${out}/${name}.png`);
}

/** The fake users' conversation: replies, reactions, edits and someone typing. */
async function room(page, typed) {
  await page.goto(demo('seed=3&speed=6'));
  await page.getByRole('heading', { name: 'CAHAT', level: 1 }).waitFor();
  await page.waitForTimeout(9000);
  if (typed) await page.getByRole('textbox', { name: 'Message' }).fill(typed);
}

/** A direct conversation a fake user started, under its room in the list. */
async function conversation(page) {
  await page.goto(demo('seed=7&speed=30'));
  const opened = page.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /^Direct messages with/ }).first();
  await opened.waitFor({ timeout: 60_000 });
  await opened.click();
  await page.getByRole('textbox', { name: 'Message' }).fill('Sounds good, see you there :tada:');
  await page.waitForTimeout(1500);
}

/** A video call a fake user answered with their made-up camera. */
async function call(page) {
  await page.goto(demo('seed=7'));
  const ring = page.getByRole('complementary', { name: 'People' }).getByRole('button', { name: /^Call / }).first();
  await ring.waitFor({ timeout: 20_000 });
  await ring.click();
  await page.locator('#call-status', { hasText: 'Connected' }).waitFor({ timeout: 20_000 });
  await page.waitForTimeout(3000);
}

try {
  await new Promise((resolve) => setTimeout(resolve, 500));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const desktop = { width: 1280, height: 800 };
  await shoot(browser, 'light', { ...desktop, colorScheme: 'light', scene: (p) => room(p, 'Looks great @') });
  await shoot(browser, 'dark', { ...desktop, colorScheme: 'dark', scene: conversation });
  await shoot(browser, 'call', { ...desktop, colorScheme: 'light', scene: call });
  await shoot(browser, 'phone', { width: 390, height: 844, colorScheme: 'light', scene: (p) => room(p) });
  await browser.close();
} finally {
  server.kill();
}
