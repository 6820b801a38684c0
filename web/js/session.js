// The sign-in session: the viewer token and its claims, kept in this tab's sessionStorage
// (forgotten when the tab closes). The page holds one session object, { token, claims }; the
// API client reads its token at each request. Decoding and checking a token is pure (no DOM).

const TOKEN_KEY = 'daybook.token';

export const createSession = () => ({ token: null, claims: null });

// The claims of a token "header.claims.signature" (base64url JSON), or null for anything else.
// The page cannot check the signature; the server has the last word.
export function decodeToken(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '='));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

// What is wrong with a token's claims as far as the page can tell at `now` (epoch ms), in words
// for the sign-in form; null when nothing is.
export function tokenProblem(claims, now = Date.now()) {
  if (!claims || typeof claims !== 'object') return 'That is not a daybook token. A token is three parts separated by dots, starting with "eyJ".';
  if (claims.role === 'device') return 'That is a camera\u2019s token. Sign in with a viewer token (daybook token viewer \u2026).';
  if (claims.role && claims.role !== 'viewer') return 'That token is not a viewer token.';
  if (typeof claims.exp === 'number' && claims.exp * 1000 < now)
    return `This token expired on ${new Date(claims.exp * 1000).toLocaleString()}. Ask for a new one.`;
  if (!Array.isArray(claims.devices) || claims.devices.length === 0) return 'This token does not name any camera.';
  return null;
}

// Whether a token's claims let it manage its cameras' footage (delete events): the scope
// `manage` (daybook token viewer --manage). The server checks it again at each change.
export function mayManage(claims) {
  return typeof claims?.scope === 'string' && claims.scope.split(' ').includes('manage');
}

// The tab's stored token (null when none); keeping and forgetting it.
export const storedToken = (storage = sessionStorage) => storage.getItem(TOKEN_KEY);
export const keepToken = (token, storage = sessionStorage) => storage.setItem(TOKEN_KEY, token);
export const forgetToken = (storage = sessionStorage) => storage.removeItem(TOKEN_KEY);
