// web/js/state.js: the view state object, the address fragment, the refresh interval.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PAGE_SIZE, createViewState, formatHash, parseHash, pollMs } from '../../js/state.js';

test('createViewState: nothing chosen yet; each call a separate object', () => {
  const a = createViewState();
  assert.equal(a.device, null);
  assert.equal(a.day, null);
  assert.equal(a.type, '');
  assert.deepEqual(a.cursors, [null]);
  assert.equal(a.page, 0);
  assert.equal(a.gen, 0);
  a.cursors.push('c');
  a.types.set('cam-1', new Set(['motion']));
  a.days.push({ date: '2024-03-10', events: 1 });
  const b = createViewState();
  assert.deepEqual(b.cursors, [null], 'no shared lists');
  assert.equal(b.types.size, 0);
  assert.deepEqual(b.days, []);
  assert.equal(PAGE_SIZE, 10);
});

test('parseHash: camera, day and type; missing ones null (type empty)', () => {
  assert.deepEqual(parseHash(''), { cam: null, day: null, type: '' });
  assert.deepEqual(parseHash('#'), { cam: null, day: null, type: '' });
  assert.deepEqual(parseHash('#cam=cam-1&day=2024-03-31&type=person'), { cam: 'cam-1', day: '2024-03-31', type: 'person' });
  assert.deepEqual(parseHash('#day=2024-03-31&other=1'), { cam: null, day: '2024-03-31', type: '' });
  assert.deepEqual(parseHash('#cam=front%20door%26yard'), { cam: 'front door&yard', day: null, type: '' });
});

test('formatHash: only what is set, and parseHash reads it back', () => {
  assert.equal(formatHash({ device: null, day: null, type: '' }), '#');
  assert.equal(formatHash({ device: 'cam-1', day: '2024-03-31', type: '' }), '#cam=cam-1&day=2024-03-31');
  const view = { device: 'front door&yard/1', day: '2024-02-29', type: 'person' };
  assert.deepEqual(parseHash(formatHash(view)), { cam: view.device, day: view.day, type: view.type });
});

test('pollMs: 30 s, or ?poll=SECONDS of at least 1 s', () => {
  assert.equal(pollMs(''), 30_000);
  assert.equal(pollMs('?poll=1'), 1_000);
  assert.equal(pollMs('?x=2&poll=5'), 5_000);
  assert.equal(pollMs('?poll=0.2'), 1_000, 'at least a second');
  assert.equal(pollMs('?poll=-5'), 1_000);
  assert.equal(pollMs('?poll=0'), 30_000, '0 is not a setting');
  assert.equal(pollMs('?poll=soon'), 30_000);
});
