import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

interface ModalDialogProps {
  /** Shown as a modal while true, closed when it turns false. */
  open: boolean;
  onClose: () => void;
  class: string;
  /** The id of the element that names the dialog (its heading). */
  labelledBy: string;
  /** A click on the backdrop closes it, as Escape does. Default true; a confirmation keeps it off. */
  closeOnBackdrop?: boolean;
  children: ComponentChildren;
}

/** A modal <dialog> that follows `open`: the page's enlarged images, comparisons and confirmations. */
export function ModalDialog({
  open,
  onClose,
  class: className,
  labelledBy,
  closeOnBackdrop = true,
  children,
}: ModalDialogProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const element = dialog.current!;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);

  return (
    // biome-ignore lint/a11y/useKeyWithClickEvents: the backdrop click mirrors Escape, which <dialog> handles
    <dialog
      ref={dialog}
      class={className}
      aria-labelledby={labelledBy}
      onClose={onClose}
      onClick={(event) => {
        // A click on the backdrop (the dialog itself, outside its content) closes it.
        if (closeOnBackdrop && event.target === dialog.current) onClose();
      }}
    >
      {children}
    </dialog>
  );
}
