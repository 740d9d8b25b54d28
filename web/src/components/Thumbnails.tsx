import type { ImageRef } from '../api.ts';
import { labelText } from '../format.ts';

interface ThumbnailsProps {
  images: ImageRef[];
  /** What a click does, for the accessible name: "Search with", "Enlarge". */
  action: string;
  onPick: (image: ImageRef) => void;
}

/** A grid of thumbnail buttons (examples, gallery). */
export function Thumbnails({ images, action, onPick }: ThumbnailsProps) {
  return (
    <ul class="thumbnails">
      {images.map((image) => (
        <li key={image.id}>
          <button
            type="button"
            class="thumbnail"
            title={`${labelText(image)} #${image.id}`}
            aria-label={`${action} ${labelText(image)} #${image.id}`}
            onClick={() => onPick(image)}
          >
            <img src={image.thumbnailUrl} alt="" loading="lazy" />
          </button>
        </li>
      ))}
    </ul>
  );
}
