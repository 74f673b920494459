// Frame times of the client as its room fills: the demo's fake users post into the room the
// page shows until the page holds HELD messages, then frames are measured for SECONDS while
// they keep posting (following the newest), and for SECONDS while the reader scrolls up
// through what is held (the mouse wheel, a step every 50 ms). Debian's Chromium, headless, the
// release build in DIST (scripts/build-client.sh). Each figure is printed as a table row.
//
// A frame's interval is the time between two requestAnimationFrame callbacks: at 60 Hz one
// that is on time is 16.7 ms, one that misses a vsync 33 ms or more: a p95 of 16.7 ms means at
// most one frame in twenty was late. The main thread's busy share is Chromium's own count of
// the time its tasks took (CDP Performance.getMetrics, TaskDuration) over the measured time.
//
// With --server BIN the room is a real room server instead (BIN, on 127.0.0.1, its limits
// raised for the bench): a poster fills it with HELD messages while the page is open, then
// posts RATE messages a second (default 20) while frames are measured, so the rate is exact
// (the demo's fake users post as fast as their worker manages: about 12 a second at 5,000).
//
// Usage: node tests/bench/frames.mjs [--dist DIR] [--speed S] [--held N] [--seconds T]
//        [--fill-limit T] [--server BIN [--rate R]] [--profile TOP]
//        (from the repository's root; bounded: fill-limit + 2 T + ~10 s)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith('--')) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const dist = args.dist ?? 'dist';
const speed = Number(args.speed ?? 100);
const held = Number(args.held ?? 5000);
const seconds = Number(args.seconds ?? 20);
const fillLimit = Number(args['fill-limit'] ?? 420);
const port = 4100 + Math.floor(Math.random() * 80);

const server = spawn('node', ['tests/e2e/serve-static.mjs', dist, String(port), '/cahat/'], {
  stdio: 'ignore',
});

