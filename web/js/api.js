// The viewer API client (docs/viewer-api.md): GETs (and a managing viewer's DELETEs, PUTs and POSTs) on this
// origin with the session's token, waiting out "busy" answers and network failures, and the sentences a person reads
// for a failed request. The client owns one piece of state, the wait shared by requests that
// hit "busy"; the token is read from the session object at each request.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `error ${status}`);
    this.status = status;
    this.code = code;
  }
}

// Thrown after the page has signed out; callers just stop.
export class SignedOut extends Error {}

// Seconds to wait as an answer's Retry-After says (seconds or an HTTP date), else `fallback`.
export function retryAfterSeconds(res, fallback, now = Date.now()) {
  const h = res.headers.get('retry-after');
  if (!h) return fallback;
  const n = Number(h);
  if (Number.isFinite(n)) return n;
  const at = Date.parse(h);
  return Number.isFinite(at) ? (at - now) / 1000 : fallback;
}

// Why the server refused the token (a 401's message), in words for the sign-in form.
export function unauthorizedText(message) {
  return /expired/i.test(message || '')
    ? 'Your sign-in has expired. Paste a new viewer token to continue.'
    : 'daybook did not accept this token (it may be altered or from another daybook). Paste a valid viewer token.';
}

// What a person should read when loading `what` for camera `device` failed with `e`.
export function explain(e, what, device) {
  if (e instanceof ApiError) {
    if (e.status === 403) return `This token may not see camera ${device}. Ask for a token that includes it.`;
    if (e.status === 404) return `${what} is no longer stored (daybook keeps 30 days).`;
    if (e.status === 0) return 'daybook cannot be reached. Check the connection and try again.';
    if (e.status >= 500) return `daybook could not load ${what.toLowerCase()} (server error ${e.status}). Try again shortly.`;
    return `${what} could not be loaded: ${e.message}.`;
  }
  return `${what} could not be loaded.`;
}

// `session` is the page's { token } (read at each request), `notice` shows the busy countdown,
// `onUnauthorized(text)` signs out when the server refuses the token; `fetch` is the
// browser's unless a test passes its own.
export function createApi({ session, notice, onUnauthorized, fetch: send = (...args) => fetch(...args) }) {
  // One wait shared by every request that hit "busy", so a busy server sees one retry, not many.
  const state = { busyWait: null };

  function waitBusy(seconds, text) {
    if (state.busyWait) return state.busyWait;
    state.busyWait = new Promise((resolve) => {
      let left = Math.max(1, Math.min(120, Math.round(seconds)));
      const done = () => {
        clearInterval(timer);
        notice.hide();
        state.busyWait = null;
        resolve();
      };
      const render = () => notice.show(`${text} Trying again in ${left} s…`, { retry: done });
      const timer = setInterval(() => (--left <= 0 ? done() : render()), 1000);
      render();
    });
    return state.busyWait;
  }

  // GETs `path` from the viewer API. 401 signs out (unless `authErrors` asks for the error);
  // 429/503 and network failures wait and retry (unless `quiet`, for background refreshes).
  const get = (path, options) => request('GET', path, options);

  // DELETEs `path` (a managing viewer's deletion): the answer's JSON, retried like a GET (a
  // deletion sent twice is one deletion).
  const del = (path, options) => request('DELETE', path, options);

  // PUTs `path` with no body (a managing viewer's keep): retried like a GET (a keep sent twice
  // is one keep).
  const put = (path, options) => request('PUT', path, options);

  // POSTs `body` as JSON to `path` (a managing viewer's export). Not retried on 429: a refusal
  // past the camera's export limit is the answer, shown as it is.
  const post = (path, json, options) => request('POST', path, { ...options, json, retry429: false });

  async function request(method, path, { quiet = false, authErrors = false, json, retry429 = true } = {}) {
    let backoff = 2;
    for (;;) {
      let res;
      try {
        const headers = { authorization: `Bearer ${session.token}`, accept: 'application/json' };
        const init = { method, headers, cache: 'no-store' };
        if (json !== undefined) {
          headers['content-type'] = 'application/json';
          init.body = JSON.stringify(json);
        }
        res = await send(path, init);
      } catch {
        if (quiet) throw new ApiError(0, 'network', 'offline');
        await waitBusy(backoff, 'daybook cannot be reached (network or server down).');
        backoff = Math.min(backoff * 2, 30);
        continue;
      }
      if (res.ok) return res.json();
      let body = null;
      try {
        body = await res.json();
      } catch {
        /* not JSON: keep the status */
      }
      const code = body?.error?.code;
      const message = body?.error?.message;
      if (((res.status === 429 && retry429) || res.status === 503) && !quiet) {
        const why = res.status === 429 ? 'Too many requests from this page.' : 'The server is busy right now.';
        await waitBusy(retryAfterSeconds(res, backoff), why);
        backoff = Math.min(backoff * 2, 30);
        continue;
      }
      if (res.status === 401 && !authErrors) {
        onUnauthorized(unauthorizedText(message));
        throw new SignedOut();
      }
      throw new ApiError(res.status, code, message);
    }
  }

  return { get, del, put, post };
}
