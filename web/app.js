// daybook's viewer page: sign in with a viewer token, pick a camera, see its last 30 days as
// a heat map, page through a day's events and play an event's clip. Plain JavaScript against
// the viewer API on this origin (README.md, "Viewer API"); no build step, no dependencies.
//
// Field access is defensive on purpose: answers may gain fields (a camera's `utc_offset`, for
// instance) and the page uses them when present and works without them.

const TOKEN_KEY = 'daybook.token';
const PAGE_SIZE = 10;
// `?poll=SECONDS` shortens the refresh (the browser test uses it); 30 s otherwise.
const POLL_MS = Math.max(1, Number(new URLSearchParams(location.search).get('poll')) || 30) * 1000;
const SPEEDS = [0.5, 1, 1.5, 2, 4];

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
};

const S = {
  token: null,
  claims: null,
  device: null,
  days: [], // calendar answer, newest first
  day: null,
  type: '',
  cursors: [null], // cursors[i] fetches page i
  page: 0,
  next: null,
  shownCount: null, // the selected day's count when its list was loaded
  types: new Map(), // device -> Set of event types seen
  cameraOffset: null,
  gen: 0, // bumps on every list load so late answers of older loads are dropped
  pollTimer: 0,
};

/* ---------- time and formatting ---------- */

const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

function offsetText(minutes) {
  const sign = minutes < 0 ? '-' : '+';
  const m = Math.abs(Math.round(minutes));
  return `UTC${sign}${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

// A camera's offset as the API may send it: "+02:00", seconds or minutes east of UTC.
function cameraOffsetText(v) {
  if (v == null || v === '') return null;
  if (typeof v === 'string') return /^utc/i.test(v) ? v.toUpperCase() : `UTC${v}`;
  if (typeof v === 'number' && Number.isFinite(v)) return offsetText(Math.abs(v) > 24 * 60 ? v / 60 : v);
  return null;
}

const toDate = (v) => (v == null ? null : new Date(typeof v === 'number' ? v : Date.parse(v)));
const dayUtc = (date) => {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d));
};
const fmtDayLong = (date) =>
  new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' })
    .format(dayUtc(date));
const fmtDayShort = (date) =>
  new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' }).format(dayUtc(date));
const fmtTime = (d) => d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const localDate = (d) =>
  `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

function fmtDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return null;
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function fmtClock(sec) {
  const s = Math.max(0, Math.floor((sec || 0) + 0.05));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
    : `${m}:${String(s % 60).padStart(2, '0')}`;
}

const STATUS = { open: 'recording', complete: 'complete', aborted: 'aborted' };
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/* ---------- notices and the API client ---------- */

let noticeRetry = null;
function showNotice(text, { bad = false, retry = null } = {}) {
  $('notice-text').textContent = text;
  $('notice').classList.toggle('bad', bad);
  $('notice-retry').hidden = !retry;
  noticeRetry = retry;
  $('notice').hidden = false;
}
function hideNotice() {
  $('notice').hidden = true;
  noticeRetry = null;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `error ${status}`);
    this.status = status;
    this.code = code;
  }
}
// Thrown after the page has signed out; callers just stop.
class SignedOut extends Error {}

// One wait shared by every request that hit "busy", so a busy server sees one retry, not many.
let busyWait = null;
function waitBusy(seconds, text) {
  if (busyWait) return busyWait;
  busyWait = new Promise((resolve) => {
    let left = Math.max(1, Math.min(120, Math.round(seconds)));
    const done = () => {
      clearInterval(timer);
      hideNotice();
      busyWait = null;
      resolve();
    };
    const render = () => showNotice(`${text} Trying again in ${left} s…`, { retry: done });
    const timer = setInterval(() => (--left <= 0 ? done() : render()), 1000);
    render();
  });
  return busyWait;
}

function retryAfterSeconds(res, fallback) {
  const h = res.headers.get('retry-after');
  if (!h) return fallback;
  const n = Number(h);
  if (Number.isFinite(n)) return n;
  const at = Date.parse(h);
  return Number.isFinite(at) ? (at - Date.now()) / 1000 : fallback;
}

