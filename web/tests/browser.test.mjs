// The viewer page in a real browser: starts `daybook run` on free ports, seeds one camera
// through the device API (snapshots and MP4 segments uploaded to presigned URLs, events mapped
// to byte ranges of segments), then drives Debian's Chromium with Playwright through what a
// person does: a wrong token, sign in, the calendar, three pages of a day, skipping empty days,
// the type filter, playing a clip across two segments, a missing segment, the night digest,
// deleting an event as a managing viewer (with its confirmation), phone width, erasing the
// camera as a managing viewer (after typing its name), a camera on a 60-day plan paged by
// month, and a rejected
// session; axe-core checks the page at each of its states for serious violations. Run by
// web/tests/run.sh.

import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { fmtBytes } from '../js/format.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, 'fixtures');
const bin = process.env.DAYBOOK_BIN;
const artifacts = process.env.DAYBOOK_ARTIFACTS || join(here, '../../target/web-artifacts');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const modules = process.env.DAYBOOK_NODE_MODULES || join(process.env.HOME, '.cache/daybook/web-test/node_modules');
const { chromium } = createRequire(join(modules, 'noop.js'))('playwright-core');
const axeSource = readFileSync(join(modules, 'axe-core/axe.min.js'), 'utf8');
mkdirSync(artifacts, { recursive: true });

const step = (msg) => console.error(`-- ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CAM = 'cam-1';
const PAGE_SIZE = 10;

/* ---------- daybook ---------- */

const dataDir = mkdtempSync(join(tmpdir(), 'daybook-web-'));
const profileDir = mkdtempSync(join(tmpdir(), 'daybook-chromium-'));
let server;
let browser;
let page;

async function startDaybook() {
  server = spawn(bin, ['run', '--data-dir', dataDir, '--http-addr', '127.0.0.1:0', '--s3-addr', '127.0.0.1:0',
    '--device-rate', '1000', '--device-burst', '1000'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' } });
  let stderr = '';
  server.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const lines = createInterface({ input: server.stdout });
  const listening = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daybook did not start in 30 s; stderr:\n${stderr}`)), 30_000);
    server.once('exit', (code) => reject(new Error(`daybook exited with ${code}; stderr:\n${stderr}`)));
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.event === 'listening') {
          clearTimeout(timer);
          resolve(msg);
        }
      } catch {
        /* other output */
      }
    });
  });
  return `http://${listening.http}`;
}

const token = (...args) => execFileSync(bin, ['token', ...args, '--data-dir', dataDir], { encoding: 'utf8' }).trim().split('\n').pop().trim();

/* ---------- seeding through the device API ---------- */

async function call(base, tok, method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(base + path, {
      method, headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' }, body: body && JSON.stringify(body),
    });
    if ((res.status === 429 || res.status === 503) && attempt < 20) {
      await sleep(1000 * Number(res.headers.get('retry-after') || 1));
      continue;
    }
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

async function put(upload, bytes) {
  const res = await fetch(upload.url, { method: upload.method || 'PUT', headers: upload.headers || {}, body: bytes });
  if (!res.ok) throw new Error(`PUT ${upload.url}: ${res.status} ${await res.text()}`);
}

const iso = (ms) => new Date(ms).toISOString();
const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);

