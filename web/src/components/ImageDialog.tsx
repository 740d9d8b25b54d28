import { useEffect, useRef } from 'preact/hooks';
import type { ImageRef } from '../api.ts';
import { labelText } from '../format.ts';

interface ImageDialogProps {
  image: ImageRef | null;
  onClose: () => void;
  onSearch: (image: ImageRef) => void;
}

/** An enlarged image with its label, a download link and a way to search with it (a modal <dialog>). */
export function ImageDialog({ image, onClose, onSearch }: ImageDialogProps) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const element = dialog.current!;
    if (image && !element.open) element.showModal();
    if (!image && element.open) element.close();
  }, [image]);

  return (
    // biome-ignore lint/a11y/useKeyWithClickEvents: the backdrop click mirrors Escape, which <dialog> handles
    <dialog
      ref={dialog}
      class="image-dialog"
      aria-labelledby="image-dialog-title"
      onClose={onClose}
      onClick={(event) => {
        // A click on the backdrop (the dialog itself, outside its content) closes it.
        if (event.target === dialog.current) onClose();
      }}
    >
      {image && (
        <div class="dialog-body">
          <h2 id="image-dialog-title">
            {labelText(image)} <span class="muted">#{image.id}</span>
          </h2>
          <img src={image.imageUrl} alt={labelText(image)} />
          <p class="muted">
            {image.width} × {image.height} px
          </p>
          <div class="dialog-actions">
            <a class="button" href={image.imageUrl} download="">
              Download
            </a>
            <button type="button" onClick={() => onSearch(image)}>
              Search with this image
            </button>
            <button type="button" class="primary" onClick={onClose}>
              Close
            </button>
          </div>
        </div>
      )}
    </dialog>
  );
}