/** A real room server with its limits raised, and a v1 poster connected to it. */
async function liveRoom(bin) {
  const dataDir = mkdtempSync(join(tmpdir(), 'cahat-frames-'));
  const roomPort = port + 100;
  const limits = ['--rate-burst', '100000', '--rate-per-second', '100000', '--frame-burst', '100000', '--frames-per-second', '100000'];
  const proc = spawn(bin, ['--port', String(roomPort), '--name', 'Bench', '--data-dir', dataDir, ...limits], { stdio: 'ignore' });
  const url = `ws://127.0.0.1:${roomPort}/`;
  let ws;
  for (let i = 0; i < 100 && !ws; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    ws = await new Promise((resolve) => {
      const socket = new WebSocket(url);
      socket.once('open', () => resolve(socket));
      socket.once('error', () => resolve(undefined));
    });
  }
  if (!ws) throw new Error(`no room server at ${url}`);
  let userId = '';
  let stored = 0;
  ws.on('message', (data) => {
    const action = JSON.parse(String(data));
    if (action.type === 'USER_INFO') userId = action.payload.userId;
    if (action.type === 'MESSAGE') stored++;
  });
  ws.send(JSON.stringify({ type: 'HANDSHAKE_USER_INFO', payload: {} }));
  while (!userId) await new Promise((resolve) => setTimeout(resolve, 20));
  let sent = 0;
  const post = () =>
    ws.send(JSON.stringify({ type: 'MESSAGE', payload: { rawMessage: `message **${++sent}** of the bench :tada:`, userId } }));
  return {
    url,
    /** Posts `n` as fast as the room stores them (at most 200 ahead). */
    async fill(n) {
      const target = sent + n;
      while (sent < target) {
        while (sent < target && sent - stored < 200) post();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
    /** Posts `rate` a second until `until`. */
    async steady(rate, until) {
      const began = Date.now();
      const first = sent;
      while (Date.now() < until) {
        const due = Math.floor(((Date.now() - began) / 1000) * rate);
        while (sent - first < due) post();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    stop() {
      ws.close();
      proc.kill();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Collects frame intervals and work for `ms` while `act` runs; returns the figures. */
async function frames(page, ms, act) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const busy = async () =>
    (await cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration').value;
  const busyBefore = await busy();
  const began = Date.now();
  await page.evaluate(() => {
    window.__frames = { intervals: [], dom: 0, last: 0, on: true };
    const f = window.__frames;
    const tick = (now) => {
      if (!f.on) return;
      if (f.last) f.intervals.push(now - f.last);
      f.last = now;
      f.dom = Math.max(f.dom, document.getElementsByTagName('*').length);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const until = Date.now() + ms;
  await act(until);
  const busyShare = (await busy()) - busyBefore;
  const wall = (Date.now() - began) / 1000;
  const figures = await page.evaluate(() => {
    const f = window.__frames;
    f.on = false;
    const at = (list, p) => {
      const sorted = [...list].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    };
    return {
      frames: f.intervals.length,
      p50: at(f.intervals, 0.5),
      p95: at(f.intervals, 0.95),
      p99: at(f.intervals, 0.99),
      late: f.intervals.filter((d) => d > 20).length / Math.max(1, f.intervals.length),
      dom: f.dom,
    };
  });
  return { ...figures, busy: busyShare / wall };
}

const heldNow = (page) =>
  page.evaluate(() => {
    const log = document.querySelector('main [role=log]');
    if (!log) return 0;
    const attr = log.getAttribute('data-held');
    return attr === null ? log.querySelectorAll('article').length : Number(attr);
  });

const row = (what, r, rendered) =>
  `| ${what} | ${r.frames} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.p99.toFixed(1)} | ` +
  `${(100 * r.late).toFixed(1)} % | ${(100 * r.busy).toFixed(0)} % | ${r.dom} | ${rendered} |`;

let browser;
let live;
try {
  await new Promise((resolve) => setTimeout(resolve, 500));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  if (args.server) {
    live = await liveRoom(args.server);
    await page.goto(`http://127.0.0.1:${port}/cahat/?room=${live.url}`);
  } else {
    await page.goto(`http://127.0.0.1:${port}/cahat/?seed=1&speed=${speed}`);
  }
  await page.locator('main [role=log]').waitFor();
  if (live) {
    await page.locator('main [role=log][data-held]').waitFor().catch(() => {});
    await live.fill(held);
  }
  const began = Date.now();
  const first = await heldNow(page);
  let now = first;
  const polls = [];
  while (now < held && Date.now() - began < fillLimit * 1000) {
    await page.waitForTimeout(5000);
    now = await heldNow(page);
    polls.push([Date.now(), now]);
    process.stderr.write(`\rheld ${now} after ${Math.round((Date.now() - began) / 1000)} s`);
  }
  process.stderr.write('\n');
  const rate = (now - first) / ((Date.now() - began) / 1000);
  // The rate at the end of the fill, as the measured part begins (the last 30 s).
  const [t0, n0] = polls[Math.max(0, polls.length - 7)] ?? [began, first];
  const lately = (now - n0) / Math.max(1, (Date.now() - t0) / 1000);
  const source = live ? `a room server, ${args.rate ?? 20} messages/s while measured` : `speed ${speed}`;
  console.log(
    `${dist}: ${source}: ${now} messages held after ${Math.round((Date.now() - began) / 1000)} s ` +
      `(${rate.toFixed(1)} arriving a second while filling, ${lately.toFixed(1)} in its last 30 s)`,
  );
  console.log('| while | frames | p50 ms | p95 ms | p99 ms | over 20 ms | main thread busy | DOM nodes (most) | messages rendered |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  const rendered = () => page.locator('main [role=log] article').count();
  const cdp = await page.context().newCDPSession(page);
  if (args.profile) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.start');
  }
  const following = await frames(page, seconds * 1000, (until) =>
    live ? live.steady(Number(args.rate ?? 20), until) : page.waitForTimeout(until - Date.now()),
  );
  if (args.profile) {
    // The functions that took the most of the main thread's time while following.
    const { profile } = await cdp.send('Profiler.stop');
    const self = new Map();
    const dt = new Map();
    profile.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
    for (const node of profile.nodes) {
      const name = node.callFrame.functionName || `(${node.callFrame.url.split('/').pop()})`;
      self.set(name, (self.get(name) ?? 0) + (dt.get(node.id) ?? 0));
    }
    const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(args.profile));
    for (const [name, us] of top) console.error(`${(us / 1000).toFixed(0).padStart(7)} ms  ${name.slice(0, 140)}`);
  }
  // Still following at the end: no "new messages" button, the newest posted rendered.
  const offered = await page.getByRole('button', { name: /new messages? ↓/ }).count();
  const newest = await page.locator('main [role=log] article').last().locator('.message-body').innerText();
  console.log(row('following the newest', following, await rendered()));
  console.log(`(following at the end: ${offered === 0 ? 'yes' : 'no'}; the newest rendered: "${newest.trim()}")`);
  const log = page.locator('main [role=log]');
  const box = await log.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const scrolling = await frames(page, seconds * 1000, async (until) => {
    const posting = live?.steady(Number(args.rate ?? 20), until);
    while (Date.now() < until) {
      await page.mouse.wheel(0, -400);
      await page.waitForTimeout(50);
    }
    await posting;
  });
  console.log(row('scrolling up through them', scrolling, await rendered()));
} finally {
  await browser?.close();
  live?.stop();
  server.kill();
}
