// web/js/api.js: Retry-After, the sentences for failed requests, and the client against a fake
// fetch: answers, refused tokens, errors, quiet background requests, one shared busy wait.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, SignedOut, createApi, explain, retryAfterSeconds, unauthorizedText } from '../../js/api.js';

const answer = (status, body, headers = {}) =>
  new Response(body == null ? null : typeof body === 'string' ? body : JSON.stringify(body), { status, headers });

// A client whose fetch answers from `answers` in turn; records requests, notices, sign-outs.
function client(answers, session = { token: 'tok' }) {
  const requests = [];
  const notices = [];
  const signedOut = [];
  const notice = {
    // Presses "Retry now" as soon as the page is idle (every request in flight has had its
    // answer), so no test waits out the countdown.
    show: (text, { retry } = {}) => {
      notices.push(text);
      if (retry) setTimeout(retry, 0);
    },
    hide: () => notices.push('(hidden)'),
  };
  const fetch = async (path, init) => {
    requests.push({ path, method: init.method, authorization: init.headers.authorization });
    const next = answers.shift();
    if (next instanceof Error) throw next;
    return next;
  };
  const api = createApi({ session, notice, onUnauthorized: (text) => signedOut.push(text), fetch });
  return { api, requests, notices, signedOut };
}

test('retryAfterSeconds: seconds, an HTTP date, or the fallback', () => {
  const now = Date.UTC(2024, 2, 31, 12);
  const res = (h) => ({ headers: new Headers(h == null ? {} : { 'retry-after': h }) });
  assert.equal(retryAfterSeconds(res(null), 4, now), 4);
  assert.equal(retryAfterSeconds(res('7'), 4, now), 7);
  assert.equal(retryAfterSeconds(res('0'), 4, now), 0);
  assert.equal(retryAfterSeconds(res(new Date(now + 90_000).toUTCString()), 4, now), 90);
  assert.equal(retryAfterSeconds(res('soon'), 4, now), 4);
});

test('unauthorizedText: expired sign-ins and refused tokens', () => {
  assert.match(unauthorizedText('token expired'), /sign-in has expired/);
  assert.match(unauthorizedText('Expired'), /sign-in has expired/);
  assert.match(unauthorizedText('bad signature'), /did not accept this token/);
  assert.match(unauthorizedText(undefined), /did not accept this token/);
});

test('explain: what a person reads for each failure', () => {
  assert.equal(explain(new ApiError(403), 'The calendar', 'cam-2'), 'This token may not see camera cam-2. Ask for a token that includes it.');
  assert.equal(explain(new ApiError(404), 'This event', 'cam-1'), 'This event is no longer stored (daybook keeps 30 days).');
  assert.equal(explain(new ApiError(0, 'network', 'offline'), 'The digest', 'cam-1'), 'daybook cannot be reached. Check the connection and try again.');
  assert.equal(explain(new ApiError(500), 'The calendar', 'cam-1'), 'daybook could not load the calendar (server error 500). Try again shortly.');
  assert.equal(explain(new ApiError(502), 'This day’s events', 'cam-1'), 'daybook could not load this day’s events (server error 502). Try again shortly.');
  assert.equal(explain(new ApiError(400, 'bad_request', 'date out of range'), 'The calendar', 'cam-1'), 'The calendar could not be loaded: date out of range.');
  assert.equal(explain(new ApiError(422), 'The calendar', 'cam-1'), 'The calendar could not be loaded: error 422.');
  assert.equal(explain(new TypeError('x'), 'The calendar', 'cam-1'), 'The calendar could not be loaded.');
});

test('get: the answer’s JSON, with the session’s current token', async () => {
  const session = { token: 'one' };
  const { api, requests } = client([answer(200, { days: [] }), answer(200, { ok: 1 })], session);
  assert.deepEqual(await api.get('/v1/devices/cam-1/calendar?days=30'), { days: [] });
  session.token = 'two';
  await api.get('/v1/x');
  assert.deepEqual(requests.map((r) => r.authorization), ['Bearer one', 'Bearer two']);
});