// GETs `path` from the viewer API. 401 signs out (unless `authErrors` asks for the error);
// 429/503 and network failures wait and retry (unless `quiet`, for background refreshes).
async function api(path, { quiet = false, authErrors = false } = {}) {
  let backoff = 2;
  for (;;) {
    let res;
    try {
      res = await fetch(path, { headers: { authorization: `Bearer ${S.token}`, accept: 'application/json' }, cache: 'no-store' });
    } catch {
      if (quiet) throw new ApiError(0, 'network', 'offline');
      await waitBusy(backoff, 'daybook cannot be reached (network or server down).');
      backoff = Math.min(backoff * 2, 30);
      continue;
    }
    if (res.ok) return res.json();
    let body = null;
    try {
      body = await res.json();
    } catch {
      /* not JSON: keep the status */
    }
    const code = body?.error?.code;
    const message = body?.error?.message;
    if ((res.status === 429 || res.status === 503) && !quiet) {
      const why = res.status === 429 ? 'Too many requests from this page.' : 'The server is busy right now.';
      await waitBusy(retryAfterSeconds(res, backoff), why);
      backoff = Math.min(backoff * 2, 30);
      continue;
    }
    if (res.status === 401 && !authErrors) {
      signOut(unauthorizedText(message));
      throw new SignedOut();
    }
    throw new ApiError(res.status, code, message);
  }
}

function unauthorizedText(message) {
  return /expired/i.test(message || '')
    ? 'Your sign-in has expired. Paste a new viewer token to continue.'
    : 'daybook did not accept this token (it may be altered or from another daybook). Paste a valid viewer token.';
}

// What a person should read for a failed request.
function explain(e, what) {
  if (e instanceof ApiError) {
    if (e.status === 403) return `This token may not see camera ${S.device}. Ask for a token that includes it.`;
    if (e.status === 404) return `${what} is no longer stored (daybook keeps 30 days).`;
    if (e.status === 0) return 'daybook cannot be reached. Check the connection and try again.';
    if (e.status >= 500) return `daybook could not load ${what.toLowerCase()} (server error ${e.status}). Try again shortly.`;
    return `${what} could not be loaded: ${e.message}.`;
  }
  return `${what} could not be loaded.`;
}

/* ---------- sign in ---------- */

function decodeToken(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '='));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

// Checks what the page can check without the secret; the server has the last word.
function tokenProblem(claims) {
  if (!claims || typeof claims !== 'object') return 'That is not a daybook token. A token is three parts separated by dots, starting with "eyJ".';
  if (claims.role === 'device') return 'That is a camera\u2019s token. Sign in with a viewer token (daybook token viewer \u2026).';
  if (claims.role && claims.role !== 'viewer') return 'That token is not a viewer token.';
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now())
    return `This token expired on ${new Date(claims.exp * 1000).toLocaleString()}. Ask for a new one.`;
  if (!Array.isArray(claims.devices) || claims.devices.length === 0) return 'This token does not name any camera.';
  return null;
}

function showSignIn(message) {
  $('viewer').hidden = true;
  $('device-area').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  $('token').value = '';
  $('token').focus();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  S.token = null;
  S.claims = null;
  clearInterval(S.pollTimer);
  if ($('player').open) $('player').close();
  hideNotice();
  showSignIn(message);
}

async function onSignIn(ev) {
  ev.preventDefault();
  const token = $('token').value.trim();
  const err = $('signin-error');
  if (!token) {
    err.textContent = 'Paste your viewer token first.';
    return;
  }
  const claims = decodeToken(token);
  const problem = tokenProblem(claims);
  if (problem) {
    err.textContent = problem;
    return;
  }
  err.textContent = 'Checking…';
  S.token = token;
  try {
    await api(`/v1/devices/${encodeURIComponent(claims.devices[0])}/calendar?days=1`, { authErrors: true });
  } catch (e) {
    S.token = null;
    if (e instanceof ApiError && e.status === 401) err.textContent = unauthorizedText(e.message);
    else if (e instanceof ApiError && e.status === 403) err.textContent = `daybook refused camera ${claims.devices[0]} for this token.`;
    else err.textContent = 'daybook could not check the token right now. Try again.';
    return;
  }
  err.textContent = '';
  sessionStorage.setItem(TOKEN_KEY, token);
  start(token, claims);
}

/* ---------- page state in the address (reload keeps the view) ---------- */

function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { cam: p.get('cam'), day: p.get('day'), type: p.get('type') || '' };
}
function writeHash() {
  const p = new URLSearchParams();
  if (S.device) p.set('cam', S.device);
  if (S.day) p.set('day', S.day);
  if (S.type) p.set('type', S.type);
  history.replaceState(null, '', `#${p}`);
}

/* ---------- camera and calendar ---------- */

function start(token, claims) {
  S.token = token;
  S.claims = claims;
  $('signin').hidden = true;
  $('viewer').hidden = false;
  $('signout').hidden = false;
  const select = $('device');
  select.replaceChildren(...claims.devices.map((d) => el('option', { value: d, text: d })));
  $('device-area').hidden = false;
  const want = readHash();
  S.device = claims.devices.includes(want.cam) ? want.cam : claims.devices[0];
  S.type = want.type;
  select.value = S.device;
  loadDevice(want.day);
  clearInterval(S.pollTimer);
  S.pollTimer = setInterval(poll, POLL_MS);
}

