import type { ImageRef } from '../api.ts';
import { labelText } from '../format.ts';
import { RemoveIcon } from './LibraryIcons.tsx';

interface ThumbnailsProps {
  images: ImageRef[];
  /** What a click does, for the accessible name: "Search with", "Enlarge". */
  action: string;
  onPick: (image: ImageRef) => void;
  /** Gives each tile a remove button (with the write token). */
  onRemove?: (image: ImageRef) => void;
}

/** A grid of thumbnail buttons (examples, gallery). */
export function Thumbnails({ images, action, onPick, onRemove }: ThumbnailsProps) {
  return (
    <ul class="thumbnails">
      {images.map((image) => (
        <li key={image.id} class={onRemove ? 'removable' : undefined}>
          <button
            type="button"
            class="thumbnail"
            title={`${labelText(image)} #${image.id}`}
            aria-label={`${action} ${labelText(image)} #${image.id}`}
            onClick={() => onPick(image)}
          >
            <img src={image.thumbnailUrl} alt="" loading="lazy" />
          </button>
          {onRemove && (
            <button
              type="button"
              class="tile-remove"
              data-removes-id={image.id}
              title="Remove from the collection"
              aria-label={`Remove ${labelText(image)} #${image.id}`}
              onClick={() => onRemove(image)}
            >
              <RemoveIcon />
            </button>
          )}
        </li>
      ))}
    </ul>
  );
}
