import { test, expect, Page, Browser, BrowserContext } from '@playwright/test';
import { RoomServer } from './servers';
import { roomButton, people as peoplePanel, rename, conversationButton, message, composer, expectSoundLayout } from './ui';

// Calls between two browser contexts on 127.0.0.1, through a real room server: Chromium's
// fake camera and microphone, loopback candidates allowed, mDNS hiding off so that they
// resolve. Permissions are granted per context (no fake UI), so a context without them is a
// person who refused.
test.use({
  launchOptions: {
    executablePath: process.env.CAHAT_CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--use-fake-device-for-media-stream',
      '--allow-loopback-in-peer-connection',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required',
    ],
  },
});
test.describe.configure({ timeout: 90_000 });

const MEDIA = ['camera', 'microphone'];

type Person = { page: Page; context: BrowserContext; problems: string[] };

const panel = (page: Page) => page.locator('#call-panel');
const callStatus = (page: Page) => panel(page).getByRole('status');

/** Whether the other side's video plays: frames have come (its size is known). */
async function remoteVideoWidth(page: Page): Promise<number> {
  return page.evaluate(() => (document.getElementById('call-remote-video') as HTMLVideoElement | null)?.videoWidth ?? 0);
}

/** The width of the picture in your own video (the self-view); 0 while it shows nothing. */
async function localVideoWidth(page: Page): Promise<number> {
  return page.evaluate(() => (document.getElementById('call-local-video') as HTMLVideoElement | null)?.videoWidth ?? 0);
}

