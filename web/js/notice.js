// The banner under the header (#notice): a message, optionally with "Retry now". Owns its
// state, the retry action of the message shown.

import { $ } from './dom.js';

export function createNotice() {
  const state = { retry: null };

  function show(text, { bad = false, retry = null } = {}) {
    $('notice-text').textContent = text;
    $('notice').classList.toggle('bad', bad);
    $('notice-retry').hidden = !retry;
    state.retry = retry;
    $('notice').hidden = false;
  }

  function hide() {
    $('notice').hidden = true;
    state.retry = null;
  }

  $('notice-close').addEventListener('click', hide);
  $('notice-retry').addEventListener('click', () => state.retry?.());
  return { show, hide };
}