async function loadDevice(wantDay) {
  S.days = [];
  S.day = null;
  S.cameraOffset = null;
  renderTypes();
  $('calendar').replaceChildren(...Array.from({ length: 30 }, () => el('div', { class: 'day' })));
  $('cal-total').textContent = '';
  $('events').replaceChildren(el('div', { class: 'skeleton' }), el('div', { class: 'skeleton' }));
  const device = S.device;
  let cal;
  try {
    cal = await api(`/v1/devices/${encodeURIComponent(device)}/calendar?days=30`);
  } catch (e) {
    if (e instanceof SignedOut || device !== S.device) return;
    $('calendar').replaceChildren();
    $('events').replaceChildren(el('p', { class: 'empty', text: explain(e, 'The calendar') }));
    setPager(false, false);
    return;
  }
  if (device !== S.device) return;
  applyCalendar(cal);
  const counts = S.days;
  const pick =
    counts.find((d) => d.date === wantDay)?.date ??
    (counts[0]?.events > 0 ? counts[0].date : counts.find((d) => d.events > 0)?.date ?? counts[0]?.date);
  selectDay(pick, { focus: false });
}

function applyCalendar(cal) {
  S.days = (Array.isArray(cal?.days) ? cal.days : []).map((d) => ({ date: String(d.date), events: Number(d.events) || 0 }));
  S.cameraOffset = cameraOffsetText(cal?.utc_offset) ?? S.cameraOffset;
  renderZone();
  renderCalendar();
}

function renderZone() {
  const local = offsetText(-new Date().getTimezoneOffset());
  let text = `Times in your zone: ${localZone} (${local})`;
  if (S.cameraOffset) text += ` · camera days in ${S.cameraOffset}`;
  $('zone').textContent = text;
}

const countOf = (date) => S.days.find((d) => d.date === date)?.events ?? 0;
const isoWeekday = (date) => (dayUtc(date).getUTCDay() + 6) % 7; // Monday 0

function renderCalendar() {
  const days = [...S.days].reverse(); // oldest first
  const grid = $('calendar');
  const max = Math.max(0, ...days.map((d) => d.events));
  const total = days.reduce((a, d) => a + d.events, 0);
  $('cal-total').textContent = `${plural(total, 'event')} on ${S.device}`;
  const monday = new Date(Date.UTC(2024, 0, 1));
  $('weekdays').replaceChildren(
    ...Array.from({ length: 7 }, (_, i) =>
      el('span', { text: new Intl.DateTimeFormat(undefined, { weekday: 'narrow', timeZone: 'UTC' }).format(new Date(monday.getTime() + i * 864e5)) })),
  );
  const cells = [];
  if (days.length) for (let i = 0; i < isoWeekday(days[0].date); i++) cells.push(el('span', { class: 'day pad', role: 'gridcell' }));
  const today = S.days[0]?.date;
  for (const d of days) {
    // A square-root scale keeps one busy day from washing out the rest.
    const level = d.events === 0 || max === 0 ? 0 : Math.max(1, Math.ceil(4 * Math.sqrt(d.events / max)));
    const label = `${fmtDayLong(d.date)}${d.date === today ? ' (today)' : ''}: ${plural(d.events, 'event')}`;
    cells.push(
      el('button', {
        type: 'button', role: 'gridcell', class: `day h${level}${d.date === today ? ' today' : ''}`,
        'data-date': d.date, 'aria-label': label, title: label, 'aria-selected': String(d.date === S.day),
        tabindex: d.date === S.day ? '0' : '-1', onclick: () => selectDay(d.date),
      }, el('span', { class: 'd', text: String(dayUtc(d.date).getUTCDate()) }), el('span', { class: 'n', text: String(d.events) })),
    );
  }
  // Rows of seven for the grid role; `display: contents` keeps one CSS grid.
  const rows = [];
  for (let i = 0; i < cells.length; i += 7) rows.push(el('div', { role: 'row', class: 'week' }, ...cells.slice(i, i + 7)));
  // A refresh while a day has focus keeps the focus on that day.
  const focused = grid.contains(document.activeElement) ? document.activeElement.dataset.date : null;
  grid.replaceChildren(...rows);
  if (!grid.querySelector('[tabindex="0"]')) grid.querySelector('button.day')?.setAttribute('tabindex', '0');
  if (focused) grid.querySelector(`[data-date="${focused}"]`)?.focus();
}

