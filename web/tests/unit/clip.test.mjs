// web/js/clip.js: building a clip from an event's segments (byte ranges to times, keyframes,
// missing and partial segments) and finding a time in it (piece edges, clamping).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPEEDS, buildClip, byteToTime, clipTimeAt, digestClip, locate, pastPieceEnd, pieceAt, stepSpeed } from '../../js/clip.js';

const near = (actual, expected, what = '') => assert.ok(Math.abs(actual - expected) < 1e-9, `${what} ${actual} ≠ ${expected}`);

// A 4 s segment of 1000 bytes (4 ms a byte), as the browser test's fixtures are.
const seg = (index, start_offset, end_offset, extra = {}) =>
  ({ index, url: `https://s3/seg-${index}`, size: 1000, duration_ms: 4000, start_offset, end_offset, ...extra });

test('byteToTime: in proportion, 0 at or before the first byte, the duration at or past the end', () => {
  assert.equal(byteToTime(0, 1000, 4), 0);
  assert.equal(byteToTime(-10, 1000, 4), 0);
  assert.equal(byteToTime(250, 1000, 4), 1);
  assert.equal(byteToTime(500, 1000, 4), 2);
  assert.equal(byteToTime(999, 1000, 4), 3.996);
  assert.equal(byteToTime(1000, 1000, 4), 4, 'the last byte edge is the end');
  assert.equal(byteToTime(5000, 1000, 4), 4, 'past the end');
});

test('buildClip: no segments, no clip', () => {
  assert.deepEqual(buildClip([]), { pieces: [], total: 0, notes: [] });
});

test('buildClip: a whole segment plays from 0 to its duration', () => {
  const clip = buildClip([seg(0, 0, 1000)]);
  assert.deepEqual(clip, { pieces: [{ url: 'https://s3/seg-0', from: 0, to: 4, len: 4, base: 0, index: 0 }], total: 4, notes: [] });
});

test('buildClip: an event across two segments (second half of one, first half of the next)', () => {
  const clip = buildClip([seg(0, 500, 1000), seg(1, 0, 500)]);
  assert.equal(clip.pieces.length, 2);
  assert.deepEqual(clip.pieces[0], { url: 'https://s3/seg-0', from: 2, to: 4, len: 2, base: 0, index: 0 });
  assert.deepEqual(clip.pieces[1], { url: 'https://s3/seg-1', from: 0, to: 2, len: 2, base: 2, index: 1 });
  assert.equal(clip.total, 4);
  assert.deepEqual(clip.notes, []);
});

test('buildClip: segments are played in index order, whatever order the API lists them in', () => {
  const clip = buildClip([seg(2, 0, 1000), seg(0, 0, 1000), seg(1, 0, 1000)]);
  assert.deepEqual(clip.pieces.map((p) => [p.index, p.base]), [[0, 0], [1, 4], [2, 8]]);
  assert.equal(clip.total, 12);
});

test('buildClip: the start moves back to the keyframe at or before it', () => {
  const back = buildClip([seg(0, 500, 1000, { keyframes: [0, 300, 600] })]).pieces[0];
  near(back.from, 1.2, 'to the keyframe at byte 300');
  assert.equal(back.to, 4);
  near(back.len, 2.8);
  const on = buildClip([seg(0, 600, 1000, { keyframes: [0, 300, 600] })]).pieces[0];
  near(on.from, 2.4, 'a keyframe exactly at the start');
  const none = buildClip([seg(0, 500, 1000, { keyframes: [600, 900] })]).pieces[0];
  near(none.from, 2, 'no keyframe before the start: the start as reported');
  const bad = buildClip([seg(0, 500, 1000, { keyframes: 'no' })]).pieces[0];
  near(bad.from, 2, 'keyframes that are not a list are ignored');
});

