import { test, expect } from '@playwright/test';
import { spawn, ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoomServer } from './servers';
import { message, send, status } from './ui';

// The service worker (dist/sw.js, from client/assets/sw.js): the app opens with no network
// from the shell it keeps, and a new deployment waits for "Reload" instead of mixing with the
// version running.

const controlled = () => navigator.serviceWorker.controller !== null;

test('with no network the app opens from its shell, shows the saved room and its messages, and keeps what you write for when the room is back', async ({ page, context }) => {
  test.setTimeout(60_000);
  const room = new RoomServer('Lounge', { kind: 'embedded' });
  await room.start();
  try {
    await page.goto(`./?room=${room.url}`);
    await expect(status(page)).toHaveText('online');
    await send(page, 'written before the network went');
    await expect(message(page, 'written before the network went')).not.toHaveClass(/pending/);
    await page.waitForFunction(controlled);

    // The network goes, and the room with it (Playwright's offline mode leaves WebSockets be).
    await room.kill9();
    await context.setOffline(true);
    const response = await page.reload();
    expect(response?.fromServiceWorker(), 'the page came from the service worker').toBe(true);
    await expect(page.getByRole('heading', { name: 'CAHAT', level: 1 })).toBeVisible();
    await expect(message(page, 'written before the network went')).toHaveCount(1);
    await expect(status(page)).toHaveText(/offline|reconnecting/);
    await send(page, 'written with no network');
    await expect(message(page, 'written with no network')).toHaveClass(/pending/);

    // Back: what was written goes out, once.
    await context.setOffline(false);
    await room.start();
    await expect(status(page)).toHaveText('online', { timeout: 20_000 });
    await expect(message(page, 'written with no network')).not.toHaveClass(/pending/);
    await expect(message(page, 'written with no network')).toHaveCount(1);
  } finally {
    await room.stop();
  }
});

test('a new version waits for "Reload" and never mixes with the one running', async ({ page }) => {
  // A deployment of its own, to put a new version in: a copy of dist/ on another port.
  const dir = mkdtempSync(join(tmpdir(), 'cahat-deploy-'));
  cpSync(join(__dirname, '../../dist'), dir, { recursive: true });
  const port = 4000 + Math.floor(Math.random() * 900);
  const server: ChildProcess = spawn('node', [join(__dirname, 'serve-static.mjs'), dir, String(port), '/cahat/'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise((resolve) => server.stdout!.once('data', resolve));
    const app = `http://127.0.0.1:${port}/cahat/?seed=7&speed=0.001`;
    await page.goto(app);
    await expect(status(page)).toHaveText('online');
    await page.waitForFunction(controlled);
    const version = () => page.locator('meta[name="cahat-test-version"]');
    await expect(version()).toHaveCount(0);

    // A new build is deployed: its page differs, and so its service worker.
    const index = join(dir, 'index.html');
    writeFileSync(index, readFileSync(index, 'utf8').replace('<title>', '<meta name="cahat-test-version" content="2" /><title>'));
    await new Promise<void>((resolve, reject) => {
      const build = spawn('node', [join(__dirname, '../../scripts/service-worker.mjs'), dir], { stdio: 'ignore' });
      build.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`service-worker.mjs: ${code}`))));
    });
    await page.evaluate(() => navigator.serviceWorker.getRegistration().then((r) => r?.update()));
    const note = page.getByRole('status').filter({ hasText: 'A new version of CAHAT is ready.' });
    await expect(note).toBeVisible();

    // Until chosen, the running version stays, a reload included.
    await page.reload();
    await expect(status(page)).toHaveText('online');
    await expect(version()).toHaveCount(0);
    await expect(note).toBeVisible();

    await note.getByRole('button', { name: 'Reload' }).click();
    await expect(version()).toHaveCount(1);
    await expect(status(page)).toHaveText('online');
    await expect(note).toHaveCount(0);
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