// Arrow keys move between days (a week up or down), Home/End jump to the ends; Enter or Space
// opens the focused day (they press the button).
function onCalendarKey(ev) {
  const cell = ev.target.closest('button.day');
  if (!cell) return;
  const buttons = [...$('calendar').querySelectorAll('button.day')];
  const i = buttons.indexOf(cell);
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7 }[ev.key];
  let j = null;
  if (step != null) j = Math.min(buttons.length - 1, Math.max(0, i + step));
  else if (ev.key === 'Home') j = 0;
  else if (ev.key === 'End') j = buttons.length - 1;
  if (j == null) return;
  ev.preventDefault();
  buttons.forEach((b, k) => b.setAttribute('tabindex', k === j ? '0' : '-1'));
  buttons[j].focus();
}

/* ---------- a day's events ---------- */

function neighbourDays() {
  // S.days is newest first: older days have larger indices.
  const i = S.days.findIndex((d) => d.date === S.day);
  if (i < 0) return { prev: null, next: null };
  const prev = S.days.slice(i + 1).find((d) => d.events > 0)?.date ?? null;
  const next = [...S.days.slice(0, i)].reverse().find((d) => d.events > 0)?.date ?? null;
  return { prev, next };
}

function selectDay(date, { focus = true } = {}) {
  if (!date) return;
  S.day = date;
  S.cursors = [null];
  S.page = 0;
  writeHash();
  for (const b of $('calendar').querySelectorAll('button.day')) {
    const on = b.dataset.date === date;
    b.setAttribute('aria-selected', String(on));
    b.setAttribute('tabindex', on ? '0' : '-1');
  }
  renderDayNav();
  $('day-title').textContent = fmtDayLong(date) + (date === S.days[0]?.date ? ' (today)' : '');
  loadPage();
  if (focus) $('day-title').focus();
}

function renderDayNav() {
  const { prev, next } = neighbourDays();
  $('prev-day').disabled = !prev;
  $('next-day').disabled = !next;
  $('prev-day').setAttribute('aria-label', prev ? `Previous day with events: ${fmtDayShort(prev)}` : 'No earlier day with events');
  $('next-day').setAttribute('aria-label', next ? `Next day with events: ${fmtDayShort(next)}` : 'No later day with events');
  $('prev-day').title = $('prev-day').getAttribute('aria-label');
  $('next-day').title = $('next-day').getAttribute('aria-label');
}

function renderDaySub() {
  const n = countOf(S.day);
  const pages = Math.max(1, Math.ceil(n / PAGE_SIZE));
  const parts = [plural(n, 'event')];
  if (S.type) parts.push(`showing ${S.type} only`);
  if (S.cameraOffset) parts.push(`camera day in ${S.cameraOffset}`);
  $('day-sub').textContent = parts.join(' · ');
  $('page-label').textContent = S.type || S.next || S.page > 0 ? `Page ${S.page + 1}${S.type ? '' : ` of ${pages}`}` : '';
}

function setPager(prev, next) {
  $('prev-page').disabled = !prev;
  $('next-page').disabled = !next;
}

async function loadPage() {
  const gen = ++S.gen;
  const { device, day, type } = S;
  $('refresh-day').hidden = true;
  $('events').setAttribute('aria-busy', 'true');
  if (!$('events').querySelector('.event')) $('events').replaceChildren(el('div', { class: 'skeleton' }), el('div', { class: 'skeleton' }));
  setPager(false, false);
  const q = new URLSearchParams({ date: day, limit: String(PAGE_SIZE) });
  if (type) q.set('type', type);
  const cursor = S.cursors[S.page];
  if (cursor) q.set('cursor', cursor);
  let page;
  try {
    page = await api(`/v1/devices/${encodeURIComponent(device)}/events?${q}`);
  } catch (e) {
    if (e instanceof SignedOut || gen !== S.gen) return;
    $('events').removeAttribute('aria-busy');
    $('events').replaceChildren(el('p', { class: 'empty' }, explain(e, 'This day\u2019s events'), ' ',
      el('button', { type: 'button', class: 'ghost', text: 'Try again', onclick: loadPage })));
    setPager(S.page > 0, false);
    return;
  }
  if (gen !== S.gen) return;
  S.cameraOffset = cameraOffsetText(page?.utc_offset) ?? S.cameraOffset;
  S.shownCount = countOf(day);
  const events = Array.isArray(page?.events) ? page.events : [];
  S.next = page?.next_cursor || null;
  S.cursors[S.page + 1] = S.next;
  const seen = S.types.get(device) ?? new Set();
  for (const e of events) if (e.type) seen.add(String(e.type));
  S.types.set(device, seen);
  renderTypes();
  $('events').removeAttribute('aria-busy');
  $('events').replaceChildren(...(events.length ? events.map(eventRow) : [emptyDay()]));
  setPager(S.page > 0, Boolean(S.next));
  renderDaySub();
  renderZone();
}

