// The camera's last 30 days (#calendar): loading them when a camera is picked, the heat map,
// its keyboard, keeping it current (polling), and the header's zone line. Reads and changes
// the view state (state.js); a day's list is day.js's, given as `day`.

import { $, el } from './dom.js';
import { cameraOffsetText, dayUtc, fmtBytes, fmtDayLong, localZone, plural, weekdayLetters, zoneText } from './format.js';
import { countOf, gridKeyTarget, heatLevel, leadingPad, normalizeDays, pickDay } from './days.js';
import { SignedOut, explain } from './api.js';

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
  const state = { pollTimer: 0 };

  function render() {
    const days = [...view.days].reverse(); // oldest first
    const grid = $('calendar');
    const max = Math.max(0, ...days.map((d) => d.events));
    const total = days.reduce((a, d) => a + d.events, 0);
    $('cal-total').textContent = `${plural(total, 'event')} on ${view.device}`;
    // Storage used: the bytes of the camera's video over the 30 days (the calendar's figures).
    $('cal-usage').textContent = `${fmtBytes(days.reduce((a, d) => a + d.bytes, 0))} of video stored`;
    $('weekdays').replaceChildren(...weekdayLetters().map((text) => el('span', { text })));
    const cells = [];
    for (let i = 0; i < leadingPad(days); i++) cells.push(el('span', { class: 'day pad', role: 'gridcell' }));
    const today = view.days[0]?.date;
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
    view.cameraOffset = cameraOffsetText(cal?.utc_offset) ?? view.cameraOffset;
    renderZone(view);
    render();
  }

  // Loads the view's camera: its calendar, then the day asked for (or the best one, pickDay).
  async function load(wantDay) {
    view.days = [];
    view.day = null;
    view.cameraOffset = null;
    day.renderTypes();
    $('calendar').replaceChildren(...Array.from({ length: 30 }, () => el('div', { class: 'day' })));
    $('cal-total').textContent = '';
    $('cal-usage').textContent = '';
    day.showLoading();
    const device = view.device;
    let cal;
    try {
      cal = await api.get(`/v1/devices/${encodeURIComponent(device)}/calendar?days=30`);
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
      cal = await api.get(`/v1/devices/${encodeURIComponent(view.device)}/calendar?days=30`, { quiet: true });
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
