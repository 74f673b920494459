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

/**
 * What is wrong with the page's layout now, in words (empty when nothing is): the document
 * scrolls or is wider than the window (only the log may scroll), a visible control lies
 * outside the window, or another element covers it. Controls inside a scrolling box (the log)
 * count where they can be seen; those scrolled out of its view are reachable by scrolling.
 * While a modal dialog is open, only its controls count (the rest is inert behind it); while
 * a drawer is open over the page (`front`, a CSS selector), only the drawer's.
 */
export async function layoutFaults(page: Page, front?: string): Promise<string[]> {
  return page.evaluate((front) => {
    const faults: string[] = [];
    const doc = document.scrollingElement ?? document.documentElement;
    const [w, h] = [window.innerWidth, window.innerHeight];
    if (doc.scrollHeight > h + 1) faults.push(`the document is ${doc.scrollHeight}px high in a ${h}px window`);
    if (doc.scrollWidth > w + 1) faults.push(`the document is ${doc.scrollWidth}px wide in a ${w}px window`);
    if (window.scrollX !== 0 || window.scrollY !== 0) faults.push(`the document is scrolled to ${window.scrollX},${window.scrollY}`);
    const label = (el: Element) =>
      `${el.tagName.toLowerCase()} "${(el.getAttribute('aria-label') || (el as HTMLElement).innerText || el.getAttribute('placeholder') || '').trim().slice(0, 40)}"`;
    const scope: ParentNode = document.querySelector('dialog:modal') ?? (front ? document.querySelector(front) : null) ?? document;
    for (const el of scope.querySelectorAll<HTMLElement>('button, input, textarea, select, a[href]')) {
      if (!el.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })) continue;
      if (el.closest('.visually-hidden')) continue;
      const r = el.getBoundingClientRect();
      if (r.width < 1 || r.height < 1) continue;
      // Cut by every box around it that clips; remember whether one of them scrolls.
      let [left, top, right, bottom] = [0, 0, w, h];
      let scroller = false;
      for (let p = el.parentElement; p; p = p.parentElement) {
        const s = getComputedStyle(p);
        if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
        const b = p.getBoundingClientRect();
        [left, top, right, bottom] = [Math.max(left, b.left), Math.max(top, b.top), Math.min(right, b.right), Math.min(bottom, b.bottom)];
        if (p.scrollHeight > p.clientHeight + 1 || p.scrollWidth > p.clientWidth + 1) scroller = true;
      }
      if (!scroller && (r.left < -1 || r.top < -1 || r.right > w + 1 || r.bottom > h + 1)) {
        faults.push(`${label(el)} lies outside the window`);
        continue;
      }
      const [x0, y0, x1, y1] = [Math.max(r.left, left), Math.max(r.top, top), Math.min(r.right, right), Math.min(r.bottom, bottom)];
      if (x1 - x0 < 1 || y1 - y0 < 1) continue; // scrolled out of its box's view
      const hit = document.elementFromPoint((x0 + x1) / 2, (y0 + y1) / 2);
      if (hit && hit !== el && !el.contains(hit) && !hit.contains(el) && !(el.labels && [...el.labels].some((l) => l.contains(hit)))) {
        faults.push(`${label(el)} is covered by ${label(hit)}`);
      }
    }
    return faults;
  }, front);
}

/** Expects a sound layout (see {@link layoutFaults}), saying where it is not. */
export async function expectSoundLayout(page: Page, where: string, front?: string) {
  expect(await layoutFaults(page, front), where).toEqual([]);
}
