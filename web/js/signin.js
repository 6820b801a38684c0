// The sign-in card (#signin): checks a pasted viewer token as far as the page can, then asks
// the server once before keeping it. Sets the session's token; `onSignedIn(token, claims)`
// opens the viewer.

import { $ } from './dom.js';
import { ApiError, unauthorizedText } from './api.js';
import { decodeToken, keepToken, tokenProblem } from './session.js';

// Shows the sign-in card (and hides the viewer) with `message` under the token field.
export function showSignIn(message) {
  $('viewer').hidden = true;
  $('device-area').hidden = true;
  $('signout').hidden = true;
  $('signin').hidden = false;
  $('signin-error').textContent = message || '';
  $('token').value = '';
  $('token').focus();
}

export function createSignIn({ session, api, onSignedIn }) {
  async function onSubmit(ev) {
    ev.preventDefault();
    const token = $('token').value.trim();
    const err = $('signin-error');
    if (!token) {
      err.textContent = 'Paste your viewer token first.';
      return;
    }
    const claims = decodeToken(token);
    const problem = tokenProblem(claims);
    if (problem) {
      err.textContent = problem;
      return;
    }
    err.textContent = 'Checking…';
    session.token = token;
    try {
      await api.get(`/v1/devices/${encodeURIComponent(claims.devices[0])}/calendar?days=1`, { authErrors: true });
    } catch (e) {
      session.token = null;
      if (e instanceof ApiError && e.status === 401) err.textContent = unauthorizedText(e.message);
      else if (e instanceof ApiError && e.status === 403) err.textContent = `daybook refused camera ${claims.devices[0]} for this token.`;
      else err.textContent = 'daybook could not check the token right now. Try again.';
      return;
    }
    err.textContent = '';
    keepToken(token);
    onSignedIn(token, claims);
  }

  $('signin-form').addEventListener('submit', onSubmit);
}