function emptyDay() {
  if (S.type)
    return el('p', { class: 'empty' }, `No ${S.type} events on this day. `,
      el('button', { type: 'button', class: 'ghost', text: 'Show all types', onclick: () => setType('') }));
  if (S.page > 0) return el('p', { class: 'empty', text: 'No more events on this day.' });
  const latest = S.days.find((d) => d.events > 0);
  if (!latest)
    return el('p', { class: 'empty', text: `No events from ${S.device} in the last 30 days. New events show up here within seconds of the camera reporting them.` });
  return el('p', { class: 'empty' }, 'No events on this day. Shaded days in the calendar have events. ',
    el('button', { type: 'button', class: 'ghost', text: `Go to ${fmtDayShort(latest.date)}`, onclick: () => selectDay(latest.date) }));
}

function eventRow(e) {
  const at = toDate(e.triggered_at);
  const valid = at && !Number.isNaN(at.getTime());
  let time = valid ? fmtTime(at) : '—';
  // A day is the camera's; near midnight the viewer's own date can differ, so say which.
  if (valid && localDate(at) !== S.day) time += ` (${at.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })})`;
  const status = STATUS[e.status] ?? String(e.status ?? '');
  const dur = fmtDuration(e.duration_ms) ?? (e.status === 'open' ? 'ongoing' : '—');
  const thumb = e.snapshot_url
    ? el('img', { class: 'thumb', src: e.snapshot_url, alt: '', loading: 'lazy', decoding: 'async', width: 96, height: 60 })
    : el('span', { class: 'thumb none', text: 'no snapshot' });
  if (thumb.tagName === 'IMG')
    thumb.addEventListener('error', () => thumb.replaceWith(el('span', { class: 'thumb none', text: 'no snapshot' })), { once: true });
  return el('button', {
    type: 'button', class: 'event', 'data-event-id': e.event_id,
    'aria-label': `${e.type} at ${time}, ${dur}, ${status}. Play`, onclick: () => openEvent(e),
  }, thumb,
  el('span', {}, el('span', { class: 'time', text: time }), el('span', { class: 'what', text: `${e.type} · ${dur}` })),
  el('span', { class: `status ${e.status}`, text: status }));
}

function renderTypes() {
  const select = $('type-filter');
  const types = [...(S.types.get(S.device) ?? [])];
  if (S.type && !types.includes(S.type)) types.push(S.type);
  types.sort();
  select.replaceChildren(el('option', { value: '', text: 'All types' }), ...types.map((t) => el('option', { value: t, text: t })));
  select.value = S.type;
}

function setType(type) {
  S.type = type;
  S.cursors = [null];
  S.page = 0;
  writeHash();
  renderTypes();
  loadPage();
}

/* ---------- keeping today current ---------- */

async function poll() {
  if (!S.token || document.hidden || !S.device) return;
  let cal;
  try {
    cal = await api(`/v1/devices/${encodeURIComponent(S.device)}/calendar?days=30`, { quiet: true });
  } catch {
    return; // the next poll tries again; a 401 has signed out already
  }
  const oldToday = S.days[0]?.date;
  applyCalendar(cal);
  for (const b of $('calendar').querySelectorAll('button.day')) b.setAttribute('tabindex', b.dataset.date === S.day ? '0' : '-1');
  if (!S.days.some((d) => d.date === S.day)) return selectDay(S.days[0]?.date, { focus: false });
  if (oldToday !== S.days[0]?.date) selectDay(S.day, { focus: false });
  const grew = countOf(S.day) - (S.shownCount ?? 0);
  renderDaySub();
  renderDayNav();
  if (grew > 0) {
    const btn = $('refresh-day');
    btn.textContent = `${plural(grew, 'new event')} — show`;
    btn.hidden = false;
  }
}

/* ---------- playback ---------- */

// How a clip plays. An event's video is the byte range [start_offset, end_offset) of each of
// its segments, in index order. The page plays whole segments in one <video>, one after the
// other, each from the time where the event's bytes start to the time where they end; times
// come from byte offsets in proportion to the segment's size and duration, the start moved
// back to the keyframe at or before it (decoding starts on a keyframe anyway). This needs
// nothing from the segment files beyond being playable on their own (any MP4 or WebM a
// browser plays), where Media Source Extensions would need fragmented MP4 and codec strings;
// the cost is a short pause when playback crosses from one segment to the next. The scrubber
// and clock show the event's whole clip, across segments.
function buildClip(segments) {
  const segs = [...segments].sort((a, b) => a.index - b.index);
  const pieces = [];
  const notes = [];
  let base = 0;
  segs.forEach((s, k) => {
    if (k === 0 && s.index > 0) notes.push(`the first ${plural(s.index, 'part')} of this clip have not been reported yet`);
    else if (k > 0 && s.index > segs[k - 1].index + 1) notes.push(`part ${segs[k - 1].index + 2} of this clip has not been reported yet`);
    const dur = Number(s.duration_ms) / 1000;
    const size = Number(s.size);
    if (!(dur > 0) || !(size > 0) || !s.url) return;
    let startByte = Math.max(0, Number(s.start_offset) || 0);
    const kf = Array.isArray(s.keyframes) ? s.keyframes.filter((b) => b <= startByte) : [];
    if (kf.length) startByte = Math.max(...kf);
    const endByte = Math.min(size, Number(s.end_offset) || size);
    const from = startByte <= 0 ? 0 : (dur * startByte) / size;
    const to = endByte >= size ? dur : Math.max(from, (dur * endByte) / size);
    if (to - from < 0.05) return;
    pieces.push({ url: s.url, from, to, len: to - from, base, index: s.index });
    base += to - from;
  });
  return { pieces, total: base, notes };
}

