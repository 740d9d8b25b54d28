import { bytesText, type DuplicateImage, fileName } from '../duplicates-api.ts';
import { similarityText } from '../format.ts';
import { ModalDialog } from './ModalDialog.tsx';

export interface Comparison {
  /** The kept image of the group, and the one it is compared with. */
  keeper: DuplicateImage;
  other: DuplicateImage;
  imageUrl: (image: DuplicateImage) => string;
}

/** Two members of a group side by side at full size (each pane scrolls), in a modal <dialog>. */
export function DuplicateCompare({
  comparison,
  onClose,
}: {
  comparison: Comparison | null;
  onClose: () => void;
}) {
  return (
    <ModalDialog
      open={comparison !== null}
      onClose={onClose}
      class="image-dialog compare-dialog"
      labelledBy="compare-title"
    >
      {comparison && (
        <div class="dialog-body">
          <h2 id="compare-title">
            {fileName(comparison.other)} <span class="muted">and the kept</span> {fileName(comparison.keeper)}
          </h2>
          <div class="compare-panes">
            {[comparison.keeper, comparison.other].map((image) => (
              <figure key={image.id} class="compare-pane">
                <figcaption>
                  <strong>{image.keep ? 'Kept' : 'Copy'}</strong> {image.path}
                  <br />
                  <span class="muted">
                    {image.width} × {image.height} px · {bytesText(image.bytes)}
                    {!image.keep &&
                      ` · ${image.identical ? 'same bytes' : `similarity ${similarityText(image.similarity)}`}`}
                  </span>
                </figcaption>
                <section
                  class="compare-scroll"
                  // biome-ignore lint/a11y/noNoninteractiveTabindex: the pane scrolls a full-size image; the keyboard must reach it
                  tabIndex={0}
                  aria-label={`${fileName(image)} at full size`}
                >
                  <img
                    src={comparison.imageUrl(image)}
                    alt={image.path}
                    width={image.width}
                    height={image.height}
                  />
                </section>
              </figure>
            ))}
          </div>
          <div class="dialog-actions">
            <button type="button" class="primary" onClick={onClose}>
              Close
            </button>
          </div>
        </div>
      )}
    </ModalDialog>
  );
}
