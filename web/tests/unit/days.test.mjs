// web/js/days.js: the calendar answer, which day opens, neighbouring days with events, heat
// levels, the grid's keyboard moves, the page label and the type filter's options.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  countOf, gridKeyTarget, heatLevel, leadingPad, neighbourDays, normalizeDays, pageLabel, pickDay, typeOptions,
} from '../../js/days.js';

// Newest first, as the API answers: today (the 10th) has none, the 9th 3, the 6th 1.
const days = [
  { date: '2024-03-10', events: 0 },
  { date: '2024-03-09', events: 3 },
  { date: '2024-03-08', events: 0 },
  { date: '2024-03-07', events: 0 },
  { date: '2024-03-06', events: 1 },
  { date: '2024-03-05', events: 0 },
];

test('normalizeDays: string dates, numeric counts and bytes, anything else empty', () => {
  assert.deepEqual(normalizeDays(null), []);
  assert.deepEqual(normalizeDays({}), []);
  assert.deepEqual(normalizeDays({ days: 'no' }), []);
  const days = [{ date: '2024-03-10', events: '4', bytes: 1500 }, { date: '2024-03-09' }, { date: '2024-03-08', events: 'x', bytes: 'y' }];
  assert.deepEqual(normalizeDays({ days }), [
    { date: '2024-03-10', events: 4, bytes: 1500 },
    { date: '2024-03-09', events: 0, bytes: 0 },
    { date: '2024-03-08', events: 0, bytes: 0 },
  ]);
});

test('countOf: a day not in the calendar counts 0', () => {
  assert.equal(countOf(days, '2024-03-09'), 3);
  assert.equal(countOf(days, '2024-03-08'), 0);
  assert.equal(countOf(days, '2024-02-01'), 0);
  assert.equal(countOf([], null), 0);
});

test('pickDay: the address day when in the calendar, even an empty one', () => {
  assert.equal(pickDay(days, '2024-03-08'), '2024-03-08');
  assert.equal(pickDay(days, '2024-03-06'), '2024-03-06');
});

test('pickDay: otherwise today if it has events, else the latest day with events, else today', () => {
  assert.equal(pickDay(days, null), '2024-03-09', 'today is empty: the latest day with events');
  assert.equal(pickDay(days, '2023-01-01'), '2024-03-09', 'a day older than the 30 is ignored');
  const busyToday = [{ date: '2024-03-10', events: 2 }, ...days.slice(1)];
  assert.equal(pickDay(busyToday, null), '2024-03-10');
  const quiet = days.map((d) => ({ ...d, events: 0 }));
  assert.equal(pickDay(quiet, null), '2024-03-10', 'no events at all: today');
  assert.equal(pickDay([], null), undefined, 'an empty calendar picks nothing');
});

test('neighbourDays: the nearest earlier and later days with events, skipping empty ones', () => {
  assert.deepEqual(neighbourDays(days, '2024-03-09'), { prev: '2024-03-06', next: null });
  assert.deepEqual(neighbourDays(days, '2024-03-06'), { prev: null, next: '2024-03-09' });
  assert.deepEqual(neighbourDays(days, '2024-03-08'), { prev: '2024-03-06', next: '2024-03-09' }, 'from an empty day');
  assert.deepEqual(neighbourDays(days, '2024-03-10'), { prev: '2024-03-09', next: null }, 'today: nothing later');
  assert.deepEqual(neighbourDays(days, '2024-03-05'), { prev: null, next: '2024-03-06' }, 'the oldest day: nothing earlier');
  assert.deepEqual(neighbourDays(days, '2024-01-01'), { prev: null, next: null }, 'a day not shown');
  assert.deepEqual(neighbourDays(days, null), { prev: null, next: null });
  assert.deepEqual(neighbourDays([{ date: '2024-03-10', events: 5 }], '2024-03-10'), { prev: null, next: null });
});