async function seed(base, dev) {
  const snapshot = readFileSync(join(fixtures, 'snapshot.jpg'));
  const clips = JSON.parse(readFileSync(join(fixtures, 'clips.json'), 'utf8'));
  const segA = readFileSync(join(fixtures, 'seg-a.mp4'));
  const segB = readFileSync(join(fixtures, 'seg-b.mp4'));
  const now = Date.now();
  const todayStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate());
  const dayMs = 86_400_000;
  const busyDay = todayStart - dayMs + 12 * 3_600_000; // yesterday noon, UTC
  const quietDay = todayStart - 3 * dayMs + 9 * 3_600_000; // three days ago: two days between are empty

  const start = async (type, at, withSnapshot = true) => {
    const r = await call(base, dev, 'POST', `/v1/devices/${CAM}/events`, { type, triggered_at: iso(at) });
    if (withSnapshot) await put(r.snapshot_upload, snapshot);
    return r.event_id;
  };
  const end = (id, at, status = 'complete') =>
    call(base, dev, 'POST', `/v1/devices/${CAM}/events/${encodeURIComponent(id)}/end`, { ended_at: iso(at), status });
  const segment = async (bytes, meta, startedAt, events, upload = true) => {
    const u = await call(base, dev, 'POST', `/v1/devices/${CAM}/segments/uploads`, { content_length: bytes.length, content_type: 'video/mp4' });
    if (upload) await put(u.upload, bytes);
    await call(base, dev, 'POST', `/v1/devices/${CAM}/segments`, {
      segment_id: u.segment_id, size: bytes.length, started_at: iso(startedAt), duration_ms: meta.duration_ms,
      media: { codec: 'h264', width: 160, height: 120, fps: 10 }, keyframes: meta.keyframes, events,
    });
    return u.segment_id;
  };

  // 25 events on the busy day; every fifth is a person, the rest motion.
  const busy = [];
  for (let k = 0; k < 25; k++) {
    const at = busyDay + k * 137_000;
    const type = k % 5 === 4 ? 'person' : 'motion';
    busy.push({ id: await start(type, at, k !== 24), at, type });
  }
  for (let k = 0; k < 23; k++) await end(busy[k].id, busy[k].at + 20_000 + k * 1000);
  await end(busy[23].id, busy[23].at + 5000, 'aborted'); // busy[24] stays open, without a snapshot

  // Event 0 and 1 share one segment (each half of its bytes); event 2 spans two segments
  // (the second half of one, the first half of the next); event 3's segment was reported but
  // never uploaded; event 4 has none.
  const a = clips['seg-a.mp4'];
  const b = clips['seg-b.mp4'];
  const half = (n) => Math.floor(n / 2);
  await segment(segA, a, busy[0].at, [
    { event_id: busy[0].id, index: 0, start_offset: 0, end_offset: half(segA.length) },
    { event_id: busy[1].id, index: 0, start_offset: half(segA.length), end_offset: segA.length },
  ]);
  const first = await segment(segA, a, busy[2].at, [{ event_id: busy[2].id, index: 0, start_offset: half(segA.length), end_offset: segA.length }]);
  const second = await segment(segB, b, busy[2].at + 4000, [{ event_id: busy[2].id, index: 1, start_offset: 0, end_offset: half(segB.length) }]);
  await segment(segB, b, busy[3].at, [{ event_id: busy[3].id, index: 0, start_offset: 0, end_offset: segB.length }], false);

  // Today: two events, so the calendar's today is not empty. Three days ago: one.
  const sinceMidnight = now - todayStart;
  const today = [];
  for (const k of [2, 1]) today.push(await start('motion', now - Math.min(k * 30_000, Math.floor((sinceMidnight * k) / 3))));
  const quiet = await start('sound', quietDay);
  await end(quiet, quietDay + 12_000);

  // The busy day's night digest.
  let digest = false;
  try {
    const u = await call(base, dev, 'POST', `/v1/devices/${CAM}/digests/uploads`, { content_length: segB.length, content_type: 'video/mp4' });
    await put(u.upload, segB);
    await call(base, dev, 'POST', `/v1/devices/${CAM}/digests`, { date: utcDay(busyDay), segment_id: u.segment_id, size: segB.length, duration_ms: b.duration_ms });
    digest = true;
  } catch (e) {
    step(`digest not seeded (${e.message}); the page's "no digest" message is checked instead`);
  }
  // Storage used: four segments reported (the one two events share counted once), as reported.
  const stored = 2 * (segA.length + segB.length);
  return { stored, busy, today, quiet, busyDate: utcDay(busyDay), quietDate: utcDay(quietDay), todayDate: utcDay(now), segments: { first, second }, digest };
}

