// The calendar's and the day list's logic: a camera's last 30 days as the API answers them
// (newest first), which day to open, the days with events either side of one, the heat-map
// levels, the grid's keyboard moves, the page label and the type filter's options. Pure: no
// DOM, no page state (what it needs is passed in).

import { isoWeekday } from './format.js';
import { PAGE_SIZE } from './state.js';

// The calendar answer's days, newest first, each { date, events } with a numeric count.
export const normalizeDays = (cal) =>
  (Array.isArray(cal?.days) ? cal.days : []).map((d) => ({
    date: String(d.date), events: Number(d.events) || 0, bytes: Number(d.bytes) || 0,
  }));

// A day's count of events (0 for a day not in the calendar).
export const countOf = (days, date) => days.find((d) => d.date === date)?.events ?? 0;

// The day to open: the one asked for (the address's) if the calendar has it, else today if it
// has events, else the latest day with events, else today. `days` is newest first.
export const pickDay = (days, wantDay) =>
  days.find((d) => d.date === wantDay)?.date ??
  (days[0]?.events > 0 ? days[0].date : days.find((d) => d.events > 0)?.date ?? days[0]?.date);

// The nearest earlier (`prev`) and later (`next`) days with events; null where there is none.
export function neighbourDays(days, day) {
  // `days` is newest first: older days have larger indices.
  const i = days.findIndex((d) => d.date === day);
  if (i < 0) return { prev: null, next: null };
  const prev = days.slice(i + 1).find((d) => d.events > 0)?.date ?? null;
  const next = [...days.slice(0, i)].reverse().find((d) => d.events > 0)?.date ?? null;
  return { prev, next };
}

// A day's shade, 0 (no events) to 4 (the busiest day). A square-root scale keeps one busy day
// from washing out the rest.
export const heatLevel = (events, max) => (events === 0 || max === 0 ? 0 : Math.max(1, Math.ceil(4 * Math.sqrt(events / max))));

// Empty cells before the oldest day so that weeks start on Monday (`oldestFirst[0]` is the oldest).
export const leadingPad = (oldestFirst) => (oldestFirst.length ? isoWeekday(oldestFirst[0].date) : 0);

// Where a key moves the focus in a grid of `n` days from day `i` (left/right a day, up/down a
// week, Home/End the ends, clamped); null for any other key.
export function gridKeyTarget(key, i, n) {
  const step = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -7, ArrowDown: 7 }[key];
  if (step != null) return Math.min(n - 1, Math.max(0, i + step));
  if (key === 'Home') return 0;
  if (key === 'End') return n - 1;
  return null;
}

// The page label: "Page 2 of 3"; without a total when filtering (the calendar counts all
// types); nothing for a day that fits on one page.
export function pageLabel({ type, next, page }, count) {
  const pages = Math.max(1, Math.ceil(count / PAGE_SIZE));
  return type || next || page > 0 ? `Page ${page + 1}${type ? '' : ` of ${pages}`}` : '';
}

// The event types seen for a camera, and the one filtered on, sorted.
export function typeOptions(seen, type) {
  const types = [...(seen ?? [])];
  if (type && !types.includes(type)) types.push(type);
  return types.sort();
}
