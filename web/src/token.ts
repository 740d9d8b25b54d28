// The write (or read) token of the ris server: given once in the address (?token=…, as `ris serve` prints
// it), kept in this browser, and sent with every API request as a bearer token.

const KEY = 'ris-token';

/**
 * Takes `?token=` from the address: kept in localStorage, and removed from the address bar (and from
 * history) so it is not shared with a copied link or shown over a shoulder.
 */
export function takeTokenFromAddress(): void {
  const url = new URL(window.location.href);
  const token = url.searchParams.get('token');
  if (token === null) return;
  try {
    if (token === '') localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, token);
  } catch {
    // Private windows may refuse storage: the token then lasts for this page (below).
    memory = token || undefined;
  }
  url.searchParams.delete('token');
  window.history.replaceState(window.history.state, '', url.toString());
}

let memory: string | undefined;

export function storedToken(): string | undefined {
  try {
    return localStorage.getItem(KEY) ?? memory;
  } catch {
    return memory;
  }
}

/** Forgets the token (it was refused: the server has another one now). */
export function forgetToken(): void {
  memory = undefined;
  try {
    localStorage.removeItem(KEY);
  } catch {
    // nothing kept
  }
}

/** `init` with the token as `Authorization: Bearer …`, when there is one. */
export function withToken(init: RequestInit = {}): RequestInit {
  const token = storedToken();
  if (!token) return init;
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return { ...init, headers };
}