async function waitProjected(base, view, s) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await fetch(`${base}/v1/devices/${CAM}/calendar?days=30`, { headers: { authorization: `Bearer ${view}` } });
    const cal = await res.json();
    const count = (d) => cal.days?.find((x) => x.date === d)?.events;
    const detail = await (await fetch(`${base}/v1/events/${encodeURIComponent(s.busy[2].id)}`, { headers: { authorization: `Bearer ${view}` } })).json();
    if (count(s.busyDate) === 25 && count(s.todayDate) === 2 && count(s.quietDate) === 1 && detail.segments?.length === 2) return cal;
    if (Date.now() > deadline) throw new Error(`not projected after 30 s: ${JSON.stringify(cal)}`);
    await sleep(200);
  }
}

/* ---------- the browser ---------- */

async function shot(page, name) {
  const path = join(artifacts, `${name}.png`);
  // A modal's backdrop covers the viewport only, so with the player open shoot the viewport.
  const modal = await page.evaluate(() => document.querySelector('dialog[open]') !== null);
  await page.screenshot({ path, fullPage: !modal });
  step(`screenshot ${path}`);
}

async function expectText(locator, pattern, what) {
  try {
    await locator.filter({ hasText: pattern }).first().waitFor({ timeout: 10_000 });
  } catch {
    throw new Error(`${what}: expected ${pattern}, found ${JSON.stringify(await locator.allTextContents())}`);
  }
}

// axe-core on the page as it is: no serious or critical violation (WCAG 2 A/AA rules). Loaded
// through the DevTools protocol, which the page's CSP does not govern.
async function axeCheck(page, what) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `axe-core, ${what}`);
  step(`axe-core: no serious violation (${what})`);
}

const rowIds = (page) => page.locator('#events .event').evaluateAll((rows) => rows.map((r) => r.dataset.eventId));

async function waitRows(page, n, notFirst) {
  await page.waitForFunction(([n, notFirst]) => {
    const rows = [...document.querySelectorAll('#events .event')];
    return document.querySelector('#events')?.getAttribute('aria-busy') !== 'true' && rows.length === n && rows[0]?.dataset.eventId !== notFirst;
  }, [n, notFirst], { timeout: 10_000 });
}

// Resolves once the <video> has data and its time moves on by itself.
async function expectPlaying(page, what) {
  await page.waitForFunction(() => document.querySelector('#video').readyState >= 2, null, { timeout: 15_000 })
    .catch(async () => {
      throw new Error(`${what}: video never loaded: ${await page.locator('#player-msg').textContent()} ${await page.evaluate(() => JSON.stringify({ rs: document.querySelector('#video').readyState, err: document.querySelector('#video').error?.message, src: document.querySelector('#video').currentSrc }))}`);
    });
  const t0 = await page.evaluate(() => document.querySelector('#video').currentTime);
  await page.waitForFunction((t0) => {
    const v = document.querySelector('#video');
    return !v.paused && v.currentTime > t0 + 0.2;
  }, t0, { timeout: 10_000 }).catch(() => { throw new Error(`${what}: currentTime did not advance from ${t0}`); });
}

