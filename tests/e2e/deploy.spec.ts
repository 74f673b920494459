import { test, expect, Browser, Page } from '@playwright/test';
import { Deployment, stores } from './servers';
import { roomButton, status, message, send, rename, log } from './ui';

// The web client through HAProxy in front of a room on three nodes and a three-server NATS
// cluster (deploy/, as real-server/tests/deploy.rs runs it): the node a person is on is killed;
// they see "reconnecting", are back through HAProxy on another node, and then have everything,
// once, in order.

/** Console errors the browser prints while its connection is down, and nothing else. */
const EXPECTED_WHILE_DOWN = /WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/' failed/;

for (const store of stores()) {
  test.describe(`a room on three nodes behind HAProxy, ${store.kind} store`, () => {
    test.describe.configure({ timeout: 120_000 });
    let room: Deployment;
    const problems: string[] = [];

    test.afterEach(async () => {
      expect(problems, 'console errors, page errors').toEqual([]);
      await room.stop();
    });

    async function join(browser: Browser, name: string): Promise<Page> {
      const context = await browser.newContext();
      const page = await context.newPage();
      page.on('console', (msg) => {
        if ((msg.type() === 'error' || msg.type() === 'warning') && !EXPECTED_WHILE_DOWN.test(msg.text())) {
          problems.push(`${name}: console ${msg.type()}: ${msg.text()}`);
        }
      });
      page.on('pageerror', (err) => problems.push(`${name}: page error: ${err.message}`));
      await page.goto(`./?room=${room.url}`);
      await expect(roomButton(page, 'Atrium')).toHaveAccessibleName(/, online( \d+ unread)?$/);
      await rename(page, name);
      return page;
    }

    test('the node a person is on is killed: "reconnecting", then everything once, through another node', async ({ browser }) => {
      room = new Deployment('Atrium', store);
      // Only the first node at first: Alice's connection is surely on it.
      await room.start(1);
      const alice = await join(browser, 'Alice');
      await room.startNode(1);
      await room.startNode(2);
      // Bob comes through HAProxy to a node with fewer people: another one.
      const bob = await join(browser, 'Bob');
      const before = ['one (Alice)', 'two (Bob)'];
      await send(alice, before[0]);
      await expect(message(bob, before[0])).toHaveCount(1);
      await send(bob, before[1]);
      await expect(message(alice, before[1])).toHaveCount(1);

      await room.kill9Node(0);
      await expect(status(alice)).toHaveText(/reconnecting|connecting/);
      // Bob's node lives: he writes on while Alice is away.
      const during = ['three (Bob, while Alice is away)', 'four (Bob)'];
      for (const text of during) await send(bob, text);
      await expect(status(alice)).toHaveText('online', { timeout: 30_000 });
      await send(alice, 'five (Alice, back)');
      const all = [...before, ...during, 'five (Alice, back)'];
      for (const p of [alice, bob]) {
        for (const text of all) await expect(message(p, text), `${text} exactly once`).toHaveCount(1);
        await expect(log(p).locator('.pending')).toHaveCount(0);
        const texts = (await log(p).getByRole('article').locator('.message-body').allInnerTexts()).map((t) => t.trim());
        expect(texts.filter((t) => all.includes(t)), 'in order').toEqual(all);
      }
    });
  });
}
