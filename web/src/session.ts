// What this page may do on the server (GET /api/session with the token it keeps), and what it says when
// the server needs a token it does not have or refuses the one it has.
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError } from './api.ts';
import { DEFAULT_UPLOAD_LIMITS, getSession, type Session } from './library-api.ts';
import { forgetToken, storedToken } from './token.ts';

export type Access =
  /** Asking the server. */
  | { state: 'checking' }
  | { state: 'ready'; session: Session }
  /** Reads need a token this page does not have. */
  | { state: 'locked' };

export const HOW_TO_GET_THE_TOKEN =
  'open the address ris serve printed when it started (it ends in ?token=…)';

const REFUSED_AT_START = `The server did not accept the token this page was given, so the page forgot it: it can search, not change the library. To change the library, ${HOW_TO_GET_THE_TOKEN}.`;
const REFUSED_ON_WRITE = `The server refused this page's token (it may have been restarted with another one), so the page forgot it and no longer offers changes. To change the library again, ${HOW_TO_GET_THE_TOKEN}.`;
const REFUSED_TO_READ = 'The server did not accept the token this page had, so the page forgot it.';

/**
 * The page's access: checked once at the start, and again when the server refuses the token on a
 * change (`tokenRefused`), which forgets it and says so in `notice`.
 */
export function useSession() {
  const [access, setAccess] = useState<Access>({ state: 'checking' });
  const [notice, setNotice] = useState<string | null>(null);

  const check = useCallback(async () => {
    const hadToken = storedToken() !== undefined;
    try {
      const session = await getSession();
      // Without a read token to hold, a token that cannot write is no token of this server.
      if (hadToken && !session.write && !session.readTokenRequired) {
        forgetToken();
        setNotice(REFUSED_AT_START);
      }
      setAccess({ state: 'ready', session });
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        if (hadToken) {
          forgetToken();
          setNotice(REFUSED_TO_READ);
        }
        setAccess({ state: 'locked' });
        return;
      }
      // The server cannot be reached or answers oddly: go on as a reader; listing the collections says
      // what is wrong.
      setAccess({
        state: 'ready',
        session: { read: true, write: false, readTokenRequired: false, uploads: DEFAULT_UPLOAD_LIMITS },
      });
    }
  }, []);

  useEffect(() => {
    void check();
  }, [check]);

  const tokenRefused = useCallback(() => {
    forgetToken();
    setNotice(REFUSED_ON_WRITE);
    setAccess((now) =>
      now.state === 'ready' ? { state: 'ready', session: { ...now.session, write: false } } : now,
    );
    void check();
  }, [check]);

  return { access, notice, dismissNotice: () => setNotice(null), tokenRefused };
}