test.describe('calls between two people of a live room', () => {
  let lounge: RoomServer;
  let everyone: Person[] = [];

  test.beforeEach(async () => {
    lounge = new RoomServer('Lounge', { kind: 'embedded' }, ['--call-ring-seconds', '4']);
    await lounge.start();
    everyone = [];
  });

  test.afterEach(async () => {
    for (const p of everyone) {
      expect(p.problems, 'page errors').toEqual([]);
      await p.context.close();
    }
    await lounge.stop();
  });

  async function join(browser: Browser, name: string, permissions = MEDIA): Promise<Page> {
    const context = await browser.newContext({ permissions });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    everyone.push({ page, context, problems });
    await page.goto(`./?room=${lounge.url}`);
    await expect(roomButton(page, 'Lounge')).toHaveAccessibleName(/, online( \d+ unread)?$/);
    await rename(page, name);
    return page;
  }

  /** Rings `name` from `page`'s people list (a video call). */
  async function ring(page: Page, name: string) {
    await expect(peoplePanel(page).getByRole('button', { name: `Call ${name}` })).toBeVisible();
    await peoplePanel(page).getByRole('button', { name: `Call ${name}` }).click();
  }

  test('a call connects with video both ways, says with whom and for how long; mute and camera-off show on both sides; hang up ends it on both', async ({ browser }) => {
    const alice = await join(browser, 'Alice');
    const bob = await join(browser, 'Bob');
    await ring(alice, 'Bob');
    await expect(callStatus(alice)).toHaveText('Ringing Bob…');
    await expect(callStatus(bob)).toHaveText('Video call from Alice, in Lounge');
    // The call panel covers nothing people need (the writing box, Send, the messages).
    await expectSoundLayout(alice, 'ringing');
    await expectSoundLayout(bob, 'a call coming in');
    await panel(bob).getByRole('button', { name: 'Accept with video' }).click();
    for (const page of [alice, bob]) {
      await expect(callStatus(page)).toHaveText('Connected', { timeout: 20_000 });
      await expect.poll(() => remoteVideoWidth(page), { timeout: 20_000 }).toBeGreaterThan(0);
      // Your own camera shows in the self-view, too.
      await expect.poll(() => localVideoWidth(page), { timeout: 10_000 }).toBeGreaterThan(0);
      expect(await page.evaluate(() => (document.getElementById('call-local-video') as HTMLVideoElement).muted), 'you never hear yourself').toBe(true);
      await expectSoundLayout(page, 'in a call');
      await page.setViewportSize({ width: 375, height: 740 });
      await expectSoundLayout(page, 'in a call, on a phone');
      await page.setViewportSize({ width: 1280, height: 720 });
      await expect(panel(page).getByRole('button', { name: 'Mute microphone' })).toHaveAttribute('aria-pressed', 'false');
    }
    // Who the call is with, and for how long (the clock ticks).
    await expect(panel(alice).locator('.call-with')).toHaveText(/^With Bob · 0:\d\d$/);
    const clock = panel(alice).locator('.call-timer');
    const first = await clock.textContent();
    await expect(clock).not.toHaveText(first ?? '', { timeout: 3_000 });

    await panel(bob).getByRole('button', { name: 'Mute microphone' }).click();
    await expect(panel(bob).getByRole('button', { name: 'Mute microphone' })).toHaveAttribute('aria-pressed', 'true');
    // Pressed shows: the button says the microphone is off, not only its state for a reader.
    await expect(panel(bob).getByRole('button', { name: 'Mute microphone' })).toContainText('🔇');
    await expect(panel(alice)).toContainText('Bob muted their microphone');
    await expect(panel(alice).locator('.call-initial')).toHaveCount(0);
    await panel(bob).getByRole('button', { name: 'Turn off camera' }).click();
    await expect(panel(bob).getByRole('button', { name: 'Turn off camera' })).toContainText('🚫');
    await expect(panel(alice)).toContainText('Bob turned their camera off');
    // No picture from him: his initial, not a black tile.
    await expect(panel(alice).locator('.call-initial')).toHaveText('B');
    await panel(bob).getByRole('button', { name: 'Mute microphone' }).click();
    await expect(panel(alice)).not.toContainText('muted their microphone');

    await panel(alice).getByRole('button', { name: 'Hang up' }).click();
    for (const page of [alice, bob]) {
      await expect(callStatus(page)).toHaveText('Call ended');
    }
    // The call's record, in their direct conversation, on both sides.
    await conversationButton(bob, 'Alice').click();
    await expect(message(bob, 'Call,')).toHaveCount(1);
    await conversationButton(alice, 'Bob').click();
    await expect(message(alice, 'Call,')).toHaveCount(1);
    // It is the room's line: nobody edits, deletes or reacts to it, the caller neither; Up in
    // an empty box (edit your latest message) passes it by.
    for (const page of [alice, bob]) {
      const record = message(page, 'Call,');
      await expect(record).toHaveClass(/call-record/);
      await expect(record.getByRole('button', { name: /^(Edit|Delete|React|Reply)/ })).toHaveCount(0);
    }
    await composer(alice).fill('');
    await composer(alice).press('ArrowUp');
    await expect(composer(alice)).toHaveValue('');
    await expect(alice.getByRole('button', { name: 'Save', exact: true })).toHaveCount(0);
  });

  test('a declined call and a missed one are recorded; a third person sees neither', async ({ browser }) => {
    const alice = await join(browser, 'Alice');
    const bob = await join(browser, 'Bob');
    const carol = await join(browser, 'Carol');
    await ring(alice, 'Bob');
    await panel(bob).getByRole('button', { name: 'Decline' }).click();
    await expect(callStatus(alice)).toHaveText('Bob declined');
    await expect(callStatus(bob)).toHaveText('Declined');
    await expect(panel(carol)).toHaveCount(0);
    await panel(alice).getByRole('button', { name: 'Close' }).click();
    await expect(panel(alice)).toHaveCount(0);

    // Nobody answers: after the room's 4 s it is missed, for both.
    await ring(alice, 'Bob');
    await expect(callStatus(bob)).toHaveText('Video call from Alice, in Lounge');
    await expect(callStatus(alice)).toHaveText('No answer', { timeout: 10_000 });
    await expect(callStatus(bob)).toHaveText('Missed call from Alice');
    await conversationButton(bob, 'Alice').click();
    await expect(message(bob, 'Declined call')).toHaveCount(1);
    await expect(message(bob, 'Missed call')).toHaveCount(1);
    await expect(conversationButton(carol, 'Alice')).toHaveCount(0);
  });

  test('a refused camera and microphone are said clearly, and the call goes on receiving', async ({ browser }) => {
    const alice = await join(browser, 'Alice');
    const bob = await join(browser, 'Bob', []);
    await ring(alice, 'Bob');
    await panel(bob).getByRole('button', { name: 'Accept with video' }).click();
    await expect(panel(bob).getByRole('alert')).toContainText('could not be used (not allowed)');
    await expect(callStatus(bob)).toHaveText('Connected', { timeout: 20_000 });
    // Bob sees and hears Alice; he sends nothing, so he has no microphone or camera controls.
    await expect.poll(() => remoteVideoWidth(bob), { timeout: 20_000 }).toBeGreaterThan(0);
    await expect(panel(bob).getByRole('button', { name: 'Mute microphone' })).toHaveCount(0);
    await expect(callStatus(alice)).toHaveText('Connected');
    await panel(bob).getByRole('button', { name: 'Hang up' }).click();
    await expect(callStatus(alice)).toHaveText('Call ended');
  });
});

