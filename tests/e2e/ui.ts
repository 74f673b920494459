// How the browser tests find and use the client: by role and accessible name, as a person
// with a screen reader would.
import { expect, Page, Locator } from '@playwright/test';

export const rooms = (page: Page) => page.getByRole('navigation', { name: 'Rooms' });
/** A room's button in the sidebar, by its name and the start of its address (`mock://`, `ws://`). */
export const roomButton = (page: Page, name: string, scheme = '(mock|ws)://') =>
  rooms(page).getByRole('button', { name: new RegExp(`^${name} ${scheme}`) });
export const log = (page: Page) => page.getByRole('log');
export const composer = (page: Page) => page.getByRole('textbox', { name: 'Message' });
export const people = (page: Page) => page.getByRole('complementary', { name: 'People' });
/** The people online in the room shown, one list item each (you first). */
export const online = (page: Page) =>
  people(page).getByRole('list', { name: 'Online' }).getByRole('listitem');
/** The shown room's connection state. */
export const status = (page: Page) => page.getByRole('main').getByRole('status');

/** The message articles whose text contains `text`. */
/** A message by its own text (not by a quote of it in a reply). */
export function message(page: Page, text: string): Locator {
  return log(page)
    .getByRole('article')
    .filter({ has: page.locator('.message-body', { hasText: text }) });
}

export async function send(page: Page, text: string) {
  await composer(page).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

export async function rename(page: Page, name: string, where: 'all' | 'here' = 'all') {
  await page.getByRole('button', { name: 'Settings', exact: true }).click();
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  await dialog.getByRole('textbox', { name: 'Your name' }).fill(name);
  await dialog.getByRole('radio', { name: where === 'all' ? 'in all rooms' : 'only in this room' }).check();
  await dialog.getByRole('button', { name: 'Save name', exact: true }).click();
  await expect(dialog.getByRole('status')).toHaveText('Name saved.');
  await dialog.getByRole('button', { name: 'Close', exact: true }).click();
  await expect(dialog).toBeHidden();
}

/** A direct conversation's button in the sidebar (under its room), by the other person's name. */
export const conversationButton = (page: Page, name: string) =>
  rooms(page).getByRole('button', { name: new RegExp(`^Direct messages with ${name}`) });