async function main() {
  assert.ok(bin, 'DAYBOOK_BIN must point at the built daybook binary');
  step(`starting ${bin}`);
  const base = await startDaybook();
  const dev = token('device', CAM);
  const view = token('viewer', CAM);
  step(`seeding ${base}`);
  const s = await seed(base, dev);
  await waitProjected(base, view, s);

  // The object store answers CORS for reads (the page asks it why a segment failed).
  const detail = await (await fetch(`${base}/v1/events/${encodeURIComponent(s.busy[2].id)}`, { headers: { authorization: `Bearer ${view}` } })).json();
  const url = detail.segments[0].url;
  const pre = await fetch(url, { method: 'OPTIONS', headers: { origin: base, 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' } });
  assert.equal(pre.headers.get('access-control-allow-origin'), '*', 'preflight allows the page');
  assert.match(pre.headers.get('access-control-allow-headers') || '', /range/i);
  const ranged = await fetch(url, { headers: { origin: base, range: 'bytes=0-9' } });
  assert.equal(ranged.status, 206);
  assert.match(ranged.headers.get('access-control-expose-headers') || '', /content-range/i);

  // The page's own answer: content type, CSP, cache headers.
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.match(res.headers.get('content-security-policy'), /script-src 'self'/);
  const html = await res.text();
  const js = html.match(/\/assets\/app\.js\?v=[0-9a-f]+/)?.[0];
  assert.ok(js, 'the page links a versioned app.js');
  const asset = await fetch(base + js);
  assert.match(asset.headers.get('content-type'), /^text\/javascript/);
  assert.match(asset.headers.get('cache-control'), /immutable/);

  step('launching chromium');
  const context = await chromium.launchPersistentContext(profileDir, {
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
    timezoneId: 'Europe/Berlin',
    locale: 'en-GB',
    viewport: { width: 1280, height: 860 },
  });
  browser = context;
  const problems = [];
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Uncaught/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });

  step('wrong tokens');
  await page.goto(`${base}/?poll=1`);
  await page.locator('#signin').waitFor();
  await shot(page, '01-sign-in');
  const submit = async (text) => {
    await page.fill('#token', text);
    await page.click('#signin button[type=submit]');
  };
  await submit('hello');
  await expectText(page.locator('#signin-error'), /not a daybook token/, 'garbage token');
  await submit(dev);
  await expectText(page.locator('#signin-error'), /camera.s token/, 'device token');
  const forged = view.slice(0, -6) + (view.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA');
  await submit(forged);
  await expectText(page.locator('#signin-error'), /did not accept this token/, 'forged token');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('daybook.token')), null, 'a refused token is not kept');
  await shot(page, '02-wrong-token');

  step('sign in and the calendar');
  await submit(view);
  await page.locator('#viewer').waitFor();
  const cell = (date) => page.locator(`#calendar button[data-date="${date}"]`);
  await expectText(cell(s.busyDate).locator('.n'), /^25$/, 'busy day count');
  await expectText(cell(s.todayDate).locator('.n'), /^2$/, 'today count');
  await expectText(cell(s.quietDate).locator('.n'), /^1$/, 'quiet day count');
  assert.equal(await page.locator('#calendar button.day').count(), 30, 'thirty days');
  step('the storage used');
  const usage = await (await fetch(`${base}/v1/devices/${CAM}/usage`, { headers: { authorization: `Bearer ${view}` } })).json();
  assert.equal(usage.bytes, s.stored, `every segment reported, once: ${JSON.stringify(usage)}`);
  assert.equal(await page.locator('#cal-usage').textContent(), `${fmtBytes(s.stored)} of video stored`, 'the page shows it');
  await expectText(page.locator('#zone'), /Europe\/Berlin/, 'zone shown');
  assert.equal(await cell(s.todayDate).getAttribute('aria-selected'), 'true', 'today opens first when it has events');
  await waitRows(page, 2);
  await shot(page, '03-calendar-today');

  step('today refreshes while open');
  const late = await call(base, dev, 'POST', `/v1/devices/${CAM}/events`, { type: 'motion', triggered_at: iso(Date.now()) });
  await expectText(cell(s.todayDate).locator('.n'), /^3$/, 'today count after a new event');
  await expectText(page.locator('#refresh-day'), /1 new event/, 'new events offer');
  await page.click('#refresh-day');
  await waitRows(page, 3);
  assert.equal((await rowIds(page))[2], late.event_id, 'the new event is listed last');

  step('keyboard: arrow to yesterday, Enter opens it; three pages of 25 events');
  await cell(s.todayDate).focus();
  await page.keyboard.press('ArrowLeft');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.date), s.busyDate);
  await page.keyboard.press('Enter');
  await waitRows(page, PAGE_SIZE);
  await expectText(page.locator('#day-sub'), /25 events/, 'day header');
  const seen = [];
  seen.push(...(await rowIds(page)));
  await expectText(page.locator('#page-label'), /Page 1 of 3/, 'page label');
  await page.click('#next-page');
  await waitRows(page, PAGE_SIZE, seen[0]);
  seen.push(...(await rowIds(page)));
  await page.click('#next-page');
  await waitRows(page, 5, seen[PAGE_SIZE]);
  seen.push(...(await rowIds(page)));
  assert.deepEqual(seen, s.busy.map((e) => e.id), 'the 25 events in trigger order, each once');
  assert.ok(await page.locator('#next-page').isDisabled(), 'no page after the last');
  await expectText(page.locator('#events .event .status'), /recording/, 'open event status');
  const placeholder = await page.locator('#events .thumb.none').evaluate((n) => getComputedStyle(n, '::after').content);
  assert.equal(placeholder, '"no snapshot"', 'missing snapshot placeholder');
  await page.waitForFunction(() => [...document.querySelectorAll('#events img.thumb')].every((i) => i.complete && i.naturalWidth > 0), null, { timeout: 10_000 });
  await shot(page, '04-day-page-3');
  await page.click('#prev-page');
  await waitRows(page, PAGE_SIZE, seen[20]);
  assert.equal((await rowIds(page))[0], seen[10], 'previous page');
  await page.click('#prev-page');
  await waitRows(page, PAGE_SIZE, seen[10]);
  await shot(page, '05-day-page-1');

  step('previous/next day skip days without events');
  await page.click('#prev-day');
  await waitRows(page, 1);
  assert.equal(await cell(s.quietDate).getAttribute('aria-selected'), 'true', 'previous day with events');
  await page.click('#next-day');
  await waitRows(page, PAGE_SIZE);
  assert.equal(await cell(s.busyDate).getAttribute('aria-selected'), 'true', 'next day with events');
  // An empty day says so.
  const emptyDate = new Date(Date.parse(s.busyDate) - 86_400_000).toISOString().slice(0, 10);
  await cell(emptyDate).click();
  await expectText(page.locator('#events .empty'), /No events on this day/, 'empty day');
  await shot(page, '06-empty-day');
  await cell(s.busyDate).click();
  await waitRows(page, PAGE_SIZE);

  step('type filter');
  await page.selectOption('#type-filter', 'person');
  await waitRows(page, 5, seen[0]);
  assert.deepEqual(await rowIds(page), s.busy.filter((e) => e.type === 'person').map((e) => e.id));
  await page.selectOption('#type-filter', '');
  await waitRows(page, PAGE_SIZE, s.busy[4].id);

  step('play a clip that spans two segments');
  await page.locator(`#events .event[data-event-id="${s.busy[2].id}"]`).click();
  await page.locator('#player[open]').waitFor();
  await expectPlaying(page, 'first segment');
  assert.match(await page.evaluate(() => document.querySelector('#video').currentSrc), new RegExp(s.segments.first));
  const clip = await page.evaluate(() => Number(document.querySelector('#scrub').max));
  assert.ok(clip > 3.5 && clip < 4.5, `the clip is half of each 4 s segment: ${clip}`);
  await page.selectOption('#speed', '2');
  assert.equal(await page.evaluate(() => document.querySelector('#video').playbackRate), 2);
  await shot(page, '07-playing');
  // Scrub near the end of the first part: playback carries on into the second segment.
  await page.evaluate(() => {
    const scrub = document.querySelector('#scrub');
    scrub.value = '1.7';
    scrub.dispatchEvent(new Event('input'));
  });
  await page.waitForFunction((id) => document.querySelector('#video').currentSrc.includes(id), s.segments.second, { timeout: 10_000 });
  await expectPlaying(page, 'second segment');
  assert.equal(await page.evaluate(() => document.querySelector('#video').playbackRate), 2, 'speed kept across segments');
  await page.waitForFunction(() => /Replay/.test(document.querySelector('#play').textContent), null, { timeout: 10_000 });
  await shot(page, '08-clip-ended');
  await page.keyboard.press('Escape');
  await page.locator('#player[open]').waitFor({ state: 'detached' });

  step('a segment that was never uploaded, an event without video');
  await page.locator(`#events .event[data-event-id="${s.busy[3].id}"]`).click();
  await expectText(page.locator('#player-msg'), /not in storage yet/, 'missing segment');
  await shot(page, '09-segment-missing');
  await page.click('#player-close');
  await page.locator(`#events .event[data-event-id="${s.busy[4].id}"]`).click();
  await expectText(page.locator('#player-msg'), /No video has been reported/, 'no segments');
  await page.keyboard.press('Escape');

  step('night digest');
  await page.click('#digest-btn');
  if (s.digest) await expectPlaying(page, 'digest');
  else await expectText(page.locator('#player-msg'), /No digest/, 'no digest');
  await page.keyboard.press('Escape');

  step('a read-only viewer is not offered deletion');
  await axeCheck(page, 'the day page');
  assert.ok(await page.locator('#camera-manage').isHidden(), 'no erase button without the scope manage');
  assert.ok(await page.locator('#camera-export').isHidden(), 'no exports without the scope manage');
  await page.locator(`#events .event[data-event-id="${s.busy[5].id}"]`).click();
  await page.locator('#player[open]').waitFor();
  assert.ok(await page.locator('#player-manage').isHidden(), 'no delete button without the scope manage');
  await page.keyboard.press('Escape');

  step('a managing viewer deletes an event, after confirming');
  const manager = token('viewer', CAM, '--manage');
  const victim = s.busy[5];
  const before = await (await fetch(`${base}/v1/events/${encodeURIComponent(victim.id)}`, { headers: { authorization: `Bearer ${manager}` } })).json();
  assert.equal((await fetch(before.snapshot_url)).status, 200, 'the snapshot is stored');
  await page.click('#signout');
  await submit(manager);
  await page.locator('#viewer').waitFor();
  await cell(s.busyDate).click();
  await waitRows(page, PAGE_SIZE);
  await page.locator(`#events .event[data-event-id="${victim.id}"]`).click();
  await page.locator('#player[open]').waitFor();
  await page.locator('#delete-event').waitFor();
  await axeCheck(page, 'the player with the delete button');

  step('a managing viewer keeps an event past retention, and lets it go');
  assert.equal(await page.getAttribute('#keep-event', 'aria-pressed'), 'false', 'not kept yet');
  await page.click('#keep-event');
  await expectText(page.locator('#keep-status'), /Kept: it stays/, 'keep accepted');
  assert.equal(await page.getAttribute('#keep-event', 'aria-pressed'), 'true', 'the toggle says kept');
  await axeCheck(page, 'the player with an event kept');
  await shot(page, '12-kept');
  const keptRow = page.locator(`#events .event[data-event-id="${victim.id}"] .kept`);
  assert.equal(await keptRow.count(), 1, 'its row is marked kept');
  const keptDeadline = Date.now() + 15_000;
  for (;;) {
    const kept = await (await fetch(`${base}/v1/devices/${CAM}/kept`, { headers: { authorization: `Bearer ${manager}` } })).json();
    if (kept.events.some((e) => e.event_id === victim.id)) break;
    assert.ok(Date.now() < keptDeadline, 'the keep is projected: the kept list names it');
    await sleep(200);
  }
  await page.click('#keep-event');
  await expectText(page.locator('#keep-status'), /No longer kept/, 'un-keep accepted');
  assert.equal(await page.getAttribute('#keep-event', 'aria-pressed'), 'false', 'the toggle says not kept');
  assert.equal(await keptRow.count(), 0, 'its row is no longer marked');
  await page.click('#delete-event');
  await page.locator('#delete-confirm').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'delete-no', 'the safe answer has the focus');
  await axeCheck(page, 'the deletion\u2019s confirmation');
  await shot(page, '12-delete-confirm');
  await page.click('#delete-no');
  assert.ok(await page.locator('#delete-confirm').isHidden(), 'keeping it folds the question away');
  assert.ok(await page.locator('#player[open]').isVisible(), 'and the event stays open');
  await page.click('#delete-event');
  await page.click('#delete-yes');
  await page.locator('#player[open]').waitFor({ state: 'detached' });
  await expectText(page.locator('#notice-text'), /Deleted the motion event/, 'deletion notice');
  assert.equal(await page.locator(`#events .event[data-event-id="${victim.id}"]`).count(), 0, 'its row is gone');
  await expectText(cell(s.busyDate).locator('.n'), /^24$/, 'the day counts one event less');
  await expectText(page.locator('#day-sub'), /24 events/, 'day header after the deletion');
  await waitRows(page, PAGE_SIZE);
  assert.ok(!(await rowIds(page)).includes(victim.id), 'the reloaded day does not list it');
  const gone = await fetch(`${base}/v1/events/${encodeURIComponent(victim.id)}`, { headers: { authorization: `Bearer ${manager}` } });
  assert.equal(gone.status, 404, 'the event is gone from the API');
  const deadline = Date.now() + 15_000;
  while ((await fetch(before.snapshot_url)).status !== 404) {
    assert.ok(Date.now() < deadline, 'the snapshot is deleted from the object store');
    await sleep(200);
  }
  await shot(page, '13-deleted');
  await page.click('#notice-close');

  step('a managing viewer exports a day and downloads the archive');
  await page.locator('#camera-export').waitFor();
  await expectText(page.locator('#export-empty'), /No exports yet/, 'no exports at first');
  await page.fill('#export-from', s.busyDate);
  await page.fill('#export-to', s.busyDate);
  await page.click('#export-go');
  await expectText(page.locator('#export-status'), /Export asked for/, 'export accepted');
  const link = page.locator('#export-list .export.ready a.export-download');
  await link.waitFor({ timeout: 60_000 });
  await expectText(page.locator('#export-list .export.ready .export-state'), /Ready · 24 events/, 'the export lists the day\u2019s events');
  await axeCheck(page, 'the exports with one ready');
  await shot(page, '17-export-ready');
  const archive = new Uint8Array(await (await fetch(await link.getAttribute('href'))).arrayBuffer());
  assert.equal(new TextDecoder().decode(archive.slice(257, 262)), 'ustar', 'the download is a tar archive');
  assert.equal(new TextDecoder().decode(archive.slice(0, 10)), 'index.json', 'its index first');

  step('phone width');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, '10-phone');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at phone width (${overflow}px)`);
  await page.locator(`#events .event[data-event-id="${s.busy[0].id}"]`).click();
  await expectPlaying(page, 'phone playback');
  await shot(page, '11-phone-playing');
  await page.keyboard.press('Escape');
  await page.setViewportSize({ width: 1280, height: 860 });

  step('a managing viewer erases the camera, after typing its name');
  const snapshot = (await (await fetch(`${base}/v1/events/${encodeURIComponent(s.busy[0].id)}`, { headers: { authorization: `Bearer ${manager}` } })).json()).snapshot_url;
  assert.equal((await fetch(snapshot)).status, 200, 'a snapshot is stored');
  await page.locator('#camera-manage').waitFor();
  await axeCheck(page, 'the day page with the erase button');
  await page.click('#erase-camera');
  await page.locator('#erase-confirm').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'erase-name', 'the name field has the focus');
  assert.ok(await page.locator('#erase-yes').isDisabled(), 'nothing is erased before the name is typed');
  await page.fill('#erase-name', 'not-this-camera');
  assert.ok(await page.locator('#erase-yes').isDisabled(), 'nor with another name');
  await axeCheck(page, 'the erasure\u2019s confirmation');
  await shot(page, '15-erase-confirm');
  await page.click('#erase-no');
  assert.ok(await page.locator('#erase-confirm').isHidden(), 'keeping it folds the question away');
  await page.click('#erase-camera');
  await page.fill('#erase-name', CAM);
  await page.click('#erase-yes');
  await expectText(page.locator('#notice-text'), new RegExp(`Erasing camera ${CAM}`), 'erasure notice');
  await expectText(cell(s.busyDate).locator('.n'), /^0$/, 'the busy day counts nothing once erased');
  assert.equal(await page.locator('#events .event').count(), 0, 'the day lists nothing once erased');
  const erasedCal = await (await fetch(`${base}/v1/devices/${CAM}/calendar?days=30`, { headers: { authorization: `Bearer ${manager}` } })).json();
  assert.ok(erasedCal.days.every((d) => d.events === 0), 'the API counts nothing of the camera');
  const until = Date.now() + 15_000;
  while ((await fetch(snapshot)).status !== 404) {
    assert.ok(Date.now() < until, 'the camera\u2019s objects are deleted from the object store');
    await sleep(200);
  }
  await shot(page, '16-erased');
  await page.click('#notice-close');

  step('a camera on a 60-day plan: its span, and its earlier months page by page');
  const PLAN_CAM = 'cam-plan';
  const planDev = token('device', PLAN_CAM, '--retention-days', '60');
  const planView = token('viewer', PLAN_CAM);
  const fortyDaysAgo = Date.now() - 40 * 86_400_000;
  const planSnapshot = readFileSync(join(fixtures, 'snapshot.jpg'));
  // The recent one without a snapshot: axe checks its row's name against what it shows.
  for (const at of [fortyDaysAgo, Date.now() - 60_000]) {
    const r = await call(base, planDev, 'POST', `/v1/devices/${PLAN_CAM}/events`, { type: 'motion', triggered_at: iso(at) });
    if (at === fortyDaysAgo) await put(r.snapshot_upload, planSnapshot);
  }
  const planDeadline = Date.now() + 30_000;
  for (;;) {
    const cal = await (await fetch(`${base}/v1/devices/${PLAN_CAM}/calendar?days=60`, { headers: { authorization: `Bearer ${planView}` } })).json();
    if (cal.plan_days === 60 && cal.days?.reduce((a, d) => a + d.events, 0) === 2) break;
    assert.ok(Date.now() < planDeadline, `the 60-day camera's events are projected: ${JSON.stringify(cal)}`);
    await sleep(200);
  }
  const planPage = await context.newPage();
  planPage.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await planPage.goto(`${base}/?poll=1`);
  await planPage.fill('#token', planView);
  await planPage.click('#signin button[type=submit]');
  await planPage.locator('#viewer').waitFor();
  await expectText(planPage.locator('#cal-plan'), /^60 days of history$/, 'the plan\u2019s span');
  await expectText(planPage.locator('#cal-title'), /^Last 30 days$/, 'the recent days first');
  const oldMonth = utcDay(fortyDaysAgo).slice(0, 7);
  const monthButtons = planPage.locator('#cal-months button');
  assert.ok((await monthButtons.count()) >= 3, 'a button for the recent days and one per month of the plan');
  assert.equal(await planPage.locator(`#calendar button[data-date="${utcDay(fortyDaysAgo)}"]`).count(), 0, '40 days ago is not in the last 30');
  await axeCheck(planPage, 'a camera on a 60-day plan');
  const [y, m] = oldMonth.split('-').map(Number);
  const oldMonthName = new Date(Date.UTC(y, m - 1, 1)).toLocaleDateString('en-GB', { month: 'long', year: 'numeric', timeZone: 'UTC' });
  await planPage.locator('#cal-months button', { hasText: oldMonthName }).click();
  await expectText(planPage.locator('#cal-title'), new RegExp(`^${oldMonthName}$`), 'the month shown');
  await expectText(planPage.locator(`#calendar button[data-date="${utcDay(fortyDaysAgo)}"] .n`), /^1$/, 'the event 40 days back');
  assert.equal(await planPage.locator('#cal-months button', { hasText: oldMonthName }).getAttribute('aria-pressed'), 'true');
  assert.ok((await planPage.locator('#calendar button.day').count()) <= 31, 'one month at a time');
  await waitRows(planPage, 1);
  await axeCheck(planPage, 'an earlier month of the plan');
  await shot(planPage, '17-plan-month');
  await planPage.close();

  step('a session the server refuses goes back to sign-in with a reason');
  await page.evaluate((t) => sessionStorage.setItem('daybook.token', t), forged);
  await page.reload();
  await expectText(page.locator('#signin-error'), /did not accept this token/, 'rejected session');
  await shot(page, '14-session-refused');

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
  console.log(JSON.stringify({ ok: true, artifacts }));
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(e);
  await page?.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  await browser?.close().catch(() => {});
  if (server && server.exitCode == null) {
    server.kill('SIGTERM');
    await new Promise((r) => {
      const t = setTimeout(() => (server.kill('SIGKILL'), r()), 10_000);
      server.once('exit', () => (clearTimeout(t), r()));
    });
  }
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(profileDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