const P = { clip: null, i: -1, pendingSeek: null, rate: 1, raf: 0, dragging: false, reload: null, refreshed: false, ended: false };
const video = $('video');

function playerMessage(text, action) {
  const msg = $('player-msg');
  msg.replaceChildren(el('span', { text }), action ? el('button', { type: 'button', text: action.label, onclick: action.run }) : null);
  msg.hidden = !text;
}

function openPlayer(title, meta) {
  stopVideo();
  $('player-title').textContent = title;
  $('player-meta').textContent = meta;
  $('player-parts').textContent = '';
  $('scrub').max = '0';
  $('scrub').value = '0';
  $('clock').textContent = '0:00 / 0:00';
  setControls(false);
  playerMessage('Loading…');
  if (!$('player').open) $('player').showModal();
  $('play').focus();
}

function setControls(on) {
  for (const id of ['play', 'scrub', 'speed']) $(id).disabled = !on;
}

function stopVideo() {
  cancelAnimationFrame(P.raf);
  P.clip = null;
  P.i = -1;
  P.ended = false;
  video.pause();
  video.removeAttribute('src');
  video.load();
}

async function openEvent(e) {
  const at = toDate(e.triggered_at);
  const when = at ? `${at.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short' })} ${fmtTime(at)}` : '';
  const dur = fmtDuration(e.duration_ms) ?? (e.status === 'open' ? 'still recording' : 'length unknown');
  openPlayer(`${e.type} · ${when}`, `${dur} · ${STATUS[e.status] ?? e.status} · ${localZone} · camera ${S.device}`);
  P.reload = () => openEvent(e);
  P.refreshed = false;
  await loadEventClip(e, 0);
}

// The event with all its segments: the API pages them (at most 2048 per event, 200 a page).
async function eventDetail(id) {
  const path = `/v1/events/${encodeURIComponent(id)}?limit=200`;
  const detail = await api(path);
  const segments = Array.isArray(detail?.segments) ? [...detail.segments] : [];
  let cursor = detail?.next_cursor;
  while (cursor && $('player').open) {
    const page = await api(`${path}&cursor=${encodeURIComponent(cursor)}`);
    if (Array.isArray(page?.segments)) segments.push(...page.segments);
    cursor = page?.next_cursor;
  }
  return { ...detail, segments };
}

async function loadEventClip(e, at) {
  let detail;
  try {
    detail = await eventDetail(e.event_id);
  } catch (err) {
    if (err instanceof SignedOut) return;
    playerMessage(explain(err, 'This event'), { label: 'Try again', run: () => loadEventClip(e, at) });
    return;
  }
  if (!$('player').open) return;
  const segments = Array.isArray(detail?.segments) ? detail.segments : [];
  if (!segments.length) {
    const open = (detail?.status ?? e.status) === 'open';
    playerMessage(open
      ? 'The camera is still recording this event. Its video appears once the first segment is uploaded.'
      : 'No video has been reported for this event yet. The camera may still be uploading it.',
    { label: 'Check again', run: () => loadEventClip(e, at) });
    return;
  }
  startClip(buildClip(segments), at);
}

async function openDigest() {
  if (!S.day) return;
  openPlayer(`Night digest · ${fmtDayShort(S.day)}`, `camera ${S.device}`);
  P.reload = openDigest;
  P.refreshed = false;
  let d;
  try {
    d = await api(`/v1/devices/${encodeURIComponent(S.device)}/digests/${S.day}`);
  } catch (err) {
    if (err instanceof SignedOut) return;
    playerMessage(err instanceof ApiError && err.status === 404
      ? 'No digest for this day yet. Cameras upload a day\u2019s digest during the following night.'
      : explain(err, 'The digest'));
    return;
  }
  if (!$('player').open) return;
  $('player-meta').textContent = `${fmtDuration(d.duration_ms) ?? ''} · camera ${S.device}`;
  startClip(buildClip([{ index: 0, url: d.url, size: d.size, start_offset: 0, end_offset: d.size, duration_ms: d.duration_ms }]), 0);
}

