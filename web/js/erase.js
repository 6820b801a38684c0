// Erasing the camera shown, for a managing viewer (docs/viewer-api.md, "Erasing a device"):
// a button, a confirmation that asks for the camera's name, then `DELETE /v1/devices/{cid}`.
// `onErased(cid)` is told once the erasure is accepted (durable on the log).

import { $ } from './dom.js';
import { ApiError, SignedOut } from './api.js';
import { mayManage } from './session.js';

export function createErase({ api, view, session, onErased }) {
  // Shown for a managing viewer, folded, naming the camera shown.
  function show() {
    $('camera-manage').hidden = !mayManage(session?.claims);
    for (const s of document.querySelectorAll('.erase-cam')) s.textContent = `camera ${view.device}`;
    $('erase-confirm').hidden = true;
    $('erase-camera').hidden = false;
    $('erase-name').value = '';
    $('erase-yes').disabled = true;
    $('erase-status').textContent = '';
  }

  function ask() {
    $('erase-camera').hidden = true;
    $('erase-confirm').hidden = false;
    $('erase-name').focus();
  }

  function cancel() {
    $('erase-confirm').hidden = true;
    $('erase-camera').hidden = false;
    $('erase-name').value = '';
    $('erase-yes').disabled = true;
    $('erase-camera').focus();
  }

  async function confirm() {
    const cid = view.device;
    if ($('erase-name').value.trim() !== cid) return;
    for (const id of ['erase-yes', 'erase-no', 'erase-name']) $(id).disabled = true;
    $('erase-status').textContent = 'Erasing…';
    try {
      await api.del(`/v1/devices/${encodeURIComponent(cid)}`);
    } catch (err) {
      if (err instanceof SignedOut) return;
      for (const id of ['erase-no', 'erase-name']) $(id).disabled = false;
      $('erase-yes').disabled = false;
      $('erase-status').textContent = err instanceof ApiError && err.status === 403
        ? 'This token may watch this camera but not erase it.'
        : 'The erasure did not go through. Try again.';
      return;
    }
    for (const id of ['erase-no', 'erase-name']) $(id).disabled = false;
    show();
    onErased(cid);
  }

  $('erase-camera').addEventListener('click', ask);
  $('erase-no').addEventListener('click', cancel);
  $('erase-yes').addEventListener('click', confirm);
  $('erase-name').addEventListener('input', () => {
    $('erase-yes').disabled = $('erase-name').value.trim() !== view.device;
  });
  $('erase-name').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !$('erase-yes').disabled) confirm();
  });
  return { show };
}