/** The mean brightness and the spread of the other side's video's pixels, drawn once. */
async function remoteFrame(page: Page): Promise<{ width: number; spread: number }> {
  return page.evaluate(() => {
    const video = document.getElementById('call-remote-video') as HTMLVideoElement | null;
    if (!video || video.videoWidth === 0) return { width: 0, spread: 0 };
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    const context = canvas.getContext('2d')!;
    context.drawImage(video, 0, 0);
    const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let min = 255;
    let max = 0;
    for (let i = 0; i < data.length; i += 4 * 97) {
      const light = (data[i] + data[i + 1] + data[i + 2]) / 3;
      min = Math.min(min, light);
      max = Math.max(max, light);
    }
    return { width: video.videoWidth, spread: max - min };
  });
}

test.describe('calls in the demo', () => {
  test('a fake user answers your call with their made-up camera, through a real peer connection', async ({ browser }) => {
    const context = await browser.newContext({ permissions: MEDIA });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    await page.goto('./?seed=7');
    const call = peoplePanel(page).getByRole('button', { name: /^Call / }).first();
    await expect(call).toBeVisible({ timeout: 20_000 });
    const name = ((await call.getAttribute('aria-label')) ?? '').replace(/^Call /, '');
    await call.click();
    await expect(callStatus(page)).toHaveText(`Ringing ${name}…`);
    await expect(callStatus(page)).toHaveText('Connected', { timeout: 20_000 });
    // The fake camera: a 320×240 canvas with a pattern, not a black frame.
    await expect.poll(async () => (await remoteFrame(page)).width, { timeout: 20_000 }).toBe(320);
    await expect.poll(async () => (await remoteFrame(page)).spread, { timeout: 10_000 }).toBeGreaterThan(40);
    // The panel in a call: no accessibility violations, light and dark; on a phone it fits.
    const { default: AxeBuilder } = await import('@axe-core/playwright');
    for (const colorScheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme });
      const results = await new AxeBuilder({ page }).include('#call-panel').withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
      expect(results.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.target).join(', ')}`)).toEqual([]);
    }
    await page.setViewportSize({ width: 375, height: 700 });
    const box = await panel(page).boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= 375).toBe(true);
    // Keyboard only: Tab reaches the call's controls.
    await panel(page).getByRole('button', { name: 'Mute microphone' }).focus();
    await page.keyboard.press('Enter');
    await expect(panel(page).getByRole('button', { name: 'Mute microphone' })).toHaveAttribute('aria-pressed', 'true');
    await page.keyboard.press('Tab');
    await expect(panel(page).getByRole('button', { name: 'Turn off camera' })).toBeFocused();
    await panel(page).getByRole('button', { name: 'Hang up' }).click();
    await expect(callStatus(page)).toHaveText('Call ended');
    expect(errors).toEqual([]);
    await context.close();
  });

  test('a fake user you wrote to calls you back; you answer with audio only', async ({ browser }) => {
    const context = await browser.newContext({ permissions: MEDIA });
    const page = await context.newPage();
    // A faster clock: the call back comes within seconds.
    await page.goto('./?seed=7&speed=8');
    const person = peoplePanel(page).getByRole('list', { name: 'Online' }).getByRole('button').nth(1);
    await expect(person).toBeVisible({ timeout: 20_000 });
    const name = (await person.textContent()) ?? '';
    await person.click();
    await page.getByRole('dialog', { name }).getByRole('button', { name: `Message ${name} directly` }).click();
    await page.getByRole('textbox', { name: 'Message' }).fill('call me?');
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await expect(callStatus(page)).toHaveText(/^Video call from /, { timeout: 30_000 });
    await panel(page).getByRole('button', { name: 'Accept with audio only' }).click();
    await expect(callStatus(page)).toHaveText('Connected', { timeout: 20_000 });
    await expect.poll(async () => (await remoteFrame(page)).width, { timeout: 20_000 }).toBe(320);
    // Audio only: no camera of ours, so no camera control.
    await expect(panel(page).getByRole('button', { name: 'Turn off camera' })).toHaveCount(0);
    await expect(panel(page).getByRole('button', { name: 'Mute microphone' })).toBeVisible();
    await context.close();
  });
});
