import { HOW_TO_GET_THE_TOKEN } from '../session.ts';

/** What happened to the page's token (refused, forgotten), above every view. */
export function AccessNotice({ notice, onDismiss }: { notice: string | null; onDismiss: () => void }) {
  if (!notice) return null;
  return (
    <div class="error-banner access-notice" role="alert">
      <p>{notice}</p>
      <button type="button" onClick={onDismiss}>
        Dismiss
      </button>
    </div>
  );
}

/** The page of a server whose collections need a token this page does not have. */
export function LockedPage() {
  return (
    <section class="locked" aria-labelledby="locked-heading">
      <h2 id="locked-heading">This server needs a token</h2>
      <p>
        Its collections are shown only to pages that have its token. To search them, {HOW_TO_GET_THE_TOKEN}:
        the page keeps the token and takes it out of the address bar.
      </p>
      <p class="muted">
        Whoever runs the server finds its tokens in ris's data folder: <code>server-read-token</code> to
        search, <code>server-token</code> to change the library too. Open{' '}
        <code>{`${location.origin}${location.pathname}?token=…`}</code> with one of them.
      </p>
    </section>
  );
}

/** Where write controls would be, for a page without the write token. */
export function ReadOnlyNote() {
  return (
    <p class="hint read-only-note">
      This page can search but not change the library. To create collections and add or remove images,{' '}
      {HOW_TO_GET_THE_TOKEN}.
    </p>
  );
}
