// A day's events (the day card): picking a day, its header and neighbours, pages of its
// events, the type filter and the "new events" offer. Reads and changes the view state
// (state.js); plays events with `player` (player.js).

import { $, el } from './dom.js';
import { STATUS, cameraOffsetText, eventTimeText, fmtDayLong, fmtDayShort, fmtDuration, plural, toDate } from './format.js';
import { countOf, neighbourDays, pageLabel, typeOptions } from './days.js';
import { PAGE_SIZE, writeHash } from './state.js';
import { SignedOut, explain } from './api.js';
import { markSelectedDay, renderZone } from './calendar.js';

// In place of a snapshot: a placeholder the eye reads; the row's name says nothing of it. Its
// words are the stylesheet's (`::after`), not a text node: a row's visible text must be part of
// its accessible name (WCAG 2.5.3, Label in Name), and a placeholder is not worth naming.
const noSnapshot = () => el('span', { class: 'thumb none', 'data-placeholder': 'no snapshot', 'aria-hidden': 'true' });

const skeleton = () => [el('div', { class: 'skeleton' }), el('div', { class: 'skeleton' })];

export function createDay({ api, view, player }) {
  function selectDay(date, { focus = true } = {}) {
    if (!date) return;
    view.day = date;
    view.cursors = [null];
    view.page = 0;
    writeHash(view);
    markSelectedDay(date);
    renderDayNav();
    $('day-title').textContent = fmtDayLong(date) + (date === view.days[0]?.date ? ' (today)' : '');
    loadPage();
    if (focus) $('day-title').focus();
  }

  function renderDayNav() {
    const { prev, next } = neighbourDays(view.days, view.day);
    $('prev-day').disabled = !prev;
    $('next-day').disabled = !next;
    $('prev-day').setAttribute('aria-label', prev ? `Previous day with events: ${fmtDayShort(prev)}` : 'No earlier day with events');
    $('next-day').setAttribute('aria-label', next ? `Next day with events: ${fmtDayShort(next)}` : 'No later day with events');
    $('prev-day').title = $('prev-day').getAttribute('aria-label');
    $('next-day').title = $('next-day').getAttribute('aria-label');
  }

  function renderDaySub() {
    const n = countOf(view.days, view.day);
    const parts = [plural(n, 'event')];
    if (view.type) parts.push(`showing ${view.type} only`);
    if (view.cameraOffset) parts.push(`camera day in ${view.cameraOffset}`);
    $('day-sub').textContent = parts.join(' · ');
    $('page-label').textContent = pageLabel(view, n);
  }

  function setPager(prev, next) {
    $('prev-page').disabled = !prev;
    $('next-page').disabled = !next;
  }

  // The list while a camera's calendar loads, and in place of it when that failed.
  function showLoading() {
    $('events').replaceChildren(...skeleton());
  }
  function showFailure(text) {
    $('events').replaceChildren(el('p', { class: 'empty', text }));
    setPager(false, false);
  }

  async function loadPage() {
    const gen = ++view.gen;
    const { device, day, type } = view;
    $('refresh-day').hidden = true;
    $('events').setAttribute('aria-busy', 'true');
    if (!$('events').querySelector('.event')) $('events').replaceChildren(...skeleton());
    setPager(false, false);
    const q = new URLSearchParams({ date: day, limit: String(PAGE_SIZE) });
    if (type) q.set('type', type);
    const cursor = view.cursors[view.page];
    if (cursor) q.set('cursor', cursor);
    let page;
    try {
      page = await api.get(`/v1/devices/${encodeURIComponent(device)}/events?${q}`);
    } catch (e) {
      if (e instanceof SignedOut || gen !== view.gen) return;
      $('events').removeAttribute('aria-busy');
      $('events').replaceChildren(el('p', { class: 'empty' }, explain(e, 'This day\u2019s events', view.device), ' ',
        el('button', { type: 'button', class: 'ghost', text: 'Try again', onclick: loadPage })));
      setPager(view.page > 0, false);
      return;
    }
    if (gen !== view.gen) return;
    view.cameraOffset = cameraOffsetText(page?.utc_offset) ?? view.cameraOffset;
    view.shownCount = countOf(view.days, day);
    const events = Array.isArray(page?.events) ? page.events : [];
    view.next = page?.next_cursor || null;
    view.cursors[view.page + 1] = view.next;
    const seen = view.types.get(device) ?? new Set();
    for (const e of events) if (e.type) seen.add(String(e.type));
    view.types.set(device, seen);
    renderTypes();
    $('events').removeAttribute('aria-busy');
    $('events').replaceChildren(...(events.length ? events.map(eventRow) : [emptyDay()]));
    setPager(view.page > 0, Boolean(view.next));
    renderDaySub();
    renderZone(view);
  }

  function emptyDay() {
    if (view.type)
      return el('p', { class: 'empty' }, `No ${view.type} events on this day. `,
        el('button', { type: 'button', class: 'ghost', text: 'Show all types', onclick: () => setType('') }));
    if (view.page > 0) return el('p', { class: 'empty', text: 'No more events on this day.' });
    const latest = view.days.find((d) => d.events > 0);
    if (!latest)
      return el('p', { class: 'empty', text: `No events from ${view.device} in the last 30 days. New events show up here within seconds of the camera reporting them.` });
    return el('p', { class: 'empty' }, 'No events on this day. Shaded days in the calendar have events. ',
      el('button', { type: 'button', class: 'ghost', text: `Go to ${fmtDayShort(latest.date)}`, onclick: () => selectDay(latest.date) }));
  }

  function eventRow(e) {
    const time = eventTimeText(toDate(e.triggered_at), view.day);
    const status = STATUS[e.status] ?? String(e.status ?? '');
    const dur = fmtDuration(e.duration_ms) ?? (e.status === 'open' ? 'ongoing' : '—');
    const thumb = e.snapshot_url
      ? el('img', { class: 'thumb', src: e.snapshot_url, alt: '', loading: 'lazy', decoding: 'async', width: 96, height: 60 })
      : noSnapshot();
    if (thumb.tagName === 'IMG') thumb.addEventListener('error', () => thumb.replaceWith(noSnapshot()), { once: true });
    // The name says what the row shows, in its order (WCAG 2.5.3, Label in Name), then the action.
    const what = `${e.type} · ${dur}`;
    return el('button', {
      type: 'button', class: 'event', 'data-event-id': e.event_id,
      'aria-label': `${time}, ${what}, ${status}${e.kept ? ', kept' : ''}. Play`, onclick: () => player.openEvent(e),
    }, thumb,
    el('span', {}, el('span', { class: 'time', text: time }), e.kept ? el('span', { class: 'kept', text: 'Kept' }) : null,
      ' ', el('span', { class: 'what', text: what })), ' ',
    el('span', { class: `status ${e.status}`, text: status }));
  }

  function renderTypes() {
    const select = $('type-filter');
    const types = typeOptions(view.types.get(view.device), view.type);
    select.replaceChildren(el('option', { value: '', text: 'All types' }), ...types.map((t) => el('option', { value: t, text: t })));
    select.value = view.type;
  }

  function setType(type) {
    view.type = type;
    view.cursors = [null];
    view.page = 0;
    writeHash(view);
    renderTypes();
    loadPage();
  }

  // After a calendar refresh: the header and neighbours again, and an offer to show the day's
  // `grew` events that came after its list was loaded.
  function offerNew(grew) {
    renderDaySub();
    renderDayNav();
    if (grew > 0) {
      const btn = $('refresh-day');
      btn.textContent = `${plural(grew, 'new event')} — show`;
      btn.hidden = false;
    }
  }

  $('prev-day').addEventListener('click', () => selectDay(neighbourDays(view.days, view.day).prev));
  $('next-day').addEventListener('click', () => selectDay(neighbourDays(view.days, view.day).next));
  $('type-filter').addEventListener('change', (ev) => setType(ev.target.value));
  $('digest-btn').addEventListener('click', () => player.openDigest());
  $('refresh-day').addEventListener('click', () => loadPage());
  $('prev-page').addEventListener('click', () => {
    if (view.page > 0) {
      view.page -= 1;
      loadPage();
    }
  });
  $('next-page').addEventListener('click', () => {
    if (view.next) {
      view.page += 1;
      loadPage();
    }
  });

  // An event the viewer deleted: its row goes at once (the deletion is durable; the store
  // drops it within a second or so), and the day reloads once the calendar's count has.
  function dropEvent(id) {
    const row = [...$('events').querySelectorAll('.event')].find((b) => b.dataset.eventId === id);
    row?.remove();
    if (!$('events').querySelector('.event')) $('events').replaceChildren(emptyDay());
  }

  // An event the viewer kept or let go: its row is drawn again with the mark.
  function markKept(e) {
    const row = [...$('events').querySelectorAll('.event')].find((b) => b.dataset.eventId === e.event_id);
    row?.replaceWith(eventRow(e));
  }

  return { selectDay, renderTypes, showLoading, showFailure, offerNew, dropEvent, markKept };
}