test('buildClip: byte offsets at the segment edges', () => {
  assert.deepEqual(buildClip([seg(0, 0, 1000)]).pieces.map((p) => [p.from, p.to]), [[0, 4]], '[0, size): the whole segment');
  assert.deepEqual(buildClip([seg(0, 1000, 1000)]).pieces, [], 'starting at the end: nothing to play');
  assert.deepEqual(buildClip([seg(0, 1200, 1500)]).pieces, [], 'a range past the end: nothing to play');
  assert.deepEqual(buildClip([seg(0, 0, 5000)]).pieces.map((p) => p.to), [4], 'an end past the size stops at the end');
  assert.deepEqual(buildClip([seg(0, -40, 250)]).pieces.map((p) => [p.from, p.to]), [[0, 1]], 'a negative start is the first byte');
  assert.deepEqual(buildClip([seg(0, 250, undefined)]).pieces.map((p) => [p.from, p.to]), [[1, 4]], 'no end: to the end of the segment');
  assert.deepEqual(buildClip([seg(0, undefined, 500)]).pieces.map((p) => [p.from, p.to]), [[0, 2]], 'no start: from the first byte');
});

test('buildClip: pieces shorter than 50 ms are dropped and take no time on the clip', () => {
  const clip = buildClip([seg(0, 990, 1000), seg(1, 0, 500)]); // 40 ms, then 2 s
  assert.equal(clip.pieces.length, 1);
  assert.equal(clip.pieces[0].index, 1);
  assert.equal(clip.pieces[0].base, 0);
  assert.equal(clip.total, 2);
  assert.equal(buildClip([seg(0, 987, 1000)]).pieces.length, 1, '52 ms is kept');
});

test('buildClip: segments without a URL, size or duration are skipped', () => {
  const clip = buildClip([
    seg(0, 0, 1000, { url: '' }),
    seg(1, 0, 1000, { size: 0 }),
    seg(2, 0, 1000, { duration_ms: 0 }),
    seg(3, 0, 1000, { duration_ms: 'x' }),
    seg(4, 0, 1000, { size: -5 }),
    seg(5, 0, 1000),
  ]);
  assert.deepEqual(clip.pieces.map((p) => [p.index, p.base]), [[5, 0]]);
  assert.equal(clip.total, 4);
  assert.deepEqual(clip.notes, [], 'reported segments are not "missing" ones');
});

test('buildClip: numbers sent as strings', () => {
  const clip = buildClip([{ index: 0, url: 'u', size: '1000', duration_ms: '4000', start_offset: '500', end_offset: '750' }]);
  assert.deepEqual(clip.pieces.map((p) => [p.from, p.to]), [[2, 3]]);
});

test('buildClip: parts not reported yet are noted, and the clip plays what is there', () => {
  const late = buildClip([seg(2, 0, 1000)]);
  assert.deepEqual(late.notes, ['the first 2 parts of this clip have not been reported yet']);
  assert.equal(late.total, 4);
  assert.deepEqual(buildClip([seg(1, 0, 1000)]).notes, ['the first 1 part of this clip have not been reported yet']);
  const gap = buildClip([seg(0, 0, 1000), seg(2, 0, 1000), seg(3, 0, 1000)]);
  assert.deepEqual(gap.notes, ['part 2 of this clip has not been reported yet']);
  assert.deepEqual(gap.pieces.map((p) => p.base), [0, 4, 8], 'the gap takes no time');
});

test('digestClip: the whole file', () => {
  const clip = digestClip({ url: 'https://s3/digest', size: 4096, duration_ms: 90_000 });
  assert.deepEqual(clip, { pieces: [{ url: 'https://s3/digest', from: 0, to: 90, len: 90, base: 0, index: 0 }], total: 90, notes: [] });
  assert.deepEqual(digestClip({ url: 'https://s3/digest', size: 4096, duration_ms: null }).pieces, [], 'no duration: nothing to play');
});

