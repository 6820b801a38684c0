// The camera's last 30 days (#calendar) — or fewer, its plan's days — and, when its plan keeps
// more than a month, its earlier months one at a time: loading them when a camera is picked,
// the heat map, its keyboard, keeping it current (polling), and the header's zone line. Reads and changes
// the view state (state.js); a day's list is day.js's, given as `day`.

import { $, el } from './dom.js';
import { cameraOffsetText, dayUtc, fmtBytes, fmtDayLong, localZone, plural, weekdayLetters, zoneText } from './format.js';
import { countOf, gridKeyTarget, heatLevel, leadingPad, normalizeDays, pickDay } from './days.js';
import { SignedOut, explain } from './api.js';

// The calendar's query: the recent days (the API's default: 30, or the plan if shorter), or
// one month (`YYYY-MM`).
const calendarPath = (device, month) =>
  `/v1/devices/${encodeURIComponent(device)}/calendar${month ? `?month=${encodeURIComponent(month)}` : ''}`;

// "November 2026" for "2026-11".
const monthName = (month) => {
  const [y, m] = month.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, 1)).toLocaleDateString(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' });
};

const dayButtons = () => $('calendar').querySelectorAll('button.day');

// The header's zone line, with the camera's offset once an answer gave it.
export function renderZone(view) {
  $('zone').textContent = zoneText(localZone, -new Date().getTimezoneOffset(), view.cameraOffset);
}

// Marks `date` as the selected day and the grid's one tab stop.
export function markSelectedDay(date) {
  for (const b of dayButtons()) {
    const on = b.dataset.date === date;
    b.setAttribute('aria-selected', String(on));
    b.setAttribute('tabindex', on ? '0' : '-1');
  }
}

// Makes `date` the grid's one tab stop.
function markTabStop(date) {
  for (const b of dayButtons()) b.setAttribute('tabindex', b.dataset.date === date ? '0' : '-1');
}

// Arrow keys move between days (a week up or down), Home/End jump to the ends; Enter or Space
// opens the focused day (they press the button).
function onCalendarKey(ev) {
  const cell = ev.target.closest('button.day');
  if (!cell) return;
  const buttons = [...dayButtons()];
  const j = gridKeyTarget(ev.key, buttons.indexOf(cell), buttons.length);
  if (j == null) return;
  ev.preventDefault();
  buttons.forEach((b, k) => b.setAttribute('tabindex', k === j ? '0' : '-1'));
  buttons[j].focus();
}

