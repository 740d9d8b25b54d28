import type { ImageRef } from '../api.ts';
import { labelText } from '../format.ts';
import { ModalDialog } from './ModalDialog.tsx';

interface ImageDialogProps {
  image: ImageRef | null;
  onClose: () => void;
  onSearch: (image: ImageRef) => void;
}

/** An enlarged image with its label, a download link and a way to search with it (a modal <dialog>). */
export function ImageDialog({ image, onClose, onSearch }: ImageDialogProps) {
  return (
    <ModalDialog open={image !== null} onClose={onClose} class="image-dialog" labelledBy="image-dialog-title">
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
    </ModalDialog>
  );
}
