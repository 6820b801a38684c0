// The owner's copy of the camera shown, for a managing viewer (docs/viewer-api.md, "Exports"):
// a date range and a button (`POST /v1/devices/{cid}/exports`), then the camera's exports with
// their state, and a download link once one is ready (a presigned URL of the archive in the
// object store: the video never passes through the page's server). The list refreshes while an
// export is pending.

import { $, el } from './dom.js';
import { ApiError, SignedOut } from './api.js';
import { mayManage } from './session.js';
import { fmtBytes } from './format.js';

const STATE_TEXT = { pending: 'Being prepared…', ready: 'Ready', failed: 'Failed' };

export function createExports({ api, view, session, pollMs = 2000 }) {
  const state = { timer: 0 };

  function row(x) {
    const days = x.from === x.to ? x.from : `${x.from} to ${x.to}`;
    const item = el('li', { class: `export ${x.state}`, 'data-export-id': x.export_id });
    item.append(el('span', { class: 'export-days', text: days }));
    let detail = STATE_TEXT[x.state] || x.state;
    if (x.state === 'ready') detail += ` · ${x.events} events · ${fmtBytes(x.bytes)}`;
    if (x.state === 'failed' && x.reason) detail += `: ${x.reason}`;
    item.append(el('span', { class: 'export-state muted', text: detail }));
    if (x.state === 'ready' && x.download_url) {
      item.append(el('a', { class: 'export-download', href: x.download_url, download: `${view.device}-${days}.tar`, text: `Download ${days}` }));
    }
    return item;
  }

  // Reads the camera's exports and shows them; polls again while one is pending.
  async function load() {
    clearTimeout(state.timer);
    const cid = view.device;
    if (!mayManage(session?.claims) || !cid) return;
    let list;
    try {
      list = await api.get(`/v1/devices/${encodeURIComponent(cid)}/exports`, { quiet: true });
    } catch (err) {
      if (err instanceof SignedOut) return;
      $('export-status').textContent = 'The exports could not be loaded.';
      return;
    }
    if (cid !== view.device) return;
    const exports = list?.exports || [];
    $('export-list').replaceChildren(...exports.map(row));
    $('export-empty').hidden = exports.length > 0;
    if (exports.some((x) => x.state === 'pending')) state.timer = setTimeout(load, pollMs);
  }

  // Shown for a managing viewer, the range set to the camera's today.
  function show() {
    const manage = mayManage(session?.claims);
    $('camera-export').hidden = !manage;
    if (!manage) return;
    const today = view.days?.[0]?.date || new Date().toISOString().slice(0, 10);
    $('export-from').value = today;
    $('export-to').value = today;
    $('export-status').textContent = '';
    $('export-list').replaceChildren();
    load();
  }

  async function request(ev) {
    ev.preventDefault();
    const cid = view.device;
    const from = $('export-from').value;
    const to = $('export-to').value;
    if (!from || !to) {
      $('export-status').textContent = 'Pick the first and the last day to export.';
      return;
    }
    $('export-go').disabled = true;
    $('export-status').textContent = 'Asking for the export…';
    try {
      await api.post(`/v1/devices/${encodeURIComponent(cid)}/exports`, { from, to });
      $('export-status').textContent = 'Export asked for: it is listed below, with a download link once ready.';
    } catch (err) {
      if (err instanceof SignedOut) return;
      $('export-status').textContent = err instanceof ApiError && err.code === 'export_limit'
        ? 'This camera was sent as many exports as it may be today. Try again tomorrow.'
        : err instanceof ApiError && err.code === 'invalid_range'
          ? `These days cannot be exported: ${err.message}.`
          : 'The export did not go through. Try again.';
      return;
    } finally {
      $('export-go').disabled = false;
    }
    setTimeout(load, 500);
  }

  $('export-form').addEventListener('submit', request);
  return { show, load };
}