test('heatLevel: 0 for none, 4 for the busiest, at least 1 for any, square-root scale', () => {
  assert.equal(heatLevel(0, 10), 0);
  assert.equal(heatLevel(0, 0), 0);
  assert.equal(heatLevel(10, 10), 4);
  assert.equal(heatLevel(1, 1000), 1, 'one event still shows');
  assert.equal(heatLevel(25, 100), 2); // 4 * sqrt(0.25) = 2
  assert.equal(heatLevel(26, 100), 3);
  assert.equal(heatLevel(56, 100), 3); // 4 * sqrt(0.56) = 2.99
  assert.equal(heatLevel(57, 100), 4);
});

test('leadingPad: empty cells so weeks start on Monday', () => {
  assert.equal(leadingPad([]), 0);
  assert.equal(leadingPad([{ date: '2024-01-01', events: 0 }]), 0, 'oldest day a Monday');
  assert.equal(leadingPad([{ date: '2024-01-07', events: 0 }]), 6, 'oldest day a Sunday');
  assert.equal(leadingPad([{ date: '2024-02-29', events: 0 }, { date: '2024-03-01', events: 0 }]), 3);
});

test('gridKeyTarget: a day, a week, the ends, clamped; other keys do nothing', () => {
  assert.equal(gridKeyTarget('ArrowLeft', 5, 30), 4);
  assert.equal(gridKeyTarget('ArrowRight', 5, 30), 6);
  assert.equal(gridKeyTarget('ArrowUp', 10, 30), 3);
  assert.equal(gridKeyTarget('ArrowDown', 10, 30), 17);
  assert.equal(gridKeyTarget('ArrowLeft', 0, 30), 0, 'clamped at the oldest day');
  assert.equal(gridKeyTarget('ArrowRight', 29, 30), 29, 'clamped at today');
  assert.equal(gridKeyTarget('ArrowUp', 3, 30), 0);
  assert.equal(gridKeyTarget('ArrowDown', 27, 30), 29);
  assert.equal(gridKeyTarget('Home', 12, 30), 0);
  assert.equal(gridKeyTarget('End', 12, 30), 29);
  assert.equal(gridKeyTarget('Enter', 12, 30), null);
  assert.equal(gridKeyTarget('a', 12, 30), null);
});

test('pageLabel: nothing for one page, "of N" from the day count, no total when filtered', () => {
  assert.equal(pageLabel({ type: '', next: null, page: 0 }, 7), '');
  assert.equal(pageLabel({ type: '', next: 'c1', page: 0 }, 25), 'Page 1 of 3');
  assert.equal(pageLabel({ type: '', next: null, page: 2 }, 25), 'Page 3 of 3');
  assert.equal(pageLabel({ type: '', next: 'c1', page: 0 }, 20), 'Page 1 of 2', 'exactly two pages');
  assert.equal(pageLabel({ type: '', next: 'c1', page: 0 }, 21), 'Page 1 of 3');
  assert.equal(pageLabel({ type: 'person', next: null, page: 0 }, 25), 'Page 1', 'the calendar counts all types');
  assert.equal(pageLabel({ type: 'person', next: 'c', page: 1 }, 25), 'Page 2');
  assert.equal(pageLabel({ type: '', next: 'c', page: 0 }, 0), 'Page 1 of 1', 'a count not refreshed yet');
});

test('typeOptions: the types seen, plus the filtered one, sorted, once each', () => {
  assert.deepEqual(typeOptions(new Set(['sound', 'motion', 'person']), ''), ['motion', 'person', 'sound']);
  assert.deepEqual(typeOptions(new Set(['motion']), 'person'), ['motion', 'person'], 'a type from the address');
  assert.deepEqual(typeOptions(new Set(['motion']), 'motion'), ['motion']);
  assert.deepEqual(typeOptions(undefined, 'person'), ['person'], 'a camera not listed yet');
  assert.deepEqual(typeOptions(undefined, ''), []);
  const seen = new Set(['b', 'a']);
  typeOptions(seen, 'c');
  assert.deepEqual([...seen], ['b', 'a'], 'the seen set is not changed');
});
