// The player dialog (#player): an event's clip or a day's night digest in one <video>, piece
// by piece (clip.js says how a clip is built and where a time is), with play/pause, scrubber,
// clock, speed, keys, and errors explained. Owns the playback state; reads the view state
// for the camera and day.

import { $, el } from './dom.js';
import { STATUS, eventWhenText, fmtClock, fmtDayShort, fmtDuration, localZone, toDate } from './format.js';
import { buildClip, clipTimeAt, digestClip, locate, pastPieceEnd, stepSpeed } from './clip.js';
import { ApiError, SignedOut, explain } from './api.js';
import { mayManage } from './session.js';

// `session` says whether the viewer may delete or keep the event shown; `onDeleted(event)` is
// told once a deletion is accepted (the dialog has closed), `onKept(event)` once a keep or an
// un-keep is (`event.kept` says which).
export function createPlayer({ api, view, session = null, onDeleted = () => {}, onKept = () => {} }) {
  const dialog = $('player');
  const video = $('video');
  // clip: what plays (clip.js); i: the piece loaded in the <video> (-1 none); pendingSeek: where
  // to seek once the piece's metadata loads; rate: the chosen speed; raf: the frame watch;
  // dragging: the scrubber is held; reload: opens what plays again (fresh presigned links);
  // refreshed: reload was used once already; ended: the clip played to its end.
  const P = { clip: null, i: -1, pendingSeek: null, rate: 1, raf: 0, dragging: false, reload: null, refreshed: false, ended: false, event: null };

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
    P.event = null;
    showManage(false);
    playerMessage('Loading…');
    if (!dialog.open) dialog.showModal();
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
    const when = eventWhenText(toDate(e.triggered_at));
    const dur = fmtDuration(e.duration_ms) ?? (e.status === 'open' ? 'still recording' : 'length unknown');
    openPlayer(`${e.type} · ${when}`, `${dur} · ${STATUS[e.status] ?? e.status} · ${localZone} · camera ${view.device}`);
    P.reload = () => openEvent(e);
    P.refreshed = false;
    P.event = e;
    showManage(mayManage(session?.claims));
    await loadEventClip(e, 0);
  }

  // The delete button (a managing viewer, an event shown), its confirmation folded away.
  function showManage(on) {
    $('player-manage').hidden = !on;
    $('delete-confirm').hidden = true;
    $('delete-event').hidden = false;
    $('delete-event').disabled = false;
    $('delete-status').textContent = '';
    $('keep-status').textContent = '';
    showKept(Boolean(P.event?.kept));
  }

  // The keep toggle: pressed while the event is kept.
  function showKept(kept) {
    const button = $('keep-event');
    button.setAttribute('aria-pressed', String(kept));
    button.textContent = kept ? 'Kept past retention' : 'Keep past retention';
    button.disabled = false;
  }

  async function toggleKeep() {
    const e = P.event;
    if (!e) return;
    const keep = !e.kept;
    $('keep-event').disabled = true;
    $('keep-status').textContent = keep ? 'Keeping…' : 'Letting it go…';
    try {
      const path = `/v1/events/${encodeURIComponent(e.event_id)}/keep`;
      await (keep ? api.put(path) : api.del(path));
    } catch (err) {
      if (err instanceof SignedOut) return;
      showKept(Boolean(e.kept));
      $('keep-status').textContent = err instanceof ApiError && err.code === 'kept_limit'
        ? 'This camera keeps as many events as it may. Un-keep another one first.'
        : err instanceof ApiError && err.code === 'past_retention'
          ? 'This event is past the camera\u2019s retention: it can no longer be kept.'
          : err instanceof ApiError && err.status === 403
            ? 'This token may watch this camera but not keep its events.'
            : 'That did not go through. Try again.';
      return;
    }
    e.kept = keep;
    if (P.event !== e) return;
    showKept(keep);
    $('keep-status').textContent = keep
      ? 'Kept: it stays, with its video, past the camera\u2019s retention until you un-keep it.'
      : 'No longer kept: it goes with its day, at the end of the camera\u2019s retention.';
    onKept(e);
  }

  function askDelete() {
    $('delete-event').hidden = true;
    $('delete-confirm').hidden = false;
    $('delete-no').focus();
  }

  function cancelDelete() {
    $('delete-confirm').hidden = true;
    $('delete-event').hidden = false;
    $('delete-event').focus();
  }

  async function confirmDelete() {
    const e = P.event;
    if (!e) return;
    for (const id of ['delete-yes', 'delete-no']) $(id).disabled = true;
    $('delete-status').textContent = 'Deleting…';
    try {
      await api.del(`/v1/events/${encodeURIComponent(e.event_id)}`);
    } catch (err) {
      if (err instanceof SignedOut) return;
      for (const id of ['delete-yes', 'delete-no']) $(id).disabled = false;
      // Deleted already (by another tab, or a retry after the first went through).
      if (!(err instanceof ApiError && err.status === 404)) {
        $('delete-status').textContent = err instanceof ApiError && err.status === 403
          ? 'This token may watch this camera but not delete its events.'
          : 'The deletion did not go through. Try again.';
        return;
      }
    }
    for (const id of ['delete-yes', 'delete-no']) $(id).disabled = false;
    if (P.event === e && dialog.open) dialog.close();
    onDeleted(e);
  }

  // The event with all its segments: the API pages them (at most 2048 per event, 200 a page).
  async function eventDetail(id) {
    const path = `/v1/events/${encodeURIComponent(id)}?limit=200`;
    const detail = await api.get(path);
    const segments = Array.isArray(detail?.segments) ? [...detail.segments] : [];
    let cursor = detail?.next_cursor;
    while (cursor && dialog.open) {
      const page = await api.get(`${path}&cursor=${encodeURIComponent(cursor)}`);
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
      playerMessage(explain(err, 'This event', view.device), { label: 'Try again', run: () => loadEventClip(e, at) });
      return;
    }
    if (!dialog.open) return;
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
    if (!view.day) return;
    openPlayer(`Night digest · ${fmtDayShort(view.day)}`, `camera ${view.device}`);
    P.reload = openDigest;
    P.refreshed = false;
    let d;
    try {
      d = await api.get(`/v1/devices/${encodeURIComponent(view.device)}/digests/${view.day}`);
    } catch (err) {
      if (err instanceof SignedOut) return;
      playerMessage(err instanceof ApiError && err.status === 404
        ? 'No digest for this day yet. Cameras upload a day\u2019s digest during the following night.'
        : explain(err, 'The digest', view.device));
      return;
    }
    if (!dialog.open) return;
    $('player-meta').textContent = `${fmtDuration(d.duration_ms) ?? ''} · camera ${view.device}`;
    startClip(digestClip(d), 0);
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
    if (!dialog.contains(focus) || focus === $('player-close')) $('play').focus();
    seekClip(at, true);
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
    P.ended = false;
    const at = locate(P.clip, t);
    loadPiece(at.i, at.local, play);
    renderClock(at.t);
  }

  const clipTime = () => clipTimeAt(P.clip?.pieces[P.i], video.currentTime);

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
    if (p && !video.paused && !video.seeking && pastPieceEnd(p, video.currentTime)) advance();
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
      const rate = stepSpeed(P.rate, ev.key === '[' ? -1 : 1);
      if (rate != null) setSpeed(rate);
    }
  }

  // Closes the dialog if it is open (its 'close' handler stops the video).
  function close() {
    if (dialog.open) dialog.close();
  }

  $('player-close').addEventListener('click', () => dialog.close());
  $('keep-event').addEventListener('click', toggleKeep);
  $('delete-event').addEventListener('click', askDelete);
  $('delete-no').addEventListener('click', cancelDelete);
  $('delete-yes').addEventListener('click', confirmDelete);
  dialog.addEventListener('close', stopVideo);
  dialog.addEventListener('keydown', onPlayerKey);
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
  video.addEventListener('waiting', () => $('player-msg').hidden && dialog.classList.add('buffering'));
  video.addEventListener('playing', () => dialog.classList.remove('buffering'));
  video.addEventListener('click', togglePlay);

  return { openEvent, openDigest, close };
}
