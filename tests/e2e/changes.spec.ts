import { test, expect } from '@playwright/test';
import { WebSocketServer, WebSocket } from 'ws';
import { AddressInfo } from 'node:net';
import { log, status, composer } from './ui';

// Changes (an edit, a reaction) the room does not take at once, as a busy or failing room
// answers: the person sees that the change is not saved, and it goes through on retry,
// never lost. The room here is a small scripted peer speaking the protocol over a real
// WebSocket: it refuses what a real room refuses only under load (RATE_LIMITED) or when its
// disk fails (STORAGE_FAILED), which a test cannot make a real room do on cue.

type Frame = { type: string; payload: any };

class BusyRoom {
  private server?: WebSocketServer;
  /** How many more edits (and reactions) to refuse for rate, and reactions storage "loses". */
  editsRefused = 2;
  reactionsRefused = 0;
  reactionsLost = 1;
  /** What the page asked for, in order. */
  asked: Frame[] = [];
  private seq = 2;
  private mine = { rawMessage: 'my first words', htmlMessage: '', timestamp: Date.now(), userId: 'me', seq: 2 } as any;

  async start(): Promise<string> {
    this.server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => this.server!.once('listening', () => resolve()));
    this.server.on('connection', (ws) => this.serve(ws));
    const { port } = this.server.address() as AddressInfo;
    return `ws://127.0.0.1:${port}/`;
  }

  async stop() {
    for (const client of this.server?.clients ?? []) client.terminate();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private serve(ws: WebSocket) {
    const send = (type: string, payload: unknown) => ws.send(JSON.stringify({ type, payload }));
    /** A change to my message, stored as the next event, and said with the change's nonce. */
    const stored = (change: object, nonce: string) => {
      this.seq += 1;
      this.mine = { ...this.mine, ...change, changedSeq: this.seq };
      send('MESSAGE_CHANGED', { ...this.mine, changeNonce: nonce });
    };
    send('HANDSHAKE', {
      serverName: 'Busy',
      messages: [
        { rawMessage: 'lunch?', htmlMessage: '', timestamp: Date.now(), userId: 'ana', seq: 1 },
        this.mine,
      ],
      userNames: { ana: 'Ana', me: 'Me' },
      protocolVersion: 2,
      latestSeq: this.seq,
      online: ['ana'],
      limits: { maxMessageChars: 4000, maxNameChars: 32, rateBurst: 10, ratePerSecond: 5 },
    });
    ws.on('message', (data) => {
      const frame: Frame = JSON.parse(String(data));
      this.asked.push(frame);
      const p = frame.payload ?? {};
      switch (frame.type) {
        case 'HANDSHAKE_USER_INFO':
          send('USER_INFO', { userId: 'me', name: 'Me', token: 'secret' });
          break;
        case 'EDIT_MESSAGE':
          if (this.editsRefused > 0) {
            this.editsRefused -= 1;
            send('ERROR', { code: 'RATE_LIMITED', message: 'too many actions; slow down', nonce: p.nonce });
          } else {
            stored({ rawMessage: p.rawMessage, editedAt: Date.now() }, p.nonce);
          }
          break;
        case 'REACT':
          if (this.reactionsRefused > 0) {
            this.reactionsRefused -= 1;
            send('ERROR', { code: 'RATE_LIMITED', message: 'too many actions; slow down', nonce: p.nonce });
          } else if (this.reactionsLost > 0) {
            this.reactionsLost -= 1;
            send('ERROR', { code: 'STORAGE_FAILED', message: 'the room could not store your message; send it again', nonce: p.nonce });
          } else {
            stored({ reactions: [{ emoji: p.emoji, users: ['me'] }] }, p.nonce);
          }
          break;
      }
    });
  }
}

let room: BusyRoom;
let url: string;

test.beforeEach(async () => {
  room = new BusyRoom();
  url = await room.start();
});

test.afterEach(async () => {
  await room.stop();
});

test('an edit refused by the rate limit is shown as not saved and goes through on retry', async ({ page }) => {
  await page.goto(`./?room=${url}`);
  await expect(status(page)).toHaveText('online');
  const mine = log(page).getByRole('article', { name: /^You, / });
  await expect(mine).toContainText('my first words');
  await mine.getByRole('button', { name: /^Edit your message of / }).click();
  await expect(composer(page)).toHaveValue('my first words');
  await composer(page).fill('my better words');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  // Refused for rate: not saved yet, and said so on the message; the text is still the old.
  await expect(mine.getByText(/Your edit: not saved yet: the room asked to slow down; trying again/)).toBeVisible();
  await expect(mine.locator('.message-body')).toHaveText('my first words');
  // It goes again by itself, with the same nonce, until the room takes it.
  await expect(mine.locator('.message-body')).toHaveText('my better words', { timeout: 10_000 });
  await expect(mine.getByText('edited')).toBeVisible();
  await expect(mine.getByText(/Your edit/)).toHaveCount(0);
  const edits = room.asked.filter((f) => f.type === 'EDIT_MESSAGE');
  expect(edits).toHaveLength(3);
  expect(new Set(edits.map((f) => f.payload.nonce)).size).toBe(1);
});

test('a reaction storage lost is shown as not saved, and Retry saves it', async ({ page }) => {
  await page.goto(`./?room=${url}`);
  await expect(status(page)).toHaveText('online');
  const mine = log(page).getByRole('article', { name: /^You, / });
  await mine.getByRole('button', { name: /^React to the message of / }).click();
  await mine.getByRole('button', { name: 'React with 👍' }).click();
  const failed = mine.getByText('Your reaction 👍: not saved, the room could not store it.');
  await expect(failed).toBeVisible();
  await expect(mine.getByRole('button', { name: /^👍 1/ })).toHaveCount(0);
  // Nothing goes again by itself: the person decides.
  await page.waitForTimeout(500);
  expect(room.asked.filter((f) => f.type === 'REACT')).toHaveLength(1);
  await mine.getByRole('button', { name: 'Retry: your reaction 👍' }).click();
  await expect(mine.getByRole('button', { name: /^👍 1/ })).toBeVisible();
  await expect(failed).toHaveCount(0);
  const reacts = room.asked.filter((f) => f.type === 'REACT');
  expect(reacts).toHaveLength(2);
  expect(reacts[1].payload.nonce).toBe(reacts[0].payload.nonce);
});

test('a reaction refused by the rate limit is shown as not saved and goes through, once, with its nonce', async ({ page }) => {
  room.reactionsRefused = 2;
  room.reactionsLost = 0;
  await page.goto(`./?room=${url}`);
  await expect(status(page)).toHaveText('online');
  const mine = log(page).getByRole('article', { name: /^You, / });
  await mine.getByRole('button', { name: /^React to the message of / }).click();
  await mine.getByRole('button', { name: 'React with 🎉' }).click();
  // Refused for rate: not saved yet, and said so on the message; no reaction shown yet.
  await expect(mine.getByText(/Your reaction 🎉: not saved yet: the room asked to slow down/)).toBeVisible();
  await expect(mine.getByRole('button', { name: /^🎉 1/ })).toHaveCount(0);
  // It goes again by itself, with the same nonce, until the room takes it.
  await expect(mine.getByRole('button', { name: /^🎉 1/ })).toBeVisible({ timeout: 10_000 });
  await expect(mine.getByText(/Your reaction/)).toHaveCount(0);
  const reacts = room.asked.filter((f) => f.type === 'REACT');
  expect(reacts).toHaveLength(3);
  expect(new Set(reacts.map((f) => f.payload.nonce)).size).toBe(1);
});
