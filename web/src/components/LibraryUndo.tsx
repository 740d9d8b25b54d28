import { useEffect, useRef } from 'preact/hooks';
import { labelText } from '../format.ts';
import { type Removals, UNDO_MS } from '../removals.ts';

/**
 * The removals that can still be undone, at the bottom of the window. The button a user pressed goes
 * with the image it removed, so the keyboard focus moves to the new removal's Undo, and back to the
 * image's remove button when it is undone.
 */
export function LibraryUndo({ removals }: { removals: Removals }) {
  const { pending } = removals;
  const list = useRef<HTMLDivElement>(null);
  const shown = useRef(0);
  useEffect(() => {
    if (pending.length > shown.current)
      list.current?.querySelector<HTMLButtonElement>('.undo-toast:last-child .undo-button')?.focus();
    shown.current = pending.length;
  }, [pending.length]);

  return (
    <div class="undo-toasts" ref={list} aria-live="polite">
      {pending.map((removal) => (
        <div key={removal.key} class="undo-toast">
          <span class="undo-text">
            Removed{' '}
            {removal.images.length > 1
              ? (removal.what ?? `${removal.images.length} images`)
              : `${labelText(removal.image)} #${removal.image.id}`}{' '}
            from {removal.collection}.
          </span>
          <button
            type="button"
            class="undo-button"
            onClick={() => {
              removals.undo(removal.key);
              // Once the image is back on the page (the next render).
              setTimeout(() =>
                document.querySelector<HTMLElement>(`[data-removes-id="${removal.image.id}"]`)?.focus(),
              );
            }}
          >
            Undo
          </button>
          <button type="button" onClick={() => removals.commit(removal.key)}>
            Remove now
          </button>
          <span class="undo-timer" aria-hidden="true" style={{ animationDuration: `${UNDO_MS}ms` }} />
        </div>
      ))}
    </div>
  );
}
