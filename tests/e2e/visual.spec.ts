import { test, expect, Page } from '@playwright/test';
import { rooms, roomButton, log, people, status } from './ui';

// Screenshot comparisons of seeded demo states, so that a stylesheet rule that goes missing
// fails a test (the role-and-name tests pass without any CSS). The fake users are slowed
// almost to a stop (?speed=0.001: one act in about an hour) so that the seeded room stays as
// it opened; what depends on the clock (times, day names) is masked. Baselines live beside
// this file (visual.spec.ts-snapshots/), made in Debian's Chromium with its colour emoji font,
// as CI runs it. After a deliberate change of the look: `npx playwright test --config
// tests/e2e/playwright.config.ts visual.spec.ts --update-snapshots`, and review the images.

const STILL_DEMO = './?seed=7&speed=0.001';
const SHOT = { maxDiffPixelRatio: 0.01 };

async function open(page: Page) {
  await page.goto(STILL_DEMO);
  await expect(status(page)).toHaveText('online');
  await expect(log(page).getByRole('article').first()).toBeVisible();
  await page.evaluate(() => document.fonts.ready);
}

/** What changes with the clock: message times, day separators, the header's day. */
const clock = (page: Page) => [page.locator('time'), page.locator('.day-separator'), page.locator('.current-day'), page.locator('.last-seen')];

/** Opens a direct conversation with the first fake user in the people list. */
async function openConversation(page: Page) {
  const first = people(page).getByRole('listitem').nth(1).getByRole('button').first();
  const name = (await first.innerText()).trim().split('\n')[0];
  await first.click();
  await page.getByRole('dialog').getByRole('button', { name: /^Message .* directly$/ }).click();
  await expect(page.getByRole('main').getByRole('heading', { level: 2 })).toHaveText(new RegExp(`^Direct messages with ${name}`));
}

for (const scheme of ['light', 'dark'] as const) {
  test(`desktop, ${scheme}: the frame around the log, and a conversation under its room`, async ({ page }) => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: scheme });
    await open(page);
    await expect(page).toHaveScreenshot(`desktop-room-${scheme}.png`, { ...SHOT, mask: [log(page), ...clock(page)] });
    await openConversation(page);
    await expect(rooms(page)).toHaveScreenshot(`desktop-rooms-with-conversation-${scheme}.png`, SHOT);
  });

  test(`messages as they read, ${scheme}: markdown, quotes, code, reactions`, async ({ page }) => {
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.emulateMedia({ colorScheme: scheme });
    await open(page);
    const rich = log(page).getByRole('article').filter({ has: page.locator('.message-body :is(pre, blockquote, table)') }).first();
    await rich.scrollIntoViewIfNeeded();
    await expect(rich).toHaveScreenshot(`message-rich-${scheme}.png`, { ...SHOT, mask: clock(page) });
    const reacted = log(page).getByRole('article').filter({ has: page.locator('.reactions .reaction') }).first();
    await reacted.scrollIntoViewIfNeeded();
    await expect(reacted).toHaveScreenshot(`message-reactions-${scheme}.png`, { ...SHOT, mask: clock(page) });
  });
}

test('phone: the room, and the rooms drawer', async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 667 });
  await open(page);
  await expect(page).toHaveScreenshot('phone-room.png', { ...SHOT, mask: [log(page), ...clock(page)] });
  await page.getByRole('button', { name: 'Rooms' }).click();
  await expect(roomButton(page, 'random')).toBeVisible();
  await expect(page.locator('#rooms-panel')).toHaveScreenshot('phone-rooms-drawer.png', SHOT);
});