// `api` the client, `view` the view state, `session` the sign-in session (polling stops
// without a token), `day` the day list (day.js), `pollMs` the refresh interval.
export function createCalendar({ api, view, session, day, pollMs }) {
  // `month`: the month shown (`YYYY-MM`), or null for the recent days; `today` the camera's
  // today as the last answer gave it.
  const state = { pollTimer: 0, month: null, today: null };

  // The plan's span, and a button per month when the plan keeps more than a month.
  function renderPlan(cal) {
    const planDays = Number(cal?.plan_days) || 0;
    const months = Array.isArray(cal?.months) ? cal.months.map(String) : [];
    $('cal-plan').textContent = planDays ? `${plural(planDays, 'day')} of history` : '';
    const nav = $('cal-months');
    nav.hidden = !(planDays > 31 && months.length > 1);
    if (nav.hidden) return nav.replaceChildren();
    const button = (label, month) => el('button', {
      type: 'button', class: 'ghost', 'aria-pressed': String(state.month === month),
      onclick: () => showMonth(month),
    }, label);
    nav.replaceChildren(button(`Last ${plural(Math.min(30, planDays), 'day')}`, null), ...months.map((m) => button(monthName(m), m)));
  }

  // Shows `month` (null: the recent days), then its best day.
  async function showMonth(month) {
    state.month = month;
    await load(null, { keepMonth: true });
  }

  function render() {
    const days = [...view.days].reverse(); // oldest first
    const grid = $('calendar');
    const max = Math.max(0, ...days.map((d) => d.events));
    const total = days.reduce((a, d) => a + d.events, 0);
    $('cal-title').textContent = state.month ? monthName(state.month) : `Last ${plural(days.length, 'day')}`;
    $('cal-total').textContent = `${plural(total, 'event')} on ${view.device}`;
    // Storage used: the bytes of the camera's video over the days shown (the calendar's figures).
    $('cal-usage').textContent = `${fmtBytes(days.reduce((a, d) => a + d.bytes, 0))} of video stored`;
    $('weekdays').replaceChildren(...weekdayLetters().map((text) => el('span', { text })));
    const cells = [];
    for (let i = 0; i < leadingPad(days); i++) cells.push(el('span', { class: 'day pad', role: 'gridcell' }));
    // The camera's today (a month page's newest day may be another).
    const today = state.today ?? view.days[0]?.date;
    for (const d of days) {
      const level = heatLevel(d.events, max);
      // The name starts with what the cell shows (its date's number, then its count), so a
      // person who says what they see (voice control) names it (WCAG 2.5.3, Label in Name).
      const num = String(dayUtc(d.date).getUTCDate());
      const label = `${num}: ${plural(d.events, 'event')}, ${fmtDayLong(d.date)}${d.date === today ? ' (today)' : ''}`;
      cells.push(
        el('button', {
          type: 'button', role: 'gridcell', class: `day h${level}${d.date === today ? ' today' : ''}`,
          'data-date': d.date, 'aria-label': label, title: label, 'aria-selected': String(d.date === view.day),
          tabindex: d.date === view.day ? '0' : '-1', onclick: () => day.selectDay(d.date),
        }, el('span', { class: 'd', text: num }), ' ', el('span', { class: 'n', text: String(d.events) })),
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

  function apply(cal) {
    view.days = normalizeDays(cal);
    state.today = typeof cal?.today === 'string' ? cal.today : null;
    view.cameraOffset = cameraOffsetText(cal?.utc_offset) ?? view.cameraOffset;
    renderZone(view);
    render();
    renderPlan(cal);
  }

  // Loads the view's camera: its calendar, then the day asked for (or the best one, pickDay).
  async function load(wantDay, { keepMonth = false } = {}) {
    if (!keepMonth) state.month = null;
    view.days = [];
    view.day = null;
    view.cameraOffset = null;
    day.renderTypes();
    $('calendar').replaceChildren(...Array.from({ length: 30 }, () => el('div', { class: 'day' })));
    $('cal-total').textContent = '';
    $('cal-usage').textContent = '';
    $('cal-plan').textContent = '';
    day.showLoading();
    const device = view.device;
    let cal;
    try {
      cal = await api.get(calendarPath(device, state.month));
    } catch (e) {
      if (e instanceof SignedOut || device !== view.device) return;
      $('calendar').replaceChildren();
      day.showFailure(explain(e, 'The calendar', view.device));
      return;
    }
    if (device !== view.device) return;
    apply(cal);
    day.selectDay(pickDay(view.days, wantDay), { focus: false });
  }

  // Keeps today current: a new day, a day that left the 30, new events on the day shown.
  async function poll() {
    if (!session.token || document.hidden || !view.device) return;
    let cal;
    try {
      cal = await api.get(calendarPath(view.device, state.month), { quiet: true });
    } catch {
      return; // the next poll tries again; a 401 has signed out already
    }
    const oldToday = view.days[0]?.date;
    apply(cal);
    markTabStop(view.day);
    if (!view.days.some((d) => d.date === view.day)) return day.selectDay(view.days[0]?.date, { focus: false });
    if (oldToday !== view.days[0]?.date) day.selectDay(view.day, { focus: false });
    day.offerNew(countOf(view.days, view.day) - (view.shownCount ?? 0));
  }

  function startPolling() {
    clearInterval(state.pollTimer);
    state.pollTimer = setInterval(poll, pollMs);
  }

  const stopPolling = () => clearInterval(state.pollTimer);

  $('calendar').addEventListener('keydown', onCalendarKey);
  return { load, poll, startPolling, stopPolling };
}
