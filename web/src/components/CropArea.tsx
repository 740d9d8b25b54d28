import { useRef } from 'preact/hooks';
import type { CropBox } from '../api.ts';

export interface Size {
  width: number;
  height: number;
}

interface CropAreaProps {
  /** The image's own pixel size: the crop is kept in these pixels, whatever size it is shown at. */
  natural: Size;
  crop: CropBox | null;
  editing: boolean;
  onChange: (crop: CropBox) => void;
}

const MIN_SIDE = 4;

/** Keeps a box inside the image, in whole pixels, at least MIN_SIDE pixels a side. */
export function clampCrop(box: CropBox, natural: Size): CropBox {
  const width = Math.round(Math.min(Math.max(box.width, MIN_SIDE), natural.width));
  const height = Math.round(Math.min(Math.max(box.height, MIN_SIDE), natural.height));
  return {
    left: Math.round(Math.min(Math.max(box.left, 0), natural.width - width)),
    top: Math.round(Math.min(Math.max(box.top, 0), natural.height - height)),
    width,
    height,
  };
}

/** The box a new crop starts with: the middle 80% of the image. */
export function initialCrop(natural: Size): CropBox {
  return clampCrop(
    {
      left: natural.width * 0.1,
      top: natural.height * 0.1,
      width: natural.width * 0.8,
      height: natural.height * 0.8,
    },
    natural,
  );
}

type Drag =
  | { mode: 'draw'; startX: number; startY: number }
  | { mode: 'move'; offsetX: number; offsetY: number; box: CropBox };

/**
 * The crop drawn over an image. While editing: drag to draw a new box, drag inside the box to move it,
 * arrow keys move it and Shift+arrow keys resize it. Outside the box the image is dimmed.
 */
export function CropArea({ natural, crop, editing, onChange }: CropAreaProps) {
  const surface = useRef<HTMLDivElement>(null);
  const drag = useRef<Drag | null>(null);

  const pointInImage = (event: PointerEvent) => {
    const rect = surface.current!.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / rect.width) * natural.width,
      y: ((event.clientY - rect.top) / rect.height) * natural.height,
    };
  };

  const onPointerDown = (event: PointerEvent) => {
    if (!editing || event.button !== 0) return;
    event.preventDefault();
    surface.current!.setPointerCapture(event.pointerId);
    const { x, y } = pointInImage(event);
    const inside =
      crop && x >= crop.left && x <= crop.left + crop.width && y >= crop.top && y <= crop.top + crop.height;
    drag.current = inside
      ? { mode: 'move', offsetX: x - crop.left, offsetY: y - crop.top, box: crop }
      : { mode: 'draw', startX: x, startY: y };
  };

  const onPointerMove = (event: PointerEvent) => {
    const current = drag.current;
    if (!current) return;
    const { x, y } = pointInImage(event);
    if (current.mode === 'move') {
      onChange(clampCrop({ ...current.box, left: x - current.offsetX, top: y - current.offsetY }, natural));
      return;
    }
    const left = Math.max(0, Math.min(current.startX, x));
    const top = Math.max(0, Math.min(current.startY, y));
    const right = Math.min(natural.width, Math.max(current.startX, x));
    const bottom = Math.min(natural.height, Math.max(current.startY, y));
    onChange(clampCrop({ left, top, width: right - left, height: bottom - top }, natural));
  };

  const endDrag = () => {
    drag.current = null;
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if (!crop) return;
    const step = Math.max(1, Math.round(Math.max(natural.width, natural.height) * 0.02));
    const delta: Record<string, [number, number]> = {
      ArrowLeft: [-step, 0],
      ArrowRight: [step, 0],
      ArrowUp: [0, -step],
      ArrowDown: [0, step],
    };
    const move = delta[event.key];
    if (!move) return;
    event.preventDefault();
    const [dx, dy] = move;
    onChange(
      clampCrop(
        event.shiftKey
          ? { ...crop, width: crop.width + dx, height: crop.height + dy }
          : { ...crop, left: crop.left + dx, top: crop.top + dy },
        natural,
      ),
    );
  };

  const percent = (value: number, whole: number) => `${(value / whole) * 100}%`;
  return (
    <div
      ref={surface}
      class={`crop-surface${editing ? ' editing' : ''}`}
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={endDrag}
      onPointerCancel={endDrag}
    >
      {crop && (
        // biome-ignore lint/a11y/useSemanticElements: a movable box has no native element; arrow keys move it
        <div
          class="crop-box"
          role="group"
          tabIndex={editing ? 0 : -1}
          aria-label={`Crop area, ${crop.width} by ${crop.height} pixels at ${crop.left}, ${crop.top}: arrow keys move it, Shift+arrow keys resize it`}
          onKeyDown={onKeyDown}
          style={{
            left: percent(crop.left, natural.width),
            top: percent(crop.top, natural.height),
            width: percent(crop.width, natural.width),
            height: percent(crop.height, natural.height),
          }}
        >
          <span class="crop-size" aria-hidden="true">
            {crop.width}×{crop.height}
          </span>
        </div>
      )}
    </div>
  );
}
