// The signed-in session: the token lives in sessionStorage (this tab only,
// gone when it closes) and never in a URL. The role is read from the JWT
// payload for display and to decide which buttons to show; the hub checks
// the signature and enforces every role itself.

const KEY = 'switchyard.token';

/** What each role may do in the dashboard (server: auth/role.rs). */
const PERMISSIONS = {
  admin: ['read', 'operate', 'admin'],
  operator: ['read', 'operate'],
  viewer: ['read'],
};

export class TokenError extends Error {}

function base64UrlDecode(part) {
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The claims of a JWT, unverified; throws TokenError with a helpful message. */
export function decodeClaims(token) {
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new TokenError('That is not a token: a Switchyard token has three parts separated by dots (a JWT).');
  }
  let claims;
  try {
    claims = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    throw new TokenError('That token cannot be read: its middle part is not base64url-encoded JSON.');
  }
  if (!claims || typeof claims !== 'object' || typeof claims.role !== 'string') {
    throw new TokenError('That token has no role claim; issue one with `switchyard token issue --role viewer|operator|admin`.');
  }
  if (!PERMISSIONS[claims.role]) {
    throw new TokenError(
      `A token with role "${claims.role}" cannot use the dashboard; use a viewer, operator or admin token.`,
    );
  }
  if (typeof claims.exp === 'number' && claims.exp * 1000 <= Date.now()) {
    throw new TokenError('That token has expired; issue a new one with `switchyard token issue`.');
  }
  return claims;
}

/** The current session `{token, claims}`, or null. Expired tokens are dropped. */
export function session() {
  const token = sessionStorage.getItem(KEY);
  if (!token) return null;
  try {
    return { token, claims: decodeClaims(token) };
  } catch {
    sessionStorage.removeItem(KEY);
    return null;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function signIn(tokenText) {
  sessionStorage.setItem(KEY, tokenText);
}

export function signOut() {
  sessionStorage.removeItem(KEY);
}

/** Whether the signed-in role may `permission` (`read`, `operate`, `admin`). */
export function can(permission) {
  const current = session();
  return !!current && PERMISSIONS[current.claims.role].includes(permission);
}
