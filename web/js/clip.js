// How a clip plays. Pure: no DOM, no page state; web/js/player.js drives the <video>.
//
// An event's video is the byte range [start_offset, end_offset) of each of its segments, in
// index order. The page plays whole segments in one <video>, one after the other, each from
// the time where the event's bytes start to the time where they end; times come from byte
// offsets in proportion to the segment's size and duration, the start moved back to the
// keyframe at or before it (decoding starts on a keyframe anyway). This needs nothing from the
// segment files beyond being playable on their own (any MP4 or WebM a browser plays), where
// Media Source Extensions would need fragmented MP4 and codec strings; the cost is a short
// pause when playback crosses from one segment to the next. The scrubber and clock show the
// event's whole clip, across segments.
//
// A clip is { pieces, total, notes }: `pieces` in play order, each { url, from, to, len, base,
// index } (`from`/`to` seconds into its segment, `len` = to - from, `base` where it starts on
// the clip's timeline, `index` the segment's); `total` the clip's length in seconds; `notes`
// sentences about parts not reported yet.

import { plural } from './format.js';

export const SPEEDS = [0.5, 1, 1.5, 2, 4];

// Pieces shorter than this (seconds) are dropped.
const MIN_PIECE = 0.05;

// Seconds into a segment of `size` bytes and `dur` seconds at which byte `byte` plays, in
// proportion; 0 at or before the first byte, `dur` at or past the end.
export const byteToTime = (byte, size, dur) => (byte <= 0 ? 0 : byte >= size ? dur : (dur * byte) / size);

// `segments` as the API gives an event's: { index, url, size, duration_ms, start_offset,
// end_offset, keyframes? }, in any order. Segments without a URL, size or duration are
// skipped (their time is not on the clip's timeline).
export function buildClip(segments) {
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
    const from = byteToTime(startByte, size, dur);
    const to = Math.max(from, byteToTime(endByte, size, dur));
    if (to - from < MIN_PIECE) return;
    pieces.push({ url: s.url, from, to, len: to - from, base, index: s.index });
    base += to - from;
  });
  return { pieces, total: base, notes };
}

// The clip of a night digest: one whole file.
export const digestClip = (d) =>
  buildClip([{ index: 0, url: d.url, size: d.size, start_offset: 0, end_offset: d.size, duration_ms: d.duration_ms }]);

// The index of the piece that plays at clip time `t` (the last piece at or past the end).
export function pieceAt(clip, t) {
  const ps = clip.pieces;
  for (let i = 0; i < ps.length; i++) if (t < ps[i].base + ps[i].len) return i;
  return ps.length - 1;
}

// Where clip time `t` is: `t` clamped to the clip, the piece `i` and the time `local` into
// that piece's segment (kept 10 ms before the piece's end so the seek lands inside it).
export function locate(clip, t) {
  t = Math.max(0, Math.min(clip.total, t));
  const i = pieceAt(clip, t);
  const p = clip.pieces[i];
  return { t, i, local: Math.min(p.to - 0.01, p.from + (t - p.base)) };
}

// Clip time while piece `p` plays at `currentTime` seconds into its segment (0 with no piece).
export function clipTimeAt(p, currentTime) {
  if (!p) return 0;
  return p.base + Math.max(0, Math.min(p.len, currentTime - p.from));
}

// Whether piece `p` has played to its end (within 20 ms, so it stops on time, not late).
export const pastPieceEnd = (p, currentTime) => currentTime >= p.to - 0.02;

// The speed a step (-1 slower, +1 faster) from `rate` selects; null past either end.
export function stepSpeed(rate, step) {
  const i = SPEEDS.indexOf(rate) + step;
  return i >= 0 && i < SPEEDS.length ? SPEEDS[i] : null;
}
