// Time and text formatting for the viewer page. Pure: no DOM, no page state, so the unit
// tests (web/tests/unit) run it under node.
//
// Two kinds of date appear on the page. A *calendar date* ("2024-03-31") is a camera's day as
// the API names it; it is shown as that date whatever the viewer's zone, so it is formatted
// in UTC from midnight UTC of the date. An *instant* (an event's `triggered_at`) is shown in
// the viewer's own zone.

// The viewer's zone, as the browser names it (resolved once, when the page loads).
export const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';

// "UTC+02:00" for minutes east of UTC.
export function offsetText(minutes) {
  const sign = minutes < 0 ? '-' : '+';
  const m = Math.abs(Math.round(minutes));
  return `UTC${sign}${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
}

// A camera's offset as the API may send it: "+02:00", seconds or minutes east of UTC.
export function cameraOffsetText(v) {
  if (v == null || v === '') return null;
  if (typeof v === 'string') return /^utc/i.test(v) ? v.toUpperCase() : `UTC${v}`;
  if (typeof v === 'number' && Number.isFinite(v)) return offsetText(Math.abs(v) > 24 * 60 ? v / 60 : v);
  return null;
}

// The header's line about zones: the viewer's, and the camera's when the API said it.
export function zoneText(zone, localOffsetMinutes, cameraOffset) {
  let text = `Times in your zone: ${zone} (${offsetText(localOffsetMinutes)})`;
  if (cameraOffset) text += ` · camera days in ${cameraOffset}`;
  return text;
}

// An instant from the API: epoch milliseconds or an RFC 3339 string; null stays null.
export const toDate = (v) => (v == null ? null : new Date(typeof v === 'number' ? v : Date.parse(v)));

// Midnight UTC of a calendar date "YYYY-MM-DD".
export const dayUtc = (date) => {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d));
};

// The calendar date an instant falls on in the viewer's zone.
export const localDate = (d) =>
  `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;

// Day of the week of a calendar date, Monday 0 … Sunday 6.
export const isoWeekday = (date) => (dayUtc(date).getUTCDay() + 6) % 7;

export const fmtDayLong = (date) =>
  new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', timeZone: 'UTC' })
    .format(dayUtc(date));
export const fmtDayShort = (date) =>
  new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' }).format(dayUtc(date));
export const fmtTime = (d) => d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

// The narrow weekday names, Monday first, for the calendar's header row.
export function weekdayLetters() {
  const monday = new Date(Date.UTC(2024, 0, 1));
  return Array.from({ length: 7 }, (_, i) =>
    new Intl.DateTimeFormat(undefined, { weekday: 'narrow', timeZone: 'UTC' }).format(new Date(monday.getTime() + i * 864e5)));
}

// An event's time in a day's list. The day is the camera's; near midnight the viewer's own
// date can differ, so the date is added when it does.
export function eventTimeText(at, day) {
  const valid = at && !Number.isNaN(at.getTime());
  let time = valid ? fmtTime(at) : '—';
  if (valid && localDate(at) !== day) time += ` (${at.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })})`;
  return time;
}

// An event's date and time in the player's title ('' without a time).
export function eventWhenText(at) {
  return at ? `${at.toLocaleDateString(undefined, { weekday: 'short', day: 'numeric', month: 'short' })} ${fmtTime(at)}` : '';
}

// "42 s", "3 min 5 s", "2 h 10 min"; null for no (or no finite) length.
export function fmtDuration(ms) {
  if (ms == null || !Number.isFinite(ms)) return null;
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// A player clock: "m:ss", or "h:mm:ss" from an hour on.
export function fmtClock(sec) {
  const s = Math.max(0, Math.floor((sec || 0) + 0.05));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
    : `${m}:${String(s % 60).padStart(2, '0')}`;
}

export const STATUS = { open: 'recording', complete: 'complete', aborted: 'aborted' };
export const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

// A size in bytes for people: decimal units (as disks and plans are sold), three significant
// digits at most: `0 B`, `999 B`, `1.5 kB`, `12.3 MB`, `4.56 GB`.
export function fmtBytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = Math.max(0, Number(n) || 0);
  let u = 0;
  while (v >= 999.5 && u < units.length - 1) {
    v /= 1000;
    u += 1;
  }
  return u === 0 ? `${Math.round(v)} B` : `${Number(v.toPrecision(3))} ${units[u]}`;
}
