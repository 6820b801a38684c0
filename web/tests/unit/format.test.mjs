// web/js/format.js: offsets, calendar dates vs instants across zones and day boundaries,
// durations and the player clock. Run with `node --test web/tests/unit/`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cameraOffsetText, dayUtc, eventTimeText, eventWhenText, fmtBytes, fmtClock, fmtDayLong, fmtDayShort, fmtDuration, fmtTime,
  isoWeekday, localDate, offsetText, plural, toDate, weekdayLetters, zoneText,
} from '../../js/format.js';

// Runs `fn` with the process in time zone `tz` (node applies a changed TZ at once).
function inZone(tz, fn) {
  const old = process.env.TZ;
  process.env.TZ = tz;
  try {
    return fn();
  } finally {
    if (old === undefined) delete process.env.TZ;
    else process.env.TZ = old;
  }
}
// A number as the default locale writes it (the formatters use the viewer's locale).
const num = (n) => new Intl.NumberFormat(undefined, { useGrouping: false }).format(n);
// Zones far either side of UTC, with half and quarter hours, and with DST.
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Asia/Kathmandu', 'Pacific/Kiritimati', 'Pacific/Pago_Pago'];

test('offsetText: minutes east of UTC, signed, zero-padded, half and quarter hours', () => {
  assert.equal(offsetText(0), 'UTC+00:00');
  assert.equal(offsetText(120), 'UTC+02:00');
  assert.equal(offsetText(-300), 'UTC-05:00');
  assert.equal(offsetText(330), 'UTC+05:30');
  assert.equal(offsetText(345), 'UTC+05:45');
  assert.equal(offsetText(-570), 'UTC-09:30');
  assert.equal(offsetText(14 * 60), 'UTC+14:00');
  assert.equal(offsetText(59.6), 'UTC+01:00', 'rounded to a minute');
});

test('offsetText with the sign the page gives getTimezoneOffset (negated) names the zone east of UTC', () => {
  assert.equal(inZone('Asia/Kolkata', () => offsetText(-new Date(Date.UTC(2024, 0, 15)).getTimezoneOffset())), 'UTC+05:30');
  assert.equal(inZone('America/New_York', () => offsetText(-new Date(Date.UTC(2024, 0, 15)).getTimezoneOffset())), 'UTC-05:00');
  assert.equal(inZone('America/New_York', () => offsetText(-new Date(Date.UTC(2024, 6, 15)).getTimezoneOffset())), 'UTC-04:00', 'summer time');
});

test('cameraOffsetText: the forms the API may send', () => {
  assert.equal(cameraOffsetText('+02:00'), 'UTC+02:00');
  assert.equal(cameraOffsetText('-05:30'), 'UTC-05:30');
  assert.equal(cameraOffsetText('utc+01:00'), 'UTC+01:00', 'already prefixed: upper-cased');
  assert.equal(cameraOffsetText('UTC-03:00'), 'UTC-03:00');
  assert.equal(cameraOffsetText(120), 'UTC+02:00', 'minutes');
  assert.equal(cameraOffsetText(-300), 'UTC-05:00', 'negative minutes');
  assert.equal(cameraOffsetText(0), 'UTC+00:00', 'a zero offset is an offset, not a missing one');
  assert.equal(cameraOffsetText(7200), 'UTC+02:00', 'seconds');
  assert.equal(cameraOffsetText(-18000), 'UTC-05:00', 'negative seconds');
  assert.equal(cameraOffsetText(19800), 'UTC+05:30', 'seconds, half hour');
});

test('cameraOffsetText: up to 24 h of minutes is read as minutes, more as seconds', () => {
  assert.equal(cameraOffsetText(24 * 60), 'UTC+24:00');
  assert.equal(cameraOffsetText(-24 * 60), 'UTC-24:00');
  assert.equal(cameraOffsetText(3600), 'UTC+01:00');
});

test('cameraOffsetText: nothing usable is null', () => {
  for (const v of [null, undefined, '', NaN, Infinity, -Infinity, {}, [], true]) assert.equal(cameraOffsetText(v), null, String(v));
});