function startClip(clip, at) {
  P.clip = clip;
  P.i = -1;
  P.ended = false;
  if (!clip.pieces.length) {
    playerMessage('This clip has no playable video yet. Its segments may still be uploading.', { label: 'Check again', run: () => P.reload?.() });
    return;
  }
  playerMessage('');
  $('scrub').max = String(clip.total);
  $('player-parts').textContent = [
    clip.pieces.length > 1 ? `Assembled from ${clip.pieces.length} segments.` : '',
    ...clip.notes.map((n) => `Note: ${n}; playback skips it.`),
  ].filter(Boolean).join(' ');
  setControls(true);
  const focus = document.activeElement;
  if (!$('player').contains(focus) || focus === $('player-close')) $('play').focus();
  seekClip(at, true);
}

function pieceAt(t) {
  const ps = P.clip.pieces;
  for (let i = 0; i < ps.length; i++) if (t < ps[i].base + ps[i].len) return i;
  return ps.length - 1;
}

function loadPiece(i, local, play) {
  const p = P.clip.pieces[i];
  if (P.i !== i) {
    P.i = i;
    P.pendingSeek = local;
    video.src = p.url;
  } else if (video.readyState >= 1) {
    video.currentTime = local;
  } else {
    P.pendingSeek = local;
  }
  video.defaultPlaybackRate = P.rate;
  video.playbackRate = P.rate;
  if (play) video.play().catch(() => {});
}

function seekClip(t, play = !video.paused) {
  if (!P.clip) return;
  t = Math.max(0, Math.min(P.clip.total, t));
  P.ended = false;
  const i = pieceAt(t);
  const p = P.clip.pieces[i];
  loadPiece(i, Math.min(p.to - 0.01, p.from + (t - p.base)), play);
  renderClock(t);
}

function clipTime() {
  const p = P.clip?.pieces[P.i];
  if (!p) return 0;
  return p.base + Math.max(0, Math.min(p.len, video.currentTime - p.from));
}

function advance() {
  if (!P.clip) return;
  if (P.i + 1 < P.clip.pieces.length) {
    loadPiece(P.i + 1, P.clip.pieces[P.i + 1].from, true);
  } else {
    video.pause();
    P.ended = true;
    renderClock(P.clip.total);
  }
}

function renderClock(t = clipTime()) {
  if (!P.clip) return;
  if (!P.dragging) $('scrub').value = String(t);
  $('scrub').setAttribute('aria-valuetext', `${fmtClock(t)} of ${fmtClock(P.clip.total)}`);
  $('clock').textContent = `${fmtClock(t)} / ${fmtClock(P.clip.total)}`;
  const playing = !video.paused && !P.ended;
  $('play').textContent = playing ? 'Pause' : P.ended ? 'Replay' : 'Play';
  $('play').setAttribute('aria-label', $('play').textContent);
}

// While playing, watch every frame so a piece stops at its end, not up to 250 ms later.
function tick() {
  const p = P.clip?.pieces[P.i];
  if (p && !video.paused && !video.seeking && video.currentTime >= p.to - 0.02) advance();
  renderClock();
  if (!video.paused) P.raf = requestAnimationFrame(tick);
}

function togglePlay() {
  if (!P.clip) return;
  if (P.ended) return seekClip(0, true);
  if (video.paused) {
    if (P.i < 0) return seekClip(0, true);
    video.play().catch(() => {});
  } else video.pause();
}

function setSpeed(rate) {
  P.rate = rate;
  video.defaultPlaybackRate = rate;
  video.playbackRate = rate;
  $('speed').value = String(rate);
}

// A piece that fails to load: ask the object store why, in words a person understands.
async function onVideoError() {
  const p = P.clip?.pieces[P.i];
  if (!p) return;
  const part = P.clip.pieces.length > 1 ? `Part ${P.i + 1} of this clip` : 'This clip';
  let status = null;
  try {
    const res = await fetch(p.url, { headers: { range: 'bytes=0-0' }, cache: 'no-store', referrerPolicy: 'no-referrer' });
    status = res.status;
  } catch {
    status = 0;
  }
  if (!P.clip || P.clip.pieces[P.i] !== p) return;
  const hasNext = P.i + 1 < P.clip.pieces.length;
  const skip = hasNext ? { label: 'Skip to the next part', run: () => { playerMessage(''); advance(); } } : null;
  if (!hasNext && P.clip.pieces.length === 1) setControls(false);
  if (status === 403 && !P.refreshed && P.reload) {
    // Presigned links expire (15 minutes at most); fetch fresh ones once.
    P.refreshed = true;
    const at = clipTime();
    const reload = P.reload;
    await reload();
    if (P.clip) seekClip(at, false);
    return;
  }
  if (status === 404) playerMessage(`${part} is not in storage yet. The camera may still be uploading it.`, skip ?? { label: 'Check again', run: () => P.reload?.() });
  else if (status === 403) playerMessage('The link to this video has expired. Close and open the event again.');
  else if (status >= 200 && status < 300) playerMessage(`${part} is stored, but this browser cannot play its format.`, skip);
  else playerMessage(`${part} could not be loaded from storage${status ? ` (error ${status})` : ''}.`, skip ?? { label: 'Try again', run: () => P.reload?.() });
}

