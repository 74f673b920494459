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
// Usage: node tests/bench/frames.mjs [--dist DIR] [--speed S] [--held N] [--seconds T]
//        [--fill-limit T]   (from the repository's root; bounded: fill-limit + 2 T + ~10 s)
import { spawn } from 'node:child_process';
import { chromium } from 'playwright-core';

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
try {
  await new Promise((resolve) => setTimeout(resolve, 500));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`http://127.0.0.1:${port}/cahat/?seed=1&speed=${speed}`);
  await page.locator('main [role=log]').waitFor();
  const began = Date.now();
  const first = await heldNow(page);
  let now = first;
  while (now < held && Date.now() - began < fillLimit * 1000) {
    await page.waitForTimeout(5000);
    now = await heldNow(page);
    process.stderr.write(`\rheld ${now} after ${Math.round((Date.now() - began) / 1000)} s`);
  }
  process.stderr.write('\n');
  const rate = (now - first) / ((Date.now() - began) / 1000);
  console.log(
    `${dist}: speed ${speed}: ${now} messages held after ${Math.round((Date.now() - began) / 1000)} s ` +
      `(${rate.toFixed(1)} arriving a second while filling)`,
  );
  console.log('| while | frames | p50 ms | p95 ms | p99 ms | over 20 ms | main thread busy | DOM nodes (most) | messages rendered |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  const rendered = () => page.locator('main [role=log] article').count();
  const cdp = await page.context().newCDPSession(page);
  if (args.profile) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.start');
  }
  const following = await frames(page, seconds * 1000, (until) => page.waitForTimeout(until - Date.now()));
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
  console.log(row('following the newest', following, await rendered()));
  const log = page.locator('main [role=log]');
  const box = await log.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  const scrolling = await frames(page, seconds * 1000, async (until) => {
    while (Date.now() < until) {
      await page.mouse.wheel(0, -400);
      await page.waitForTimeout(50);
    }
  });
  console.log(row('scrolling up through them', scrolling, await rendered()));
} finally {
  await browser?.close();
  server.kill();
}
