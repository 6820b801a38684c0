// web/js/session.js: reading a token's claims without the secret, what the page refuses
// before asking the server, and where the token is kept.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSession, decodeToken, forgetToken, keepToken, mayManage, storedToken, tokenProblem } from '../../js/session.js';

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
const tokenOf = (claims) => `${b64url({ alg: 'EdDSA', typ: 'JWT' })}.${b64url(claims)}.c2lnbmF0dXJl`;
const NOW = Date.UTC(2024, 2, 31, 12);

test('decodeToken: base64url claims without padding, with - and _, and UTF-8 names', () => {
  const claims = { role: 'viewer', devices: ['Küche', 'cam-🐱'], note: '>>>???', exp: 1_900_000_000 };
  const token = tokenOf(claims);
  assert.match(token.split('.')[1], /[-_]/, 'the test token uses the URL-safe alphabet');
  assert.doesNotMatch(token, /=/, 'and no padding');
  assert.deepEqual(decodeToken(token), claims);
});

test('decodeToken: anything that is not three parts of base64url JSON is null', () => {
  assert.equal(decodeToken(''), null);
  assert.equal(decodeToken('hello'), null);
  assert.equal(decodeToken('a.b'), null);
  assert.equal(decodeToken(`${tokenOf({ role: 'viewer' })}.extra`), null, 'four parts');
  assert.equal(decodeToken('eyJ.!!!.sig'), null, 'not base64');
  assert.equal(decodeToken(`x.${Buffer.from('not json').toString('base64url')}.sig`), null, 'not JSON');
});

test('tokenProblem: a viewer token naming cameras, unexpired, is fine', () => {
  assert.equal(tokenProblem({ role: 'viewer', devices: ['cam-1'], exp: NOW / 1000 + 60 }, NOW), null);
  assert.equal(tokenProblem({ devices: ['cam-1'] }, NOW), null, 'no role, no expiry: the server decides');
  assert.equal(tokenProblem({ role: 'viewer', devices: ['cam-1'], exp: NOW / 1000 }, NOW), null, 'expiring this very second');
});

test('tokenProblem: says what is wrong, in order', () => {
  assert.match(tokenProblem(null, NOW), /not a daybook token/);
  assert.match(tokenProblem('viewer', NOW), /not a daybook token/);
  assert.match(tokenProblem({ role: 'device', devices: ['cam-1'] }, NOW), /camera.s token/);
  assert.match(tokenProblem({ role: 'admin', devices: ['cam-1'] }, NOW), /not a viewer token/);
  assert.match(tokenProblem({ role: 'viewer', devices: ['cam-1'], exp: NOW / 1000 - 1 }, NOW), /^This token expired on .+\. Ask for a new one\.$/);
  assert.match(tokenProblem({ role: 'viewer', devices: [] }, NOW), /does not name any camera/);
  assert.match(tokenProblem({ role: 'viewer', devices: 'cam-1' }, NOW), /does not name any camera/);
  assert.match(tokenProblem({ role: 'viewer' }, NOW), /does not name any camera/);
  assert.match(tokenProblem({ role: 'device', exp: 0 }, NOW), /camera.s token/, 'the role is named before the expiry');
});

test('a decoded garbage token and a decoded camera token get the sign-in sentences', () => {
  assert.match(tokenProblem(decodeToken('hello'), NOW), /not a daybook token/);
  assert.match(tokenProblem(decodeToken(tokenOf({ role: 'device', devices: ['cam-1'] })), NOW), /camera.s token/);
});

test('the token is kept in, read from and removed from the given storage', () => {
  const map = new Map();
  const storage = { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => map.set(k, String(v)), removeItem: (k) => map.delete(k) };
  assert.equal(storedToken(storage), null);
  keepToken('tok', storage);
  assert.equal(storedToken(storage), 'tok');
  assert.deepEqual([...map.keys()], ['daybook.token'], 'the key the browser test reads');
  forgetToken(storage);
  assert.equal(storedToken(storage), null);
});

test('createSession: a fresh, signed-out session each time', () => {
  const a = createSession();
  a.token = 't';
  assert.deepEqual(createSession(), { token: null, claims: null });
});

test('mayManage: only the scope `manage` among the scopes', () => {
  assert.equal(mayManage({ role: 'viewer', devices: ['cam-1'], scope: 'manage' }), true);
  assert.equal(mayManage({ role: 'viewer', scope: 'read manage' }), true);
  assert.equal(mayManage({ role: 'viewer', devices: ['cam-1'] }), false, 'no scope: read only');
  assert.equal(mayManage({ role: 'viewer', scope: 'manager' }), false);
  assert.equal(mayManage({ scope: ['manage'] }), false, 'the claim is a string');
  assert.equal(mayManage(null), false);
});