test('zoneText: the viewer zone, and the camera offset only when known', () => {
  assert.equal(zoneText('Europe/Berlin', 60, null), 'Times in your zone: Europe/Berlin (UTC+01:00)');
  assert.equal(zoneText('Europe/Berlin', 120, 'UTC+02:00'), 'Times in your zone: Europe/Berlin (UTC+02:00) · camera days in UTC+02:00');
  assert.equal(zoneText('America/New_York', -300, ''), 'Times in your zone: America/New_York (UTC-05:00)');
});

test('toDate: epoch ms, RFC 3339 with any offset, null', () => {
  assert.equal(toDate(null), null);
  assert.equal(toDate(undefined), null);
  assert.equal(toDate(0).getTime(), 0);
  assert.equal(toDate(1_711_843_200_000).getTime(), 1_711_843_200_000);
  assert.equal(toDate('2024-03-31T00:30:00+02:00').getTime(), Date.UTC(2024, 2, 30, 22, 30));
  assert.equal(toDate('2024-03-30T23:30:00Z').getTime(), Date.UTC(2024, 2, 30, 23, 30));
  assert.ok(Number.isNaN(toDate('not a time').getTime()), 'garbage is an invalid date, not null');
});

test('dayUtc: a calendar date is midnight UTC of that date in every zone, DST days and leap days included', () => {
  for (const tz of ZONES) {
    inZone(tz, () => {
      assert.equal(dayUtc('2024-03-31').getTime(), Date.UTC(2024, 2, 31), `${tz}: European DST start`);
      assert.equal(dayUtc('2024-11-03').getTime(), Date.UTC(2024, 10, 3), `${tz}: US DST end`);
      assert.equal(dayUtc('2024-02-29').getTime(), Date.UTC(2024, 1, 29), `${tz}: leap day`);
      assert.equal(dayUtc('2023-12-31').getTime(), Date.UTC(2023, 11, 31), `${tz}: year end`);
      assert.equal(dayUtc('2024-01-01').getUTCDate(), 1);
    });
  }
});

test('isoWeekday: Monday 0 … Sunday 6 whatever the zone', () => {
  for (const tz of ZONES) {
    inZone(tz, () => {
      assert.equal(isoWeekday('2024-01-01'), 0, `${tz}: a Monday`);
      assert.equal(isoWeekday('2024-01-07'), 6, `${tz}: a Sunday`);
      assert.equal(isoWeekday('2024-02-29'), 3, `${tz}: a Thursday`);
      assert.equal(isoWeekday('2024-03-31'), 6, `${tz}: the DST Sunday`);
    });
  }
});

test('localDate: the viewer-zone date of an instant near midnight', () => {
  const lateUtc = new Date(Date.UTC(2024, 2, 30, 23, 30)); // 23:30 UTC on Saturday 30 March
  assert.equal(inZone('UTC', () => localDate(lateUtc)), '2024-03-30');
  assert.equal(inZone('Europe/Berlin', () => localDate(lateUtc)), '2024-03-31', 'already the next day east of UTC');
  assert.equal(inZone('America/New_York', () => localDate(lateUtc)), '2024-03-30');
  const earlyUtc = new Date(Date.UTC(2024, 0, 1, 0, 30));
  assert.equal(inZone('America/New_York', () => localDate(earlyUtc)), '2023-12-31', 'still last year west of UTC');
  assert.equal(inZone('Pacific/Kiritimati', () => localDate(new Date(Date.UTC(2024, 0, 1, 10, 0)))), '2024-01-02', 'UTC+14');
  // Across the spring-forward hour: 01:30 UTC is 03:30 CEST.
  assert.equal(inZone('Europe/Berlin', () => localDate(new Date(Date.UTC(2024, 2, 31, 1, 30)))), '2024-03-31');
  assert.equal(inZone('UTC', () => localDate(new Date(Date.UTC(2024, 1, 29, 12)))), '2024-02-29', 'leap day');
});

test('calendar dates read the same in every zone (formatted in UTC)', () => {
  const long = ZONES.map((tz) => inZone(tz, () => fmtDayLong('2024-03-31')));
  const short = ZONES.map((tz) => inZone(tz, () => fmtDayShort('2024-01-01')));
  assert.equal(new Set(long).size, 1, JSON.stringify(long));
  assert.equal(new Set(short).size, 1, JSON.stringify(short));
  assert.ok(long[0].includes(num(31)) && long[0].includes(num(2024)), long[0]);
  assert.ok(short[0].includes(num(1)) && !short[0].includes(num(31)), short[0]);
  const letters = ZONES.map((tz) => inZone(tz, () => weekdayLetters().join('')));
  assert.equal(new Set(letters).size, 1, 'the weekday header does not shift with the zone');
  assert.equal(weekdayLetters().length, 7);
});

