// The viewer's state: which camera and day are shown, the list's paging, and what the page
// learnt from answers. One object, made by createViewState() in app.js and passed to the
// modules that read or change it (calendar.js, day.js, player.js). Also the part of it kept in
// the address (reload keeps the view) and the refresh interval. Pure except readHash and
// writeHash, which use the browser's location and history.

export const PAGE_SIZE = 10;

export function createViewState() {
  return {
    device: null,
    days: [], // calendar answer, newest first: { date, events }
    day: null,
    type: '',
    cursors: [null], // cursors[i] fetches page i
    page: 0,
    next: null,
    shownCount: null, // the selected day's count when its list was loaded
    types: new Map(), // device -> Set of event types seen
    cameraOffset: null,
    gen: 0, // bumps on every list load so late answers of older loads are dropped
  };
}

// The view an address's fragment ("#cam=…&day=…&type=…") asks for.
export function parseHash(hash) {
  const p = new URLSearchParams(hash.slice(1));
  return { cam: p.get('cam'), day: p.get('day'), type: p.get('type') || '' };
}

// The fragment for a view: its camera, day and type, those that are set.
export function formatHash({ device, day, type }) {
  const p = new URLSearchParams();
  if (device) p.set('cam', device);
  if (day) p.set('day', day);
  if (type) p.set('type', type);
  return `#${p}`;
}

export const readHash = () => parseHash(location.hash);
export const writeHash = (view) => history.replaceState(null, '', formatHash(view));

// The refresh interval in ms: `?poll=SECONDS` shortens it (the browser test uses it, at least
// 1 s); 30 s otherwise.
export const pollMs = (search) => Math.max(1, Number(new URLSearchParams(search).get('poll')) || 30) * 1000;