// Two 2 s pieces: seconds 2–4 of segment 0, then 0–2 of segment 1.
const two = () => buildClip([seg(0, 500, 1000), seg(1, 0, 500)]);

test('pieceAt: a time on a piece edge belongs to the later piece; past the end, the last', () => {
  const clip = two();
  assert.equal(pieceAt(clip, 0), 0);
  assert.equal(pieceAt(clip, 1.999), 0);
  assert.equal(pieceAt(clip, 2), 1, 'the edge');
  assert.equal(pieceAt(clip, 3.5), 1);
  assert.equal(pieceAt(clip, 4), 1, 'the very end');
  assert.equal(pieceAt(clip, 99), 1);
  assert.equal(pieceAt(clip, -1), 0);
});

test('locate: clip time to a piece and a time in its segment', () => {
  const clip = two();
  assert.deepEqual(locate(clip, 0), { t: 0, i: 0, local: 2 });
  assert.deepEqual(locate(clip, 1.5), { t: 1.5, i: 0, local: 3.5 });
  assert.deepEqual(locate(clip, 2), { t: 2, i: 1, local: 0 }, 'the edge starts the next segment');
  assert.deepEqual(locate(clip, 3), { t: 3, i: 1, local: 1 });
  assert.deepEqual(locate(clip, -5), { t: 0, i: 0, local: 2 }, 'before the start: the start');
  assert.deepEqual(locate(clip, 4), { t: 4, i: 1, local: 1.99 }, 'the end stays 10 ms inside the last piece');
  assert.deepEqual(locate(clip, 60), { t: 4, i: 1, local: 1.99 }, 'past the end: the end');
  const one = buildClip([seg(0, 0, 1000)]);
  assert.deepEqual(locate(one, 1.7), { t: 1.7, i: 0, local: 1.7 });
});

test('clipTimeAt: a segment time back to clip time, clamped to the piece; the inverse of locate', () => {
  const clip = two();
  assert.equal(clipTimeAt(undefined, 3), 0, 'no piece loaded');
  assert.equal(clipTimeAt(clip.pieces[0], 3), 1);
  assert.equal(clipTimeAt(clip.pieces[0], 0.5), 0, 'before the event’s bytes (the keyframe lead-in)');
  assert.equal(clipTimeAt(clip.pieces[0], 4.3), 2, 'past the piece');
  assert.equal(clipTimeAt(clip.pieces[1], 0), 2);
  assert.equal(clipTimeAt(clip.pieces[1], 1.25), 3.25);
  for (const t of [0, 0.5, 1.98, 2, 2.75, 3.9]) {
    const at = locate(clip, t);
    near(clipTimeAt(clip.pieces[at.i], at.local), t, `t=${t}`);
  }
  // Within 10 ms of a piece's end a seek lands 10 ms before it, inside the piece.
  const edge = locate(clip, 1.999);
  assert.equal(edge.i, 0);
  near(clipTimeAt(clip.pieces[0], edge.local), 1.99, 't=1.999');
});

test('pastPieceEnd: within 20 ms of the piece’s end', () => {
  const p = two().pieces[0]; // to = 4
  assert.equal(pastPieceEnd(p, 3.97), false);
  assert.equal(pastPieceEnd(p, 3.98), true);
  assert.equal(pastPieceEnd(p, 4.5), true);
});

test('stepSpeed: one step along the speeds, null past either end', () => {
  assert.deepEqual(SPEEDS, [0.5, 1, 1.5, 2, 4]);
  assert.equal(stepSpeed(1, 1), 1.5);
  assert.equal(stepSpeed(1, -1), 0.5);
  assert.equal(stepSpeed(2, 1), 4);
  assert.equal(stepSpeed(4, 1), null);
  assert.equal(stepSpeed(0.5, -1), null);
  assert.equal(stepSpeed(3, 1), 0.5, 'from a speed not on the list, up goes to the slowest');
  assert.equal(stepSpeed(3, -1), null);
});
