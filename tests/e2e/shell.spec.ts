import { test, expect } from '@playwright/test';

// The release build loads from a sub-path and renders, without console errors.
test('the client loads from a sub-path and renders markdown safely', async ({ page }) => {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(msg.text());
  });
  page.on('pageerror', (err) => problems.push(err.message));
  const failed: string[] = [];
  page.on('requestfailed', (req) => failed.push(req.url()));
  page.on('response', (res) => {
    if (res.status() >= 400) failed.push(`${res.status()} ${res.url()}`);
  });

  await page.goto('./');
  await expect(page.getByRole('heading', { name: 'CAHAT' })).toBeVisible();
  // Rendered by protocol's markdown renderer inside the WASM client.
  await expect(page.locator('.message-body strong')).toHaveText('CAHAT');
  await expect(page.locator('.message-body')).toContainText('👋');
  await expect(page.getByRole('status')).toContainText('No rooms yet');
  expect(failed).toEqual([]);
  expect(problems).toEqual([]);
});