function onPlayerKey(ev) {
  const tag = ev.target.tagName;
  if (tag === 'SELECT' || (tag === 'BUTTON' && (ev.key === ' ' || ev.key === 'Enter'))) return;
  if (ev.key === ' ' || ev.key === 'k') {
    ev.preventDefault();
    togglePlay();
  } else if ((ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') && tag !== 'INPUT') {
    ev.preventDefault();
    seekClip(clipTime() + (ev.key === 'ArrowLeft' ? -5 : 5));
  } else if (ev.key === '[' || ev.key === ']') {
    const i = SPEEDS.indexOf(P.rate) + (ev.key === '[' ? -1 : 1);
    if (i >= 0 && i < SPEEDS.length) setSpeed(SPEEDS[i]);
  }
}

/* ---------- wiring ---------- */

function init() {
  renderZone();
  $('signin-form').addEventListener('submit', onSignIn);
  $('signout').addEventListener('click', () => signOut('Signed out. Paste a viewer token to sign in again.'));
  $('notice-close').addEventListener('click', hideNotice);
  $('notice-retry').addEventListener('click', () => noticeRetry?.());
  $('device').addEventListener('change', (ev) => {
    S.device = ev.target.value;
    S.type = '';
    writeHash();
    loadDevice(null);
  });
  $('calendar').addEventListener('keydown', onCalendarKey);
  $('prev-day').addEventListener('click', () => selectDay(neighbourDays().prev));
  $('next-day').addEventListener('click', () => selectDay(neighbourDays().next));
  $('type-filter').addEventListener('change', (ev) => setType(ev.target.value));
  $('digest-btn').addEventListener('click', openDigest);
  $('refresh-day').addEventListener('click', loadPage);
  $('prev-page').addEventListener('click', () => {
    if (S.page > 0) {
      S.page -= 1;
      loadPage();
    }
  });
  $('next-page').addEventListener('click', () => {
    if (S.next) {
      S.page += 1;
      loadPage();
    }
  });

  $('player-close').addEventListener('click', () => $('player').close());
  $('player').addEventListener('close', stopVideo);
  $('player').addEventListener('keydown', onPlayerKey);
  $('play').addEventListener('click', togglePlay);
  $('speed').addEventListener('change', (ev) => setSpeed(Number(ev.target.value)));
  const scrub = $('scrub');
  scrub.addEventListener('pointerdown', () => (P.dragging = true));
  scrub.addEventListener('pointerup', () => (P.dragging = false));
  scrub.addEventListener('input', () => seekClip(Number(scrub.value)));
  video.addEventListener('loadedmetadata', () => {
    if (P.pendingSeek != null) {
      const p = P.clip?.pieces[P.i];
      // The file's own duration wins over the reported one if they disagree.
      if (p && Number.isFinite(video.duration) && p.to > video.duration) p.to = video.duration;
      video.currentTime = Math.min(P.pendingSeek, Math.max(0, video.duration - 0.05) || P.pendingSeek);
      P.pendingSeek = null;
    }
    video.playbackRate = P.rate;
  });
  video.addEventListener('play', () => {
    cancelAnimationFrame(P.raf);
    P.raf = requestAnimationFrame(tick);
  });
  video.addEventListener('pause', () => renderClock());
  video.addEventListener('timeupdate', () => video.paused && renderClock());
  video.addEventListener('ended', advance);
  video.addEventListener('error', () => video.getAttribute('src') && onVideoError());
  video.addEventListener('waiting', () => $('player-msg').hidden && $('player').classList.add('buffering'));
  video.addEventListener('playing', () => $('player').classList.remove('buffering'));
  video.addEventListener('click', togglePlay);

  document.addEventListener('visibilitychange', () => !document.hidden && S.token && poll());

  const token = sessionStorage.getItem(TOKEN_KEY);
  const claims = token ? decodeToken(token) : null;
  const problem = token ? tokenProblem(claims) : null;
  if (token && !problem) start(token, claims);
  else showSignIn(token ? problem : '');
}

init();