test('get: a refused token signs out and throws SignedOut; authErrors gets the 401 instead', async () => {
  const c = client([answer(401, { error: { code: 'unauthorized', message: 'token expired' } })]);
  await assert.rejects(c.api.get('/v1/x'), SignedOut);
  assert.equal(c.signedOut.length, 1);
  assert.match(c.signedOut[0], /sign-in has expired/);
  const d = client([answer(401, { error: { code: 'unauthorized', message: 'bad signature' } })]);
  await assert.rejects(d.api.get('/v1/x', { authErrors: true }), (e) => e instanceof ApiError && e.status === 401 && e.message === 'bad signature');
  assert.deepEqual(d.signedOut, [], 'no sign-out when the caller handles it');
});

test('get: other errors carry status, code and message; a body that is not JSON keeps the status', async () => {
  const c = client([answer(404, { error: { code: 'not_found', message: 'no such event' } }), answer(500, 'oops')]);
  await assert.rejects(c.api.get('/v1/a'), (e) => e instanceof ApiError && e.status === 404 && e.code === 'not_found' && e.message === 'no such event');
  await assert.rejects(c.api.get('/v1/b'), (e) => e instanceof ApiError && e.status === 500 && e.code === undefined && e.message === 'error 500');
});

test('get quiet (background refresh): no waiting, network failures and busy answers throw', async () => {
  const c = client([new TypeError('Failed to fetch'), answer(503, { error: { code: 'store_unavailable' } }, { 'retry-after': '5' })]);
  await assert.rejects(c.api.get('/v1/a', { quiet: true }), (e) => e instanceof ApiError && e.status === 0);
  await assert.rejects(c.api.get('/v1/b', { quiet: true }), (e) => e instanceof ApiError && e.status === 503);
  assert.deepEqual(c.notices, [], 'nothing shown');
});

test('get: a busy answer shows a countdown from Retry-After, then retries', async () => {
  const c = client([answer(429, null, { 'retry-after': '7' }), answer(200, { ok: true })]);
  assert.deepEqual(await c.api.get('/v1/a'), { ok: true });
  assert.equal(c.requests.length, 2);
  assert.deepEqual(c.notices, ['Too many requests from this page. Trying again in 7 s…', '(hidden)']);
});

test('get: a network failure waits and retries', async () => {
  const c = client([new TypeError('Failed to fetch'), answer(200, { ok: true })]);
  assert.deepEqual(await c.api.get('/v1/a'), { ok: true });
  assert.deepEqual(c.notices, ['daybook cannot be reached (network or server down). Trying again in 2 s…', '(hidden)']);
});

test('get: requests that hit "busy" together share one wait', async () => {
  const c = client([
    answer(503, null, { 'retry-after': '3' }),
    answer(503, null, { 'retry-after': '3' }),
    answer(200, { n: 1 }),
    answer(200, { n: 2 }),
  ]);
  const got = await Promise.all([c.api.get('/v1/a'), c.api.get('/v1/b')]);
  assert.deepEqual(got.map((g) => g.n).sort(), [1, 2]);
  assert.deepEqual(c.notices, ['The server is busy right now. Trying again in 3 s…', '(hidden)'], 'one countdown, not two');
});

test('del: a DELETE with the session’s token, its 202 JSON; a refusal is an ApiError', async () => {
  const { api, requests } = client([
    answer(202, { accepted: true, event_id: 'e1' }),
    answer(403, { error: { code: 'forbidden', message: 'not manage' } }),
  ]);
  assert.deepEqual(await api.del('/v1/events/e1'), { accepted: true, event_id: 'e1' });
  assert.deepEqual(requests[0], { path: '/v1/events/e1', method: 'DELETE', authorization: 'Bearer tok' });
  await assert.rejects(api.del('/v1/events/e1'), (e) => e instanceof ApiError && e.status === 403 && e.code === 'forbidden');
});

test('post: JSON with the session’s token, its 202 JSON; a 429 is the answer, not waited out', async () => {
  const c = client([answer(202, { accepted: true }), answer(429, { error: { code: 'export_limit', message: 'too many' } }, { 'retry-after': '5' })]);
  assert.deepEqual(await c.api.post('/v1/devices/cam-1/exports', { from: '2024-03-30', to: '2024-03-31' }), { accepted: true });
  assert.deepEqual(c.requests[0], { path: '/v1/devices/cam-1/exports', method: 'POST', authorization: 'Bearer tok' });
  await assert.rejects(c.api.post('/v1/devices/cam-1/exports', {}), (e) => e instanceof ApiError && e.status === 429 && e.code === 'export_limit');
  assert.equal(c.requests.length, 2, 'not retried');
  assert.deepEqual(c.notices, [], 'no countdown');
});