test('eventTimeText: the time, plus the local date when it is not the camera day', () => {
  inZone('Europe/Berlin', () => {
    const at = new Date(Date.UTC(2024, 2, 30, 23, 30)); // 00:30 on 31 March in Berlin
    assert.equal(eventTimeText(at, '2024-03-31'), fmtTime(at), 'same day: time only');
    const other = eventTimeText(at, '2024-03-30'); // the camera (UTC) filed it under the 30th
    assert.ok(other.startsWith(`${fmtTime(at)} (`) && other.endsWith(')'), other);
    assert.ok(other.slice(fmtTime(at).length).includes(num(31)), `the viewer's date, the 31st: ${other}`);
  });
  assert.equal(eventTimeText(null, '2024-03-31'), '—');
  assert.equal(eventTimeText(new Date(NaN), '2024-03-31'), '—', 'an unparseable time');
});

test('eventWhenText: empty without a time, else date then time', () => {
  assert.equal(eventWhenText(null), '');
  const at = new Date(Date.UTC(2024, 2, 30, 12));
  assert.ok(eventWhenText(at).endsWith(` ${fmtTime(at)}`));
});

test('fmtDuration: seconds, minutes, hours; rounding at the unit edges', () => {
  assert.equal(fmtDuration(null), null);
  assert.equal(fmtDuration(undefined), null);
  assert.equal(fmtDuration(NaN), null);
  assert.equal(fmtDuration(Infinity), null);
  assert.equal(fmtDuration('5000'), null, 'not a number');
  assert.equal(fmtDuration(0), '0 s');
  assert.equal(fmtDuration(-4000), '0 s', 'never negative');
  assert.equal(fmtDuration(499), '0 s');
  assert.equal(fmtDuration(500), '1 s');
  assert.equal(fmtDuration(59_499), '59 s');
  assert.equal(fmtDuration(59_500), '1 min 0 s', 'rounds up into minutes');
  assert.equal(fmtDuration(125_000), '2 min 5 s');
  assert.equal(fmtDuration(3_599_499), '59 min 59 s');
  assert.equal(fmtDuration(3_600_000), '1 h 0 min');
  assert.equal(fmtDuration(7_265_000), '2 h 1 min', 'seconds dropped from an hour on');
  assert.equal(fmtDuration(86_400_000), '24 h 0 min');
});

test('fmtClock: m:ss, h:mm:ss from an hour, 50 ms of slack before a second', () => {
  assert.equal(fmtClock(0), '0:00');
  assert.equal(fmtClock(undefined), '0:00');
  assert.equal(fmtClock(NaN), '0:00');
  assert.equal(fmtClock(-3), '0:00');
  assert.equal(fmtClock(4.2), '0:04');
  assert.equal(fmtClock(59.9), '0:59');
  assert.equal(fmtClock(59.96), '1:00', 'within 50 ms of the next second shows it');
  assert.equal(fmtClock(61), '1:01');
  assert.equal(fmtClock(3599), '59:59');
  assert.equal(fmtClock(3600), '1:00:00');
  assert.equal(fmtClock(3725), '1:02:05');
});

test('plural', () => {
  assert.equal(plural(0, 'event'), '0 events');
  assert.equal(plural(1, 'event'), '1 event');
  assert.equal(plural(2, 'new event'), '2 new events');
});

test('fmtBytes: decimal units, at most three significant digits', () => {
  assert.equal(fmtBytes(0), '0 B');
  assert.equal(fmtBytes(999), '999 B');
  assert.equal(fmtBytes(1000), '1 kB');
  assert.equal(fmtBytes(1500), '1.5 kB');
  assert.equal(fmtBytes(12_345_678), '12.3 MB');
  assert.equal(fmtBytes(4_560_000_000), '4.56 GB');
  assert.equal(fmtBytes(999_999), '1 MB');
  assert.equal(fmtBytes(-5), '0 B');
  assert.equal(fmtBytes('x'), '0 B');
});
