// daybook's viewer page: sign in with a viewer token, pick a camera, see its last 30 days as
// a heat map, page through a day's events and play an event's clip. Plain JavaScript modules
// against the viewer API on this origin (README.md, "Viewer API"); no build step, no
// dependencies.
//
// Field access is defensive on purpose: answers may gain fields (a camera's `utc_offset`, for
// instance) and the page uses them when present and works without them.
//
// This entry makes the page's state objects and wires the modules under js/:
//   format.js   time and text formatting (pure)
//   days.js     calendar and day-list logic: which day, neighbours, heat levels, pages (pure)
//   clip.js     building a clip from segments, byte offsets to times, seeking (pure)
//   state.js    the view state object, the address fragment, the refresh interval
//   session.js  the sign-in session: token, claims, decoding and checking a token
//   api.js      the viewer API client and its error sentences
//   dom.js      element helpers;  notice.js  the banner
//   signin.js   the sign-in card;  calendar.js  the 30 days;  day.js  a day's events
//   player.js   the player dialog (and, for a managing viewer, deleting the event shown)
//   erase.js    for a managing viewer, erasing the camera shown (after typing its name)
//   exports.js  for a managing viewer, exporting the camera's days and downloading the archives
// State: `session` ({ token, claims }) and `view` (state.js) are made here and passed to the
// modules that need them; the API client, the notice, the calendar's poll timer and the
// player own their own.

import { $, el } from './js/dom.js';
import { createNotice } from './js/notice.js';
import { createApi } from './js/api.js';
import { createSession, decodeToken, forgetToken, storedToken, tokenProblem } from './js/session.js';
import { createViewState, pollMs, readHash, writeHash } from './js/state.js';
import { createPlayer } from './js/player.js';
import { createDay } from './js/day.js';
import { createCalendar, renderZone } from './js/calendar.js';
import { createSignIn, showSignIn } from './js/signin.js';
import { createErase } from './js/erase.js';
import { createExports } from './js/exports.js';

const session = createSession();
const view = createViewState();
const notice = createNotice();
const api = createApi({ session, notice, onUnauthorized: (message) => signOut(message) });
const player = createPlayer({ api, view, session, onDeleted: (e) => deleted(e), onKept: (e) => day.markKept(e) });
const day = createDay({ api, view, player });
const calendar = createCalendar({ api, view, session, day, pollMs: pollMs(location.search) });
createSignIn({ session, api, onSignedIn: (token, claims) => start(token, claims) });
const erase = createErase({ api, view, session, onErased: (cid) => erased(cid) });
const exporter = createExports({ api, view, session });

// Opens the viewer for a checked token: its cameras, the one (and day and type) the address
// names, and the refresh.
function start(token, claims) {
  session.token = token;
  session.claims = claims;
  $('signin').hidden = true;
  $('viewer').hidden = false;
  $('signout').hidden = false;
  const select = $('device');
  select.replaceChildren(...claims.devices.map((d) => el('option', { value: d, text: d })));
  $('device-area').hidden = false;
  const want = readHash();
  view.device = claims.devices.includes(want.cam) ? want.cam : claims.devices[0];
  view.type = want.type;
  select.value = view.device;
  calendar.load(want.day);
  calendar.startPolling();
  erase.show();
  exporter.show();
}

// The viewer erased camera `cid`: a notice says so, and the calendar and the day empty once the
// erasure is projected.
function erased(cid) {
  for (const row of document.querySelectorAll('#events .event')) day.dropEvent(row.dataset.eventId);
  notice.show(`Erasing camera ${cid}: everything it recorded is being removed from this view and from storage.`);
  setTimeout(async () => {
    await calendar.poll();
    if (view.day) day.selectDay(view.day, { focus: false });
  }, 1500);
}

// The viewer deleted event `e`: its row goes, a notice says so, and the calendar's count and the
// day's list follow once the deletion is projected.
function deleted(e) {
  day.dropEvent(e.event_id);
  notice.show(`Deleted the ${e.type} event. Its snapshot and video are removed from storage.`);
  setTimeout(async () => {
    await calendar.poll();
    if (view.day) day.selectDay(view.day, { focus: false });
  }, 1500);
}

function signOut(message) {
  forgetToken();
  session.token = null;
  session.claims = null;
  calendar.stopPolling();
  player.close();
  notice.hide();
  showSignIn(message);
}

renderZone(view);
$('signout').addEventListener('click', () => signOut('Signed out. Paste a viewer token to sign in again.'));
$('device').addEventListener('change', (ev) => {
  view.device = ev.target.value;
  view.type = '';
  writeHash(view);
  calendar.load(null);
  erase.show();
  exporter.show();
});
document.addEventListener('visibilitychange', () => !document.hidden && session.token && calendar.poll());

const token = storedToken();
const claims = token ? decodeToken(token) : null;
const problem = token ? tokenProblem(claims) : null;
if (token && !problem) start(token, claims);
else showSignIn(token ? problem : '');
