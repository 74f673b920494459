import { test, expect, Page, Browser, BrowserContext } from '@playwright/test';
import WebSocket from 'ws';
import { RoomServer, stores } from './servers';
import { roomButton, log, online, status, message, send, rename, composer, people as peoplePanel, rooms, conversationButton } from './ui';

// The client against real room servers started here (two rooms), with two people (two browser
// contexts), through crashes and network loss, and next to a legacy v1 client. Every test
// runs once per store: the embedded one and MongoDB (SecantusDB in .ci/run).

type Watched = { page: Page; context: BrowserContext; problems: string[] };

/** Console errors the browser itself prints while a room server is down, and nothing else. */
const EXPECTED_WHILE_DOWN = /WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/' failed/;

for (const store of stores()) {
  test.describe(`live rooms, ${store.kind} store`, () => {
    test.describe.configure({ timeout: 90_000 });
    let lounge: RoomServer;
    let games: RoomServer;
    let people: Watched[] = [];

    test.beforeEach(async () => {
      lounge = new RoomServer('Lounge', store);
      games = new RoomServer('Games', store);
      await Promise.all([lounge.start(), games.start()]);
      people = [];
    });

    test.afterEach(async () => {
      for (const p of people) {
        expect(p.problems, 'console errors, page errors or failed requests').toEqual([]);
        await p.context.close();
      }
      await Promise.all([lounge.stop(), games.stop()]);
    });

    /** The operator, on the lounge's store, makes `name` its owner; the lounge restarts (the
     * role holds from its next start) and everyone in `pages` is back online. */
    async function makeOwner(name: string, pages: Page[]) {
      const id = lounge.role(['list', '--all']).split('\n').find((line) => line.endsWith(`\t${name}`))!.split('\t')[0];
      expect(lounge.role(['grant', id, 'owner'])).toContain('is now owner');
      await lounge.stop();
      await lounge.start();
      for (const p of pages) await expect(status(p)).toHaveText('online', { timeout: 20_000 });
    }

    /** A person in a fresh browser context (their own storage: their own identity). */
    async function join(browser: Browser, name: string, init?: (ctx: BrowserContext) => Promise<void>) {
      const context = await browser.newContext();
      if (init) await init(context);
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('console', (msg) => {
        if ((msg.type() === 'error' || msg.type() === 'warning') && !EXPECTED_WHILE_DOWN.test(msg.text())) {
          problems.push(`console ${msg.type()}: ${msg.text()}`);
        }
      });
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      people.push({ page, context, problems });
      await page.goto(`./?room=${lounge.url}&room=${games.url}`);
      await expect(roomButton(page, 'Lounge')).toHaveAccessibleName(/, online( \d+ unread)?$/);
      await expect(roomButton(page, 'Games')).toHaveAccessibleName(/, online( \d+ unread)?$/);
      if (name) await rename(page, name);
      return page;
    }

    test('live rooms alone never download the demo rooms\' worker', async ({ browser }) => {
      const context = await browser.newContext();
      const page = await context.newPage();
      const fetched: string[] = [];
      page.on('request', (request) => fetched.push(new URL(request.url()).pathname));
      await page.goto(`./?room=${lounge.url}&room=${games.url}`);
      await expect(roomButton(page, 'Lounge')).toHaveAccessibleName(/, online( \d+ unread)?$/);
      expect(fetched.some((path) => /client-[0-9a-f]+_bg\.wasm$/.test(path))).toBe(true);
      expect(fetched.filter((path) => path.includes('mock-worker'))).toEqual([]);
      // Adding a demo room starts it.
      await rooms(page).getByRole('textbox', { name: 'Server address' }).fill('mock://lobby');
      await rooms(page).getByRole('button', { name: 'Add', exact: true }).click();
      await expect(roomButton(page, 'lobby')).toHaveAccessibleName(/, online( \d+ unread)?$/);
      expect(fetched.filter((path) => path.endsWith('mock-worker_bg.wasm'))).toHaveLength(1);
      await context.close();
    });

    test('two people in two rooms: messages, names, presence and unread counts both ways', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      await expect(heading(alice)).toHaveText('Lounge');

      await send(alice, 'hi from *Alice*');
      await expect(message(bob, 'hi from Alice').locator('.author')).toHaveText('Alice');
      await expect(message(bob, 'hi from Alice').locator('em')).toHaveText('Alice');
      await send(bob, 'hello Alice, Bob here');
      await expect(message(alice, 'Bob here').locator('.author')).toHaveText('Bob');
      await expect(message(alice, 'Bob here')).not.toHaveClass(/mine/);
      await expect(message(alice, 'hi from Alice')).toHaveClass(/mine/);
      await expect(online(alice)).toContainText(['Alice', 'Bob']);
      await expect(online(bob)).toContainText(['Bob', 'Alice']);

      // Bob talks in Games while Alice looks at the Lounge: her Games count rises.
      await roomButton(bob, 'Games').click();
      await send(bob, 'anyone for chess?');
      await send(bob, 'or go?');
      await expect(roomButton(alice, 'Games').getByLabel('2 unread')).toBeVisible();
      await expect(alice).toHaveTitle('(2) CAHAT');
      await roomButton(alice, 'Games').click();
      await expect(message(alice, 'anyone for chess?')).toHaveCount(1);
      await expect(roomButton(alice, 'Games').getByLabel(/unread/)).toHaveCount(0);
      await send(alice, 'chess, yes');
      await expect(message(bob, 'chess, yes').locator('.author')).toHaveText('Alice');

      // A rename reaches the other person in every room, old messages included.
      await rename(bob, 'Robert');
      await expect(online(alice)).toContainText(['Alice', 'Robert']);
      await expect(message(alice, 'anyone for chess?').locator('.author')).toHaveText('Robert');
      await roomButton(alice, 'Lounge').click();
      await expect(message(alice, 'Bob here').locator('.author')).toHaveText('Robert');

      // Bob leaves: he is no longer online for Alice.
      await bob.context().close();
      people = people.filter((p) => p.page !== bob);
      await expect(online(alice)).toHaveCount(1);
      await expect(online(alice)).toContainText(['Alice']);
    });

    test('two people who choose the same name are told apart', async ({ browser }) => {
      const first = await join(browser, 'Sam');
      const second = await join(browser, 'Sam');
      await send(first, 'the first Sam');
      // Both show with the start of their id, in the people list and on messages.
      for (const p of [first, second]) {
        await expect(online(p)).toHaveCount(2);
        await expect(online(p).nth(0)).toHaveText(/^Sam #[0-9a-f]{4}\s*\(you\)$/);
        await expect(online(p).nth(1)).toHaveText(/^Sam #[0-9a-f]{4}$/);
      }
      const shown = await message(second, 'the first Sam').locator('.author').innerText();
      expect(shown).toMatch(/^Sam #[0-9a-f]{4}$/);
      expect(await online(second).nth(1).innerText()).toBe(shown);
      // Once one of them renames, the other is plain Sam again.
      await rename(second, 'Samuel');
      await expect(message(second, 'the first Sam').locator('.author')).toHaveText('Sam');
    });

    test('a new identity (a private window) cannot act as another user', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      await send(alice, 'the real Alice');
      const aliceId = await alice.evaluate((url) => {
        const saved = JSON.parse(localStorage.getItem('cahat.v1')!);
        return saved.rooms.find((r: { address: string }) => r.address === url).identity.userId;
      }, lounge.url);
      expect(aliceId).toMatch(/^[0-9a-f]+$/);

      // Mallory's window claims Alice's id with a made-up token.
      const mallory = await join(browser, '', async (ctx) => {
        await ctx.addInitScript(
          ([url, id]) => {
            if (!localStorage.getItem('cahat.v1')) {
              localStorage.setItem('cahat.v1', JSON.stringify({ rooms: [{ address: url, identity: { userId: id, token: 'forged' } }] }));
            }
          },
          [lounge.url, aliceId],
        );
      });
      await expect(mallory.getByRole('alert')).toContainText('did not accept your saved identity');
      await send(mallory, 'I am Alice, honest');
      const forged = message(alice, 'I am Alice, honest');
      await expect(forged.locator('.author')).toHaveText('Anonymous');
      await expect(forged).not.toHaveClass(/mine/);
      await expect(message(alice, 'the real Alice').locator('.author')).toHaveText('Alice');
      const malloryId = await mallory.evaluate((url) => {
        const saved = JSON.parse(localStorage.getItem('cahat.v1')!);
        return saved.rooms.find((r: { address: string }) => r.address === url).identity.userId;
      }, lounge.url);
      expect(malloryId).not.toEqual(aliceId);
      // Alice's name did not change for anyone.
      await expect(online(mallory)).toContainText(['Anonymous', 'Alice']);
    });

    test('removing a room and adding it again: you are still yourself there', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      await send(alice, 'said before leaving');
      await expect(message(alice, 'said before leaving')).not.toHaveClass(/pending/);
      await alice.getByRole('button', { name: 'Remove Lounge', exact: true }).click();
      await expect(roomButton(alice, 'Lounge')).toHaveCount(0);
      await alice.getByRole('textbox', { name: 'Server address' }).fill(lounge.url);
      await alice.getByRole('button', { name: 'Add', exact: true }).click();
      await expect(status(alice)).toHaveText('online');
      // The same identity: her earlier message is hers, and the room did not refuse her.
      await expect(message(alice, 'said before leaving')).toHaveClass(/\bmine\b/);
      await expect(online(alice).first()).toHaveText(/Alice\s*\(you\)/);
      await expect(alice.getByRole('alert')).toHaveCount(0);
    });

    test('an edit and a delete are seen by the other person, after a reload and after a kill -9', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      await send(alice, 'meet at 3');
      await send(alice, 'wrong room, sorry');
      await expect(message(bob, 'wrong room, sorry')).toHaveCount(1);
      // Bob cannot change Alice's messages.
      await expect(message(bob, 'meet at 3').getByRole('button', { name: /^(Edit|Delete) your message/ })).toHaveCount(0);

      await message(alice, 'meet at 3').getByRole('button', { name: /^Edit your message/ }).click();
      await composer(alice).fill('meet at **4**');
      await alice.getByRole('button', { name: 'Save', exact: true }).click();
      await expect(message(bob, 'meet at 4').locator('strong')).toHaveText('4');
      await expect(message(bob, 'meet at 4').getByText('edited', { exact: true })).toBeVisible();
      await expect(message(bob, 'meet at 3')).toHaveCount(0);

      await message(alice, 'wrong room').getByRole('button', { name: /^Delete your message/ }).click();
      await alice.getByRole('button', { name: 'Delete for everyone', exact: true }).click();
      await expect(message(bob, 'wrong room')).toHaveCount(0);
      await expect(log(bob).getByText('message deleted')).toHaveCount(1);

      const check = async (p: Page) => {
        await expect(message(p, 'meet at 4').getByText('edited', { exact: true })).toBeVisible();
        await expect(message(p, 'meet at 3')).toHaveCount(0);
        await expect(message(p, 'wrong room')).toHaveCount(0);
        await expect(log(p).getByText('message deleted')).toHaveCount(1);
      };
      await bob.reload();
      await expect(status(bob)).toHaveText('online');
      await check(bob);
      await lounge.kill9();
      await lounge.start();
      for (const p of [alice, bob]) {
        await expect(status(p)).toHaveText('online', { timeout: 20_000 });
        await check(p);
      }
      // Someone who comes later sees the same.
      const carol = await join(browser, '');
      await check(carol);
    });

    test('a reaction by one is seen by the other, who can add theirs but not take back hers', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      await send(bob, 'shipped it');
      await expect(message(alice, 'shipped it')).toHaveCount(1);
      await message(alice, 'shipped it').getByRole('button', { name: /^React to the message/ }).click();
      await alice.getByRole('button', { name: 'React with 🎉', exact: true }).click();
      const atBob = message(bob, 'shipped it');
      await expect(atBob.getByRole('button', { name: '🎉 1: Alice', exact: true })).toHaveAttribute('aria-pressed', 'false');
      // Bob's click on it adds his own; his second click takes back his only.
      await atBob.getByRole('button', { name: '🎉 1: Alice', exact: true }).click();
      await expect(message(alice, 'shipped it').getByRole('button', { name: '🎉 2: you, Bob', exact: true })).toBeVisible();
      await atBob.getByRole('button', { name: '🎉 2: Alice, you', exact: true }).click();
      await expect(message(alice, 'shipped it').getByRole('button', { name: '🎉 1: you', exact: true })).toBeVisible();
      // After a reload, as it is now.
      await bob.reload();
      await expect(status(bob)).toHaveText('online');
      await expect(message(bob, 'shipped it').getByRole('button', { name: '🎉 1: Alice', exact: true })).toBeVisible();
    });

    test('typing shows to the others (not to a legacy client) and ends with the message or by itself', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      const legacy = await LegacyClient.connect(lounge.url);
      const line = bob.locator('p.typing');
      await composer(alice).pressSequentially('half a thou');
      await expect(line).toHaveText('Alice is typing…');
      await expect(alice.locator('p.typing')).toHaveText('');
      await composer(alice).pressSequentially('ght');
      await alice.keyboard.press('Enter');
      await expect(message(bob, 'half a thought')).toHaveCount(1);
      await expect(line).toHaveText('');
      // Typing and stopping: it goes away on its own.
      await composer(alice).pressSequentially('never mind');
      await expect(line).toHaveText('Alice is typing…');
      await expect(line).toHaveText('', { timeout: 10_000 });
      expect(legacy.received.filter((a) => a.type === 'TYPING')).toEqual([]);
      legacy.close();
    });

    test('a mention: offered as you type @, highlighted for who is named, counted apart', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      await roomButton(alice, 'Games').click();
      // Bob types @al: the people of the room are offered; the keyboard picks one.
      await composer(bob).pressSequentially('lunch? @al');
      const list = bob.getByRole('listbox', { name: 'People to mention' });
      await expect(list.getByRole('option')).toHaveText(['Alice']);
      await expect(list.getByRole('option', { name: 'Alice' })).toHaveAttribute('aria-selected', 'true');
      await bob.keyboard.press('Tab');
      await expect(composer(bob)).toHaveValue('lunch? @Alice ');
      await expect(list).toHaveCount(0);
      await bob.keyboard.press('Enter');
      // Alice looks at Games: the Lounge counts the mention apart from plain unread.
      await expect(roomButton(alice, 'Lounge').getByLabel('1 mention')).toBeVisible();
      await expect(roomButton(alice, 'Lounge').getByLabel('1 unread')).toBeVisible();
      await send(bob, 'and a plain one');
      await expect(roomButton(alice, 'Lounge').getByLabel('2 unread')).toBeVisible();
      await expect(roomButton(alice, 'Lounge').getByLabel('1 mention')).toBeVisible();
      await roomButton(alice, 'Lounge').click();
      await expect(message(alice, 'lunch? @Alice')).toHaveClass(/mention/);
      await expect(message(alice, 'and a plain one')).not.toHaveClass(/mention/);
      // Marked clearly: its own background, not only a thin edge.
      const background = (text: string) => message(alice, text).evaluate((el) => getComputedStyle(el).backgroundColor);
      expect(await background('lunch? @Alice')).not.toBe(await background('and a plain one'));
      await expect(roomButton(alice, 'Lounge').getByLabel(/mention/)).toHaveCount(0);
      // Escape closes the list and leaves what was typed.
      await composer(alice).pressSequentially('@b');
      await expect(alice.getByRole('listbox', { name: 'People to mention' })).toBeVisible();
      await alice.keyboard.press('Escape');
      await expect(alice.getByRole('listbox', { name: 'People to mention' })).toHaveCount(0);
      await expect(composer(alice)).toHaveValue('@b');
    });

    test('a mention raises a notification once allowed in Settings, and none from a muted room, which says it is muted', async ({ browser }) => {
      // The browser's Notification, recorded (Chromium headless shows none to look at).
      const alice = await join(browser, 'Alice', async (context) => {
        await context.grantPermissions(['notifications']);
        await context.addInitScript(() => {
          const notes: { title: string; body?: string }[] = [];
          (window as any).__notes = notes;
          class Recorded {
            static permission = 'granted';
            static requestPermission() {
              return Promise.resolve('granted');
            }
            constructor(title: string, options?: { body?: string }) {
              notes.push({ title, body: options?.body });
            }
          }
          (window as any).Notification = Recorded;
        });
      });
      const bob = await join(browser, 'Bob');
      const notes = () => alice.evaluate(() => (window as any).__notes as { title: string; body?: string }[]);
      // Not allowed yet: nothing.
      await roomButton(alice, 'Games').click();
      await send(bob, '@Alice first');
      await expect(roomButton(alice, 'Lounge').getByLabel('1 mention')).toBeVisible();
      expect(await notes()).toEqual([]);
      await alice.getByRole('button', { name: 'Settings', exact: true }).click();
      await alice.getByRole('checkbox', { name: 'Notify me when someone mentions me' }).check();
      await expect(alice.getByRole('checkbox', { name: 'Notify me when someone mentions me' })).toBeChecked();
      await alice.getByRole('dialog', { name: 'Settings' }).getByRole('button', { name: 'Close', exact: true }).click();
      await send(bob, '@Alice second');
      await expect.poll(notes).toEqual([{ title: 'Bob mentioned you in Lounge', body: '@Alice second' }]);
      // Lounge muted: mentions still counted, no notification.
      await roomButton(alice, 'Lounge').click();
      await alice.getByRole('button', { name: 'Mute', exact: true }).click();
      await expect(alice.getByRole('button', { name: 'Mute', exact: true })).toHaveAttribute('aria-pressed', 'true');
      // Muted shows, in the header and in the room list.
      await expect(alice.getByRole('button', { name: 'Mute', exact: true })).toContainText('🔕');
      await expect(roomButton(alice, 'Lounge')).toHaveAccessibleName(/ muted/);
      await expect(roomButton(alice, 'Games')).not.toHaveAccessibleName(/ muted/);
      await roomButton(alice, 'Games').click();
      await send(bob, '@Alice third');
      await expect(roomButton(alice, 'Lounge').getByLabel('1 mention')).toBeVisible();
      expect(await notes()).toHaveLength(1);
      // A direct conversation's header: where the person is, and no Mute (muting is the
      // room's, offered in its own view).
      await roomButton(alice, 'Lounge').click();
      await peoplePanel(alice).getByRole('button', { name: 'Bob', exact: true }).click();
      await alice.getByRole('button', { name: 'Message Bob directly' }).click();
      await expect(alice.getByRole('main').getByRole('heading', { level: 2 })).toHaveText('Direct messages with Bob');
      await expect(alice.getByRole('main').getByText('Bob is here')).toBeVisible();
      await expect(alice.getByRole('main').getByRole('button', { name: 'Mute', exact: true })).toHaveCount(0);
      await bob.close();
      await expect(alice.getByRole('main').getByText(/^Bob was last here (just now|a minute ago)$/)).toBeVisible();
    });

    test('a direct message: only the two see it, live, after a reload and after a kill -9', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      const carol = await join(browser, 'Carol');
      await expect(online(alice)).toHaveCount(3);

      // Alice opens Bob's profile from the people list and writes to him directly.
      await peoplePanel(alice).getByRole('button', { name: 'Bob', exact: true }).click();
      const profile = alice.getByRole('dialog', { name: 'Bob' });
      await profile.getByRole('button', { name: 'Message Bob directly' }).click();
      await expect(profile).toBeHidden();
      await expect(heading(alice)).toHaveText('Direct messages with Bob');
      await expect(composer(alice)).toBeFocused();
      await send(alice, 'a secret for *Bob*');
      await expect(message(alice, 'a secret for Bob')).not.toHaveClass(/pending/);

      // Bob: the conversation appears under the Lounge with its unread count.
      const withAlice = conversationButton(bob, 'Alice');
      await expect(withAlice.getByLabel('1 unread')).toBeVisible();
      await expect(message(bob, 'a secret for Bob')).toHaveCount(0);
      await withAlice.click();
      await expect(heading(bob)).toHaveText('Direct messages with Alice');
      await expect(message(bob, 'a secret for Bob').locator('em')).toHaveText('Bob');
      await expect(withAlice.getByLabel(/unread/)).toHaveCount(0);
      await send(bob, 'only you read this, Alice');
      await expect(message(alice, 'only you read this')).toHaveCount(1);
      // Everyone in the room still talks in the room.
      await send(carol, 'hello room');
      await expect(message(bob, 'hello room')).toHaveCount(0);
      await bob.getByRole('button', { name: 'Back to Lounge' }).click();
      await expect(message(bob, 'hello room')).toHaveCount(1);
      await expect(message(bob, 'a secret for Bob')).toHaveCount(0);

      // Carol sees none of it: no conversation, nothing in the room's log.
      const carolSees = async () => {
        await expect(message(carol, 'hello room')).toHaveCount(1);
        await expect(rooms(carol).getByRole('button', { name: /^Direct messages with/ })).toHaveCount(0);
        await expect(log(carol)).not.toContainText('secret');
        await expect(log(carol)).not.toContainText('only you read this');
      };
      await carolSees();
      await carol.reload();
      await expect(status(carol)).toHaveText('online');
      await carolSees();

      // A kill -9 of the room, a message while it restarts: the conversation resumes for both.
      await lounge.kill9();
      await expect(status(alice)).toHaveText(/reconnecting/);
      await send(alice, 'after the crash, still between us');
      await lounge.start();
      // (Alice is in her conversation with Bob: its header says the link is the room's.)
      await expect(status(alice)).toHaveText('Lounge: online', { timeout: 20_000 });
      for (const p of [bob, carol]) await expect(status(p)).toHaveText('online', { timeout: 20_000 });
      await conversationButton(bob, 'Alice').click();
      await expect(message(bob, 'after the crash, still between us')).toHaveCount(1);

      // And after a reload, from storage, each once.
      await bob.reload();
      await expect(status(bob)).toHaveText('online');
      await conversationButton(bob, 'Alice').click();
      for (const text of ['a secret for Bob', 'only you read this', 'after the crash, still between us']) {
        await expect(message(bob, text), `${text} once`).toHaveCount(1);
      }
      await carol.reload();
      await expect(status(carol)).toHaveText('online');
      await carolSees();
      await expect(log(carol)).not.toContainText('after the crash');
    });

    test('your own name for someone: everywhere you see them (and @ finds them by it), only for you, kept across a reload', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      await send(bob, 'hi, Bob here');
      await message(alice, 'Bob here').getByRole('button', { name: 'Bob', exact: true }).click();
      await expect(alice.getByRole('dialog', { name: 'Bob' })).toBeVisible();
      // Saved, the profile is titled with her name for him, his own name beside it.
      const profile = alice.getByRole('dialog');
      await profile.getByRole('textbox', { name: 'Your name for them (only you see it)' }).fill('Uncle B');
      await profile.getByRole('button', { name: 'Save your name for them' }).click();
      await expect(profile.getByRole('status')).toHaveText('Saved: only you see this name.');
      await expect(profile).toHaveAccessibleName('Uncle B');
      await expect(profile).toContainText(/Calls themselves\s*Bob/);
      await profile.getByRole('button', { name: 'Close', exact: true }).click();

      const seenAsUncle = async (calls: string) => {
        const author = message(alice, 'Bob here').getByRole('button', { name: 'Uncle B', exact: true });
        await expect(author).toHaveAccessibleDescription(`calls themselves ${calls}`);
        await expect(author).toHaveAttribute('title', `calls themselves ${calls}`);
        await expect(online(alice)).toContainText(['Alice', 'Uncle B']);
      };
      await seenAsUncle('Bob');
      // @ finds him by her name for him too; the mention carries his own (what his client knows).
      await composer(alice).fill('@Uncl');
      const offered = alice.getByRole('listbox', { name: 'People to mention' }).getByRole('option');
      await expect(offered).toHaveText(['Uncle B (Bob)']);
      await alice.keyboard.press('Enter');
      await expect(composer(alice)).toHaveValue('@Bob ');
      await composer(alice).fill('');
      await composer(bob).fill('typing something');
      await expect(alice.getByText('Uncle B is typing…')).toBeVisible();
      // Bob still sees his own name, and renaming himself does not undo hers.
      await expect(online(bob)).toContainText(['Bob', 'Alice']);
      await rename(bob, 'Robert');
      await expect(alice.getByRole('dialog')).toHaveCount(0);
      await alice.reload();
      await expect(status(alice)).toHaveText('online');
      await seenAsUncle('Robert');
    });

    test('search finds a message long past the first pages, shows it in place as it reads, and finds your direct messages', async ({ browser }) => {
      const archive = new RoomServer('Archive', store, ['--rate-burst', '1000', '--rate-per-second', '1000', '--frame-burst', '1000']);
      await archive.start();
      try {
        const writer = await LegacyClient.connect(archive.url);
        await writer.send('MESSAGE', { rawMessage: 'the **old** needle in the hay', userId: writer.userId });
        for (let i = 1; i <= 300; i++) await writer.send('MESSAGE', { rawMessage: `filler ${i}`, userId: writer.userId });
        await writer.waitFor((a) => a.type === 'MESSAGE' && a.payload.rawMessage === 'filler 300');
        writer.close();
        const visit = async (name: string) => {
          const context = await browser.newContext();
          const page = await context.newPage();
          people.push({ page, context, problems: [] });
          await page.goto(`./?room=${archive.url}`);
          await expect(status(page)).toHaveText('online');
          await rename(page, name);
          return page;
        };
        const alice = await visit('Alice');
        const bob = await visit('Bob');
        await peoplePanel(alice).getByRole('button', { name: 'Bob', exact: true }).click();
        await alice.getByRole('button', { name: 'Message Bob directly' }).click();
        await send(alice, 'a needle between us');
        await expect(message(alice, 'a needle between us')).not.toHaveClass(/pending/);

        // What is typed right after opening the panel lands in its box.
        await bob.getByRole('button', { name: 'Search', exact: true }).click();
        await bob.keyboard.type('Needle');
        await expect(bob.getByRole('searchbox', { name: 'Search messages' })).toHaveValue('Needle');
        await bob.keyboard.press('Enter');
        const results = bob.getByRole('list', { name: 'Search results' }).getByRole('button');
        await expect(results).toHaveCount(2);
        await expect(results.nth(0)).toContainText('(direct, with Alice)');
        // Written today: said so, not as a date.
        await expect(results.nth(0)).toContainText(/Today, \d\d:\d\d/);
        // As it reads: the markup is not shown.
        await expect(results.nth(1)).toContainText('the old needle in the hay');
        await expect(results.nth(1).locator('mark')).toHaveText('needle');
        // Not in memory (300 messages later): opening it pages history in up to it.
        await expect(message(bob, 'the old needle in the hay')).toHaveCount(0);
        await results.nth(1).click();
        const found = message(bob, 'the old needle in the hay');
        await expect(found).toBeFocused({ timeout: 20_000 });
        await expect(found).toBeInViewport();
        // The panel made way for it; the Search button shows the same results again.
        await expect(bob.getByRole('searchbox', { name: 'Search messages' })).toHaveCount(0);
        // From there the log scrolls both ways: what came after it is below, the latest too.
        const exactly = (text: string) =>
          log(bob).getByRole('article').filter({ has: bob.locator('.message-body', { hasText: new RegExp(`^\\s*${text}\\s*$`) }) });
        await expect(exactly('filler 1')).toHaveCount(1);
        // The log renders what is near the view: the latest come in as the reader scrolls down.
        await expect(message(bob, 'filler 300')).toHaveCount(0);
        for (let i = 0; i < 20 && !(await message(bob, 'filler 300').count()); i++) {
          await log(bob).evaluate((el) => (el.scrollTop = el.scrollHeight));
          await bob.waitForTimeout(100);
        }
        await expect(message(bob, 'filler 300')).toHaveCount(1);
        // The direct one opens its conversation.
        await bob.getByRole('button', { name: 'Search', exact: true }).click();
        await expect(results).toHaveCount(2);
        await results.nth(0).click();
        await expect(bob.getByRole('main').getByRole('heading', { level: 2 })).toHaveText('Direct messages with Alice');
        await expect(message(bob, 'a needle between us')).toBeFocused();
        // The writer's client (v1) and anyone else: no search finds it for them (engine and
        // store tests); here a third person's search finds only the room's.
        const carol = await visit('Carol');
        await carol.getByRole('button', { name: 'Search', exact: true }).click();
        await carol.getByRole('searchbox', { name: 'Search messages' }).fill('needle');
        await carol.keyboard.press('Enter');
        await expect(carol.getByRole('list', { name: 'Search results' }).getByRole('button')).toHaveCount(1);
        await expect(carol.getByRole('status').filter({ hasText: 'found' })).toHaveText('1 message found.');
      } finally {
        await archive.stop();
      }
    });

    test('a direct conversation older than everything kept is still listed after a reload, opens whole, and counts what came while away', async ({ browser }) => {
      const archive = new RoomServer('Archive', store, ['--rate-burst', '1000', '--rate-per-second', '1000', '--frame-burst', '1000']);
      await archive.start();
      try {
        const visit = async (name: string) => {
          const context = await browser.newContext();
          const page = await context.newPage();
          const watched = { page, context, problems: [] as string[] };
          page.on('pageerror', (err) => watched.problems.push(`page error: ${err.message}`));
          people.push(watched);
          await page.goto(`./?room=${archive.url}`);
          await expect(status(page)).toHaveText('online');
          await rename(page, name);
          return { page, context };
        };
        const alice = (await visit('Alice')).page;
        const { page: bob, context: bobs } = await visit('Bob');
        await peoplePanel(alice).getByRole('button', { name: 'Bob', exact: true }).click();
        await alice.getByRole('button', { name: 'Message Bob directly' }).click();
        await send(alice, 'an old word between us');
        await expect(message(alice, 'an old word between us')).not.toHaveClass(/pending/);
        await expect(conversationButton(bob, 'Alice')).toBeVisible();

        // The room talks on for long: what Bob's page keeps for a reload is room talk only.
        const writer = await LegacyClient.connect(archive.url);
        for (let i = 1; i <= 150; i++) await writer.send('MESSAGE', { rawMessage: `filler ${i}`, userId: writer.userId });
        await expect(message(bob, 'filler 150')).toHaveCount(1);
        await bob.reload();
        await expect(status(bob)).toHaveText('online');
        await expect(message(bob, 'filler 150')).toHaveCount(1);
        // The room lists the conversation; opened, it pages its own history in, to its start.
        const withAlice = conversationButton(bob, 'Alice');
        await expect(withAlice).toBeVisible();
        await expect(withAlice.getByLabel(/unread/)).toHaveCount(0);
        await withAlice.click();
        await expect(bob.getByRole('main').getByRole('heading', { level: 2 })).toHaveText('Direct messages with Alice');
        await expect(message(bob, 'an old word between us')).toHaveCount(1);
        await expect(log(bob)).toContainText('This is the start of your conversation with Alice.');
        await bob.getByRole('button', { name: 'Back to Archive' }).click();

        // Bob closes the page; Alice writes to him, and the room goes on. Back, he sees it
        // counted as unread, under the room, though the conversation is far back.
        await bob.close();
        await conversationButton(alice, 'Bob').click();
        await send(alice, 'while you were away');
        await expect(message(alice, 'while you were away')).not.toHaveClass(/pending/);
        for (let i = 151; i <= 170; i++) await writer.send('MESSAGE', { rawMessage: `filler ${i}`, userId: writer.userId });
        await writer.waitFor((a) => a.type === 'MESSAGE' && a.payload.rawMessage === 'filler 170');
        writer.close();
        const back = await bobs.newPage();
        back.on('pageerror', (err) => { throw err; });
        await back.goto(`./?room=${archive.url}`);
        await expect(status(back)).toHaveText('online');
        await expect(conversationButton(back, 'Alice').getByLabel('1 unread')).toBeVisible();
        await conversationButton(back, 'Alice').click();
        for (const text of ['an old word between us', 'while you were away']) {
          await expect(message(back, text), `${text} once`).toHaveCount(1);
        }
        await expect(conversationButton(back, 'Alice').getByLabel(/unread/)).toHaveCount(0);
      } finally {
        await archive.stop();
      }
    });

    test('a crowded room lists the first people online and says how many; the rest come by page when asked for', async ({ browser }) => {
      const crowd = new RoomServer('Crowd', store, ['--handshake-people', '2']);
      await crowd.start();
      const others: LegacyClient[] = [];
      try {
        const names = ['Ada', 'Bo', 'Cy', 'Di', 'Ed'];
        for (const name of names) {
          const client = await LegacyClient.connect(crowd.url);
          await client.send('NAME_CHANGE', { name, userId: client.userId });
          await client.waitFor((a) => a.type === 'NAME_CHANGE' && a.payload.name === name);
          others.push(client);
        }
        const context = await browser.newContext();
        const page = await context.newPage();
        people.push({ page, context, problems: [] });
        await page.goto(`./?room=${crowd.url}`);
        await expect(status(page)).toHaveText('online');
        await rename(page, 'Linus');
        const panel = peoplePanel(page);
        // Six online; the room told us of two of the others and of us.
        await expect(panel.getByRole('heading', { name: 'Online (6)' })).toBeVisible();
        await expect(online(page)).toHaveCount(3);
        const more = panel.getByRole('button', { name: /^Show \d+ more online$/ });
        await expect(more).toHaveAccessibleName('Show 3 more online');
        await more.click();
        // A page is at most the room's two (ids are random: we may be one of them), so the
        // rest take a second page.
        await expect.poll(() => online(page).count()).toBeGreaterThan(3);
        await expect(online(page)).not.toHaveCount(6);
        await more.click();
        await expect(online(page)).toHaveCount(6);
        await expect(more).toHaveCount(0);
        for (const name of names) await expect(panel.getByRole('button', { name, exact: true })).toBeVisible();
        // Who leaves is counted out, listed or not.
        others.pop()!.close();
        await expect(panel.getByRole('heading', { name: 'Online (5)' })).toBeVisible();
        await expect(online(page)).toHaveCount(5);
      } finally {
        for (const client of others) client.close();
        await crowd.stop();
      }
    });

    test('a room with more people online than a page lists the first hundred, the rest a click away', async ({ browser }) => {
      const hall = new RoomServer('Hall', store, ['--identity-burst', '500', '--max-connections-per-address', '500']);
      await hall.start();
      const others: LegacyClient[] = [];
      try {
        const context = await browser.newContext();
        const page = await context.newPage();
        people.push({ page, context, problems: [] });
        await page.goto(`./?room=${hall.url}`);
        await expect(status(page)).toHaveText('online');
        // 130 come after us: the room tells us of each (PRESENCE), the list shows a page.
        for (let i = 0; i < 130; i++) others.push(await LegacyClient.connect(hall.url));
        const panel = peoplePanel(page);
        await expect(panel.getByRole('heading', { name: 'Online (131)' })).toBeVisible();
        await expect(online(page)).toHaveCount(100);
        await expect(online(page).first()).toContainText('(you)');
        await panel.getByRole('button', { name: 'Show 31 more online' }).click();
        await expect(online(page)).toHaveCount(131);
        await expect(panel.getByRole('button', { name: /more online/ })).toHaveCount(0);
      } finally {
        for (const client of others) client.close();
        await hall.stop();
      }
    });

    test('moderation: the operator makes an owner, who makes a moderator, who removes a member\'s message for everyone (live, after a reload, in search); a member sees no such control', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      const carol = await join(browser, 'Carol');
      await expect(online(alice)).toHaveCount(3);
      // The operator, on the room's store: Alice is its owner from the room's next start.
      await makeOwner('Alice', [alice, bob, carol]);
      await expect(peoplePanel(carol).getByRole('listitem').filter({ hasText: 'Alice' })).toContainText('owner');

      // The owner makes Bob a moderator from his profile; everyone sees it.
      await peoplePanel(alice).getByRole('button', { name: 'Bob', exact: true }).click();
      await alice.getByRole('dialog', { name: 'Bob' }).getByRole('button', { name: 'Make Bob a moderator' }).click();
      await expect(peoplePanel(carol).getByRole('listitem').filter({ hasText: 'Bob' })).toContainText('moderator');
      await alice.keyboard.press('Escape');

      await send(carol, 'buy cheapwatches here');
      await send(alice, 'the owner says hello');
      await expect(message(bob, 'buy cheapwatches here')).toHaveCount(1);
      // A member has no Remove; the moderator has it on the member's message only.
      await expect(log(carol).getByRole('button', { name: /^Remove / })).toHaveCount(0);
      await expect(bob.getByRole('button', { name: /^Remove Alice's message/ })).toHaveCount(0);
      await bob.getByRole('button', { name: /^Remove Carol's message of/ }).click();
      await bob.getByRole('group', { name: 'Remove this message?' }).getByRole('button', { name: 'Remove for everyone' }).click();
      for (const p of [alice, bob, carol]) {
        await expect(log(p)).not.toContainText('cheapwatches');
        await expect(log(p).getByText('removed by a moderator')).toHaveCount(1);
      }
      // From storage too: after a reload, and in a search.
      await carol.reload();
      await expect(status(carol)).toHaveText('online');
      await expect(log(carol).getByText('removed by a moderator')).toHaveCount(1);
      await expect(log(carol)).not.toContainText('cheapwatches');
      await carol.getByRole('button', { name: 'Search', exact: true }).click();
      await carol.getByRole('searchbox', { name: 'Search messages' }).fill('cheapwatches');
      await carol.keyboard.press('Enter');
      await expect(carol.getByRole('status').filter({ hasText: /found/ })).toHaveText(/^No messages? found/);
      await carol.keyboard.press('Escape');

      // A time-out: Carol reads, and cannot write until it ends; everyone sees it.
      await peoplePanel(bob).getByRole('button', { name: 'Carol', exact: true }).click();
      await bob.getByRole('dialog', { name: 'Carol' }).getByRole('button', { name: 'Time out Carol for 10 minutes' }).click();
      await expect(carol.getByRole('status').filter({ hasText: 'timed you out' })).toContainText(/write again at \d\d:\d\d/);
      await expect(composer(carol)).toBeDisabled();
      await expect(peoplePanel(alice).getByRole('listitem').filter({ hasText: 'Carol' })).toContainText('timed out');
      await send(alice, 'Carol still reads this');
      await expect(message(carol, 'Carol still reads this')).toHaveCount(1);
      // Ended early by the moderator: she writes again.
      await bob.getByRole('dialog', { name: 'Carol' }).getByRole('button', { name: "End Carol's time-out" }).click();
      await expect(composer(carol)).toBeEnabled();
      await send(carol, 'thank you');
      await expect(message(alice, 'thank you')).toHaveCount(1);

      // A kick: Carol is told why, her connection closes, and she comes back.
      const profile = bob.getByRole('dialog', { name: 'Carol' });
      await profile.getByRole('textbox', { name: 'Why (told to them)' }).fill('cool down');
      await profile.getByRole('button', { name: 'Kick Carol' }).click();
      await expect(carol.getByText('A moderator removed you from this room: cool down. You may come back.')).toBeVisible();
      await expect(status(carol)).toHaveText('online', { timeout: 20_000 });
      await send(carol, 'calm now');
      await expect(message(alice, 'calm now')).toHaveCount(1);
      await bob.keyboard.press('Escape');

      // The topic and slow mode, from the room's header (moderators only).
      await expect(carol.getByRole('button', { name: 'Room settings' })).toHaveCount(0);
      await bob.getByRole('button', { name: 'Room settings' }).click();
      const settings = bob.getByRole('form', { name: 'Room settings' });
      await settings.getByRole('textbox', { name: 'Topic' }).fill('Be kind, stay on topic');
      await settings.getByRole('combobox', { name: 'Slow mode' }).selectOption({ label: '10 seconds' });
      await settings.getByRole('button', { name: 'Save room settings' }).click();
      for (const p of [alice, carol]) await expect(p.getByRole('main').getByText('Be kind, stay on topic')).toBeVisible();
      await expect(carol.getByText('Slow mode: one message every 10 s')).toBeVisible();
      // Carol's second message waits for the interval, then goes, once.
      await send(carol, 'first in slow mode');
      await send(carol, 'second in slow mode');
      await expect(message(carol, 'second in slow mode')).toHaveClass(/pending/);
      await expect(message(alice, 'second in slow mode')).toHaveCount(1, { timeout: 20_000 });
      await expect(message(carol, 'second in slow mode')).not.toHaveClass(/pending/);
    });

    test('a ban: the person is told why and disconnected, stays out (and nobody new comes from their address) until it is lifted', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const carol = await join(browser, 'Carol');
      await expect(online(alice)).toHaveCount(2);
      await makeOwner('Alice', [alice, carol]);

      // The owner bans Carol for an hour, with her address, from her profile.
      await peoplePanel(alice).getByRole('button', { name: 'Carol', exact: true }).click();
      const profile = alice.getByRole('dialog', { name: 'Carol' });
      await profile.getByRole('textbox', { name: 'Why they are banned (told to them)' }).fill('spam links');
      await profile.getByRole('combobox', { name: 'For how long' }).selectOption({ label: 'an hour' });
      await profile.getByRole('checkbox', { name: /Also their network address/ }).check();
      await profile.getByRole('button', { name: 'Ban Carol' }).click();
      const banned = (p: Page) => p.getByRole('main').getByRole('status').filter({ hasText: 'banned from this room' });
      await expect(carol.getByText('you are banned from this room for 60 more min: spam links')).toBeVisible();
      await expect(banned(carol)).toBeVisible();
      await expect(peoplePanel(alice).getByRole('listitem').filter({ hasText: 'Carol' })).toContainText('banned');
      await expect(profile.getByRole('button', { name: "Lift Carol's ban" })).toBeVisible();
      // She stays out: no attempt by itself, and a reload is refused again.
      await carol.waitForTimeout(2_000);
      await expect(banned(carol)).toBeVisible();
      await carol.reload();
      await expect(banned(carol)).toBeVisible();
      // Nobody new from her address: a fresh identity is refused too.
      const fresh = await browser.newContext();
      const newcomer = await fresh.newPage();
      await newcomer.goto(`./?room=${lounge.url}`);
      await expect(newcomer.getByText(/new identities are not given to your network/)).toBeVisible();
      await expect(banned(newcomer)).toBeVisible();
      await fresh.close();

      // Lifted: everyone sees it, and Carol is back when she tries again.
      await profile.getByRole('button', { name: "Lift Carol's ban" }).click();
      await expect(peoplePanel(alice).getByRole('listitem').filter({ hasText: 'Carol' })).not.toContainText('banned');
      await carol.getByRole('button', { name: 'Retry now' }).click();
      await expect(status(carol)).toHaveText('online', { timeout: 20_000 });
      await send(carol, 'I will behave');
      await expect(message(alice, 'I will behave')).toHaveCount(1);
    });

    test('a report reaches the moderators\' panel, is resolved there, and every moderation action is in its log (after a restart too); members see neither', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      const carol = await join(browser, 'Carol');
      await expect(online(alice)).toHaveCount(3);
      await makeOwner('Alice', [alice, bob, carol]);

      await send(bob, 'buy cheapwatches here');
      await expect(message(carol, 'buy cheapwatches here')).toHaveCount(1);
      // Carol, a member, reports it, saying why; she has no moderation panel.
      await expect(carol.getByRole('button', { name: /^Moderation/ })).toHaveCount(0);
      await message(carol, 'buy cheapwatches here').getByRole('button', { name: /^Report Bob's message of/ }).click();
      const form = carol.getByRole('form', { name: "Report Bob's message" });
      await form.getByRole('textbox', { name: 'Why (told to the moderators)' }).fill('spam');
      await form.getByRole('button', { name: 'Send report' }).click();
      await expect(carol.getByText('Reported to the moderators.')).toBeVisible();

      // The owner's panel counts it, shows it, and resolves it.
      const toggle = alice.getByRole('button', { name: /^Moderation/ });
      await expect(toggle).toHaveText('Moderation (1 open)');
      await toggle.click();
      const panel = alice.getByRole('region', { name: 'Moderation' });
      const report = panel.getByRole('listitem').filter({ hasText: 'Carol reported Bob\'s message “buy cheapwatches here”: spam' });
      await expect(report.first()).toBeVisible();
      await report.first().getByRole('button', { name: /^Resolve/ }).click();
      await expect(panel.getByText('No open reports.')).toBeVisible();
      await expect(toggle).toHaveText('Moderation');
      // She removes the message: the log says so, newest first.
      await alice.getByRole('button', { name: /^Remove Bob's message of/ }).click();
      await alice.getByRole('group', { name: 'Remove this message?' }).getByRole('button', { name: 'Remove for everyone' }).click();
      const log = panel.getByRole('list').last();
      await expect(log.getByRole('listitem').first()).toContainText('You removed a message of Bob');
      await expect(log).toContainText('You resolved a report of Bob\'s message');

      // Stored: after the room restarts, on a fresh page, the log is still there.
      await lounge.stop();
      await lounge.start();
      await alice.reload();
      await expect(status(alice)).toHaveText('online', { timeout: 20_000 });
      await toggle.click();
      await expect(log.getByRole('listitem').first()).toContainText('You removed a message of Bob');
      await expect(log).toContainText('Carol reported Bob\'s message');
      await expect(bob.getByRole('button', { name: /^Moderation/ })).toHaveCount(0);
    });

    test('kill -9 of a room server mid-conversation: both reconnect, nothing lost or doubled', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      const said = ['one (Alice)', 'two (Bob)', 'three (Alice)'];
      await send(alice, said[0]);
      await expect(message(bob, said[0])).toHaveCount(1);
      await send(bob, said[1]);
      await expect(message(alice, said[1])).toHaveCount(1);
      await send(alice, said[2]);
      await expect(message(bob, said[2])).toHaveCount(1);

      // A burst, and the kill while it is in flight: some may be stored and not yet echoed,
      // some not stored at all. Either way each must end up shown once, everywhere.
      const burst = [1, 2, 3, 4, 5].map((n) => `burst ${n} (Bob)`);
      for (const text of burst) await send(bob, text);
      await lounge.kill9();
      for (const p of [alice, bob]) {
        await expect(status(p)).toHaveText(/reconnecting/);
        await expect(roomButton(p, 'Games')).toHaveAccessibleName(/, online( \d+ unread)?$/);
      }
      // Written while the room is down: shown at once as sending, sent when it is back.
      await send(alice, 'four (Alice, while down)');
      await expect(message(alice, 'four (Alice, while down)')).toHaveClass(/pending/);
      await expect(message(alice, 'four (Alice, while down)')).toContainText('sending…');

      await lounge.start();
      for (const p of [alice, bob]) {
        await expect(status(p)).toHaveText('online', { timeout: 20_000 });
      }
      await expect(message(alice, 'four (Alice, while down)')).not.toHaveClass(/pending/);
      await send(bob, 'five (Bob, after)');
      const all = [...said, ...burst, 'four (Alice, while down)', 'five (Bob, after)'];
      for (const p of [alice, bob]) {
        for (const text of all) {
          await expect(message(p, text), `${text} exactly once`).toHaveCount(1);
        }
        await expect(log(p).locator('.pending')).toHaveCount(0);
      }
      // And after a reload, from storage: still each exactly once, in order.
      await bob.reload();
      await expect(status(bob)).toHaveText('online');
      const texts = (await log(bob).getByRole('article').locator('.message-body').allInnerTexts()).map((t) => t.trim());
      expect(texts.filter((t) => all.includes(t)).sort()).toEqual([...all].sort());
      // Each person's messages keep the order they were written in.
      expect(texts.filter((t) => burst.includes(t))).toEqual(burst);
    });

    test('a room that is down counts down to its next try, at most 15 s, and can be retried at once', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      await lounge.kill9();
      await expect(status(alice)).toHaveText(/reconnecting/);
      // Several failed attempts: the wait grows but never past 15 s, and it counts down.
      // (Waits until a try is at least 8 s away, so that "Retry now" below surely comes first.)
      // (Read in one go: the line may turn to "connecting…" between a check and a read.)
      const nextIn = async () => {
        for (const until = Date.now() + 20_000; Date.now() < until; await alice.waitForTimeout(100)) {
          const shown = (await status(alice).innerText()).match(/next in (\d+) s/);
          if (shown) return Number(shown[1]);
        }
        throw new Error('no countdown to the next try');
      };
      for (let attempt = 0; attempt < 8; attempt++) {
        const seconds = await nextIn();
        expect(seconds).toBeLessThanOrEqual(15);
        if (seconds >= 8) {
          await expect(status(alice)).toHaveText(new RegExp(`next in ${seconds - 2} s`), { timeout: 4_000 });
          break;
        }
        await alice.waitForTimeout(seconds * 1000 + 500);
      }
      // The server is back: Retry now connects at once, without waiting.
      await lounge.start();
      await alice.getByRole('button', { name: 'Retry now', exact: true }).click();
      await expect(status(alice)).toHaveText('online', { timeout: 3_000 });
      await expect(alice.getByRole('button', { name: 'Retry now', exact: true })).toHaveCount(0);
    });

    test('quick messages reach everyone in the order they were written', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      // Twenty at once, with the room's default rate limit (10 at once, 5 a second).
      const quick = Array.from({ length: 20 }, (_, i) => `quick ${String(i + 1).padStart(2, '0')}`);
      for (const text of quick) await send(alice, text);
      for (const p of [alice, bob]) {
        await expect(message(p, 'quick 20')).toHaveCount(1, { timeout: 15_000 });
        await expect(log(p).locator('.pending')).toHaveCount(0, { timeout: 15_000 });
        const texts = (await log(p).getByRole('article').locator('.message-body').allInnerTexts()).map((t) => t.trim());
        expect(texts.filter((t) => t.startsWith('quick '))).toEqual(quick);
      }
      // The stored history has the same order.
      await bob.reload();
      await expect(status(bob)).toHaveText('online');
      const stored = (await log(bob).getByRole('article').locator('.message-body').allInnerTexts()).map((t) => t.trim());
      expect(stored.filter((t) => t.startsWith('quick '))).toEqual(quick);
    });

    test('a message written while the room is down survives a reload and is sent once', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      await send(bob, 'said before the Lounge went down');
      await expect(message(alice, 'said before the Lounge went down')).toHaveCount(1);
      await lounge.kill9();
      await expect(status(alice)).toHaveText(/reconnecting/);
      await send(alice, 'written while the Lounge was down');
      await expect(message(alice, 'written while the Lounge was down')).toContainText('sending…');
      await alice.reload();
      // Still there after the reload, still waiting; the room keeps its name and what it
      // showed (with who said it) meanwhile.
      await expect(message(alice, 'written while the Lounge was down')).toContainText('sending…');
      await expect(alice.getByRole('heading', { level: 2, name: 'Lounge' })).toBeVisible();
      await expect(message(alice, 'said before the Lounge went down').locator('.author')).toHaveText('Bob');
      await expect(alice.getByText('This is the start of')).toHaveCount(0);
      await lounge.start();
      await expect(status(alice)).toHaveText('online', { timeout: 20_000 });
      await expect(message(alice, 'written while the Lounge was down')).not.toHaveClass(/pending/);
      await expect(message(alice, 'said before the Lounge went down')).toHaveCount(1);
      await expect(status(bob)).toHaveText('online', { timeout: 20_000 });
      await expect(message(bob, 'written while the Lounge was down')).toHaveCount(1);
      await bob.reload();
      await expect(status(bob)).toHaveText('online');
      await expect(message(bob, 'written while the Lounge was down')).toHaveCount(1);
    });

    test('an address that never answers says so and can be removed; two spellings of one server are one room', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const address = alice.getByRole('textbox', { name: 'Server address' });
      // A bare word is not taken for a server.
      await address.fill('hello');
      await alice.getByRole('button', { name: 'Add', exact: true }).click();
      await expect(alice.getByRole('navigation', { name: 'Rooms' }).getByRole('alert')).toContainText('did you mean mock://hello');
      // A server that is not there: after a few tries the room says so and offers removal.
      await address.fill('ws://127.0.0.1:9/');
      await alice.getByRole('button', { name: 'Add', exact: true }).click();
      const notice = alice.getByRole('alert').filter({ hasText: 'has not answered yet' });
      await expect(notice).toBeVisible({ timeout: 20_000 });
      await expect(alice.getByText('This is the start of')).toHaveCount(0);
      await notice.getByRole('button', { name: 'Remove this room', exact: true }).click();
      await expect(roomButton(alice, 'ws://127.0.0.1:9/', '')).toHaveCount(0);
      // localhost and 127.0.0.1 are the same server: adding it again shows the same room.
      const rooms = alice.getByRole('navigation', { name: 'Rooms' }).getByRole('listitem');
      const before = await rooms.count();
      await address.fill(lounge.url.replace('127.0.0.1', 'localhost'));
      await alice.getByRole('button', { name: 'Add', exact: true }).click();
      await expect(rooms).toHaveCount(before);
      await expect(roomButton(alice, 'Lounge')).toHaveAttribute('aria-current', 'page');
    });

    test('network loss of one person: offline, then back with what was missed', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const bob = await join(browser, 'Bob');
      const bobContext = bob.context();
      // Playwright's offline mode does not cut open WebSockets (microsoft/playwright#4910); the
      // browser's offline event does reach the page, and the client drops its connections.
      await bobContext.setOffline(true);
      await expect(status(bob)).toHaveText(/offline/);
      await expect(online(alice)).toHaveCount(1);
      await send(alice, 'while you were away 1');
      await send(alice, 'while you were away 2');
      await send(bob, 'queued while offline');
      await expect(message(bob, 'queued while offline')).toHaveClass(/pending/);
      await expect(message(bob, 'while you were away 1')).toHaveCount(0);

      await bobContext.setOffline(false);
      await expect(status(bob)).toHaveText('online');
      for (const text of ['while you were away 1', 'while you were away 2', 'queued while offline']) {
        await expect(message(bob, text)).toHaveCount(1);
        await expect(message(alice, text)).toHaveCount(1);
      }
      await expect(message(bob, 'queued while offline')).not.toHaveClass(/pending/);
      await expect(online(alice)).toContainText(['Alice', 'Bob']);
    });

    test('a message the room refuses is marked "not sent", and Edit puts it back into the box', async ({ page }) => {
      // A room with a short limit, and one that takes only plain HTML (no nesting to speak of).
      const strict = new RoomServer('Strict', store, ['--max-message-chars', '40', '--max-html-ratio', '0']);
      await strict.start();
      try {
        await page.goto(`./?room=${strict.url}`);
        await expect(status(page)).toHaveText('online');
        // Over the room's announced limit: refused before sending, and the text stays.
        const long = 'this message is longer than the forty characters allowed here';
        await send(page, long);
        await expect(page.getByRole('form', { name: 'Write a message' }).getByRole('alert')).toContainText("longer than this room's 40 characters");
        await expect(composer(page)).toHaveValue(long);
        await expect(message(page, long)).toHaveCount(0);
        // The room's limit, as it announced it, counts down near the end and says how far over.
        const form = page.getByRole('form', { name: 'Write a message' });
        await expect(form.getByText(`${long.length - 40} characters over this room's 40`)).toBeVisible();
        await composer(page).fill('x'.repeat(37));
        await expect(form.getByText('3 characters left')).toBeVisible();
        await composer(page).fill('x'.repeat(10));
        await expect(form.getByText(/characters left/)).toHaveCount(0);
        await composer(page).fill(long);
        // Refused by the room for what it is (nested too deeply for it): "not sent".
        const deep = '>'.repeat(39);
        await send(page, deep);
        const refused = log(page).getByRole('article').filter({ hasText: 'not sent' });
        await expect(refused).toHaveCount(1);
        await expect(page.getByRole('alert').filter({ hasText: 'The room refused' })).toBeVisible();
        await send(page, 'short one');
        await expect(message(page, 'short one')).not.toHaveClass(/pending/);
        // Sending the same text again cannot succeed: no Retry. Edit puts it back into the box
        // (after what is being written there), to be changed.
        await expect(refused.getByRole('button', { name: 'Retry', exact: true })).toHaveCount(0);
        await composer(page).fill('draft');
        await refused.getByRole('button', { name: 'Edit', exact: true }).click();
        await expect(log(page).getByRole('article').filter({ hasText: 'not sent' })).toHaveCount(0);
        await expect(composer(page)).toBeFocused();
        await expect(composer(page)).toHaveValue(`draft\n\n${deep}`);
        await composer(page).fill('flattened to fit');
        await page.getByRole('button', { name: 'Send', exact: true }).click();
        await expect(message(page, 'flattened to fit')).not.toHaveClass(/pending/);
        await expect(message(page, 'short one')).toHaveCount(1);
      } finally {
        await strict.stop();
      }
    });

    test('with slow storage, a refusal that overtakes an earlier echo marks only its own message "not sent"', async ({ page }) => {
      // Storage takes 1.5 s a write: A's echo waits for it, while B's refusal (too deeply
      // nested for this room, a rule only the room checks) needs no storage and comes first.
      const slow = new RoomServer('Slow', store, ['--store-delay-ms', '1500', '--max-html-ratio', '0']);
      await slow.start();
      try {
        await page.goto(`./?room=${slow.url}`);
        await expect(status(page)).toHaveText('online');
        const deep = '>'.repeat(39);
        await send(page, 'A goes first');
        await send(page, deep);
        const refused = log(page).getByRole('article').filter({ hasText: 'not sent' });
        await expect(refused).toHaveCount(1);
        await expect(refused).not.toContainText('A goes first');
        // A is still on its way when B is refused: it says so, and is never "not sent".
        await expect(message(page, 'A goes first')).toHaveClass(/pending/);
        await expect(message(page, 'A goes first')).toContainText('sending…');
        await expect(message(page, 'A goes first')).not.toHaveClass(/pending/, { timeout: 10_000 });
        await expect(message(page, 'A goes first')).not.toContainText('not sent');
        await expect(refused).toHaveCount(1);
        await expect(refused.getByRole('button', { name: 'Edit', exact: true })).toBeVisible();
      } finally {
        await slow.stop();
      }
    });

    test('a reply quotes its original as it reads (markup dropped, emoji shown); activating the quote pages older history in until it shows it', async ({ page }) => {
      const archive = new RoomServer('Replies', store, ['--rate-burst', '1000', '--rate-per-second', '1000', '--frame-burst', '1000']);
      await archive.start();
      try {
        const writer = await LegacyClient.connect(archive.url);
        await writer.send('MESSAGE', { rawMessage: 'the **original** `question` :rocket:', userId: writer.userId });
        for (let i = 1; i <= 150; i++) await writer.send('MESSAGE', { rawMessage: `filler ${i}`, userId: writer.userId });
        await writer.send('MESSAGE', { rawMessage: 'the answer, much later', userId: writer.userId, replyTo: 1 });
        await writer.waitFor((a) => a.type === 'MESSAGE' && a.payload.rawMessage === 'the answer, much later');
        writer.close();
        await page.goto(`./?room=${archive.url}`);
        await expect(status(page)).toHaveText('online');
        const answer = message(page, 'the answer, much later');
        // The original (found by its own text, not by a quote of it) is older than what the
        // room sent on joining.
        const original = log(page)
          .getByRole('article')
          .filter({ has: page.locator('.message-body', { hasText: 'the original question' }) });
        await expect(original).toHaveCount(0);
        await answer.getByRole('button', { name: '↪ a message earlier in the room', exact: true }).click();
        await expect(original).toBeFocused({ timeout: 15_000 });
        await expect(original).toBeInViewport();
        // Shown whole, away from the log's top edge (its focus ring not cut).
        const [shown, area] = await Promise.all([original.boundingBox(), log(page).boundingBox()]);
        expect(shown!.y).toBeGreaterThan(area!.y + 8);
        // Replying from the client: the quote is on the reply, for everyone.
        await original.getByRole('button', { name: /^Reply to the message/ }).click();
        await expect(page.getByText(/^Replying to .*: the original question 🚀$/)).toBeVisible();
        // The message being answered is marked as such.
        await expect(original).toHaveAttribute('aria-current', 'true');
        await expect(original).toHaveClass(/answering/);
        await expect(composer(page)).toBeFocused();
        await page.keyboard.type('answered from the client');
        await page.keyboard.press('Enter');
        const mine = log(page)
          .getByRole('article')
          .filter({ has: page.locator('.message-body', { hasText: 'answered from the client' }) });
        await expect(mine).not.toHaveClass(/pending/);
        await expect(mine.getByRole('button', { name: /^↪ .*: the original question 🚀$/ })).toBeVisible();
        await expect(page.getByText(/^Replying to/)).toHaveCount(0);
        // Now that it is loaded, the earlier answer's quote shows who said what, too.
        await expect(answer.getByRole('button', { name: /^↪ .*: the original question 🚀$/ })).toHaveCount(1);
      } finally {
        await archive.stop();
      }
    });

    test('a burst of 3,000 messages keeps the view on the newest, with only the newest rendered', async ({ page }) => {
      const busy = new RoomServer('Busy', store, ['--rate-burst', '5000', '--rate-per-second', '5000', '--frame-burst', '5000', '--frames-per-second', '5000']);
      await busy.start();
      try {
        await page.goto(`./?room=${busy.url}`);
        await expect(status(page)).toHaveText('online');
        const writer = await LegacyClient.connect(busy.url);
        for (let i = 1; i <= 3000; i++) await writer.send('MESSAGE', { rawMessage: `burst ${i}`, userId: writer.userId });
        // The log follows all the way (it lets its oldest go forty at a time on the way).
        await expect(message(page, 'burst 3000')).toBeInViewport({ timeout: 20_000 });
        await expect(page.getByRole('button', { name: /new messages? ↓/ })).toHaveCount(0);
        expect(await log(page).getByRole('article').count()).toBeLessThanOrEqual(100);
        writer.close();
      } finally {
        await busy.stop();
      }
    });

    test('scrolling up through 500 messages keeps your place and pages back to the start', async ({ page }) => {
      const archive = new RoomServer('Archive', store, ['--rate-burst', '1000', '--rate-per-second', '1000', '--frame-burst', '1000']);
      await archive.start();
      try {
        const writer = await LegacyClient.connect(archive.url);
        for (let i = 1; i <= 500; i++) await writer.send('MESSAGE', { rawMessage: `archived ${i}`, userId: writer.userId });
        await writer.waitFor((a) => a.type === 'MESSAGE' && a.payload.rawMessage === 'archived 500');
        writer.close();
        await page.goto(`./?room=${archive.url}`);
        await expect(status(page)).toHaveText('online');
        await expect(message(page, 'archived 500')).toBeVisible();
        const articles = log(page).getByRole('article');
        for (let page_ = 0; page_ < 20; page_++) {
          if (await log(page).getByText('This is the start of Archive.').count()) break;
          // Scroll up slowly, as a reader does, until older ones are rendered above (held
          // already, or a page asked for).
          const first = () => articles.first().getAttribute('id');
          const before = await first();
          const reading = articles.first();
          const text = (await reading.locator('.message-body').innerText()).trim();
          for (let step = 0; step < 80 && (await first()) === before; step++) {
            await log(page).evaluate((el) => el.scrollBy(0, -250));
            await page.waitForTimeout(30);
          }
          await expect.poll(first).not.toBe(before);
          // The message that was first is still on screen: the view did not jump.
          await expect(message(page, text).first()).toBeInViewport();
          // Only what is near the view is rendered.
          expect(await articles.count()).toBeLessThanOrEqual(140);
        }
        await expect(log(page).getByText('This is the start of Archive.')).toBeVisible();
        await expect(articles.first().locator('.message-body')).toHaveText('archived 1');
        await expect(log(page)).toHaveAttribute('data-held', '500');
      } finally {
        await archive.stop();
      }
    });

    test('a legacy v1 client and ours chat through the same room', async ({ browser }) => {
      const alice = await join(browser, 'Alice');
      const legacy = await LegacyClient.connect(lounge.url);
      await legacy.send('NAME_CHANGE', { name: 'Larry (v1)', userId: legacy.userId });
      await legacy.send('MESSAGE', { rawMessage: 'hello from **v1**', userId: legacy.userId });
      const fromLegacy = message(alice, 'hello from v1');
      await expect(fromLegacy.locator('.author')).toHaveText('Larry (v1)');
      await expect(fromLegacy.locator('strong')).toHaveText('v1');
      await expect(online(alice)).toContainText(['Alice', 'Larry (v1)']);

      await send(alice, 'hi Larry, _welcome_ <script>x()</script>');
      const got = await legacy.waitFor((a) => a.type === 'MESSAGE' && a.payload.rawMessage.startsWith('hi Larry'));
      expect(got.payload.userId).not.toEqual(legacy.userId);
      expect(typeof got.payload.timestamp).toBe('number');
      expect(got.payload.htmlMessage).toContain('<em>welcome</em>');
      expect(got.payload.htmlMessage).not.toContain('<script');
      expect(legacy.names.get(got.payload.userId)).toEqual('Alice');
      // Every server action carried an object payload (v1 writes payload.wsAddress into each).
      expect(legacy.received.every((a) => a.payload && typeof a.payload === 'object')).toBe(true);
      legacy.close();
      await expect(online(alice)).toHaveCount(1);
    });
  });
}

/** A scripted client that speaks only the v1 protocol of LEGACY-PROTOCOL.md. */
class LegacyClient {
  received: { type: string; payload: any }[] = [];
  names = new Map<string, string>();
  userId = '';
  private waiters: (() => void)[] = [];

  private constructor(private ws: WebSocket) {
    ws.on('message', (data) => {
      const action = JSON.parse(String(data));
      this.received.push(action);
      if (action.type === 'HANDSHAKE') {
        for (const [id, name] of Object.entries(action.payload.userNames)) this.names.set(id, name as string);
      }
      if (action.type === 'NAME_CHANGE') this.names.set(action.payload.userId, action.payload.name);
      if (action.type === 'USER_INFO') this.userId = action.payload.userId;
      this.waiters.forEach((w) => w());
    });
  }

  static async connect(url: string): Promise<LegacyClient> {
    const ws = new WebSocket(url);
    const client = new LegacyClient(ws);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await client.waitFor((a) => a.type === 'HANDSHAKE');
    // A first-time v1 user: no userId (it would be read from the `uid` cookie).
    await client.send('HANDSHAKE_USER_INFO', {});
    await client.waitFor((a) => a.type === 'USER_INFO');
    return client;
  }

  async send(type: string, payload: object) {
    this.ws.send(JSON.stringify({ type, payload }));
  }

  waitFor(match: (a: { type: string; payload: any }) => boolean, ms = 10_000): Promise<{ type: string; payload: any }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('legacy client: nothing matched')), ms);
      const check = () => {
        const found = this.received.find(match);
        if (found) {
          clearTimeout(timer);
          resolve(found);
        }
      };
      this.waiters.push(check);
      check();
    });
  }

  close() {
    this.ws.close();
  }
}

const heading = (page: Page) => page.getByRole('main').getByRole('heading', { level: 2 });
