import type { ComponentChildren } from 'preact';
import { useRef, useState } from 'preact/hooks';
import type { CropBox } from '../api.ts';
import type { Query } from '../query.ts';
import { CropArea, initialCrop, type Size } from './CropArea.tsx';

interface ImagePaneProps {
  title: string;
  query: Query | null;
  onCropChange: (crop: CropBox | null) => void;
  /** Shown instead of the image (the live camera). */
  live?: ComponentChildren;
  /** Makes the pane take files: a button, drag and drop. Without it the pane only shows. */
  onFile?: (file: Blob, name: string) => void;
  /** A dropped link (an image dragged from another page). */
  onUrl?: (url: string) => void;
  emptyText: string;
}

/** One of the two panes: an image with its crop, and for To search, the ways to put an image in. */
export function ImagePane({ title, query, onCropChange, live, onFile, onUrl, emptyText }: ImagePaneProps) {
  const headingId = `pane-${title.toLowerCase().replace(/\W+/g, '-')}`;
  const fileInput = useRef<HTMLInputElement>(null);
  const [dragOver, setDragOver] = useState(false);
  // Each is kept with the image it belongs to, so a new image starts unmeasured and not being cropped
  // (with no effect to reset them, which could run after the new image has already loaded).
  const previewUrl = query?.previewUrl;
  const [measured, setMeasured] = useState<{ url: string; size: Size | 'broken' } | null>(null);
  const [editingUrl, setEditingUrl] = useState<string | null>(null);
  const size = measured?.url === previewUrl ? measured?.size : undefined;
  const natural = size && size !== 'broken' ? size : null;
  const broken = size === 'broken';
  const editing = !!previewUrl && editingUrl === previewUrl;
  const setEditing = (on: boolean) => setEditingUrl(on && previewUrl ? previewUrl : null);

  const chooseFile = () => fileInput.current?.click();
  const onDrop = (event: DragEvent) => {
    if (!onFile) return;
    event.preventDefault();
    setDragOver(false);
    const data = event.dataTransfer;
    const file = data?.files[0];
    if (file) return onFile(file, file.name);
    const link = data?.getData('text/uri-list') || data?.getData('text/plain');
    if (link && onUrl) onUrl(link.split('\n')[0]!.trim());
  };

  const toggleCrop = () => {
    if (!natural) return;
    if (!editing && !query?.crop) onCropChange(initialCrop(natural));
    setEditing(!editing);
  };

  return (
    <section class="pane" aria-labelledby={headingId}>
      <h3 id={headingId}>{title}</h3>
      {/* biome-ignore lint/a11y/noStaticElementInteractions: dropping is a shortcut; the Upload button does the same */}
      <div
        class={`pane-frame${dragOver ? ' drag-over' : ''}`}
        onDragOver={
          onFile
            ? (event) => {
                event.preventDefault();
                setDragOver(true);
              }
            : undefined
        }
        onDragLeave={() => setDragOver(false)}
        onDrop={onDrop}
      >
        {live ??
          (query ? (
            <div class="image-wrap">
              <img
                hidden={broken}
                src={query.previewUrl}
                alt={`${title}: ${query.title}${query.crop ? ' (cropped)' : ''}`}
                // As large as fits the frame, small images included, keeping their shape (cq: frame units).
                style={
                  natural ? { width: `min(100cqw, ${(100 * natural.width) / natural.height}cqh)` } : undefined
                }
                onLoad={(event) => {
                  const img = event.currentTarget;
                  setMeasured({
                    url: query.previewUrl,
                    size: { width: img.naturalWidth, height: img.naturalHeight },
                  });
                }}
                onError={() => setMeasured({ url: query.previewUrl, size: 'broken' })}
              />
              {natural && (
                <CropArea natural={natural} crop={query.crop} editing={editing} onChange={onCropChange} />
              )}
              {broken && (
                <p class="preview-missing">
                  No preview: the browser could not show this image. Search may still work, since the server
                  reads the image itself and decodes more formats.
                </p>
              )}
            </div>
          ) : onFile ? (
            <button type="button" class="empty-drop" onClick={chooseFile}>
              {emptyText}
            </button>
          ) : (
            <p class="empty-note">{emptyText}</p>
          ))}
      </div>
      <div class="pane-tools">
        {onFile && (
          <>
            <button type="button" onClick={chooseFile}>
              Upload image
            </button>
            <input
              ref={fileInput}
              type="file"
              accept="image/*"
              hidden
              onChange={(event) => {
                const file = event.currentTarget.files?.[0];
                if (file) onFile(file, file.name);
                event.currentTarget.value = '';
              }}
            />
          </>
        )}
        <button
          type="button"
          aria-pressed={editing}
          aria-label={`Crop ${title}`}
          disabled={!natural || !!live}
          onClick={toggleCrop}
        >
          Crop
        </button>
        {query?.crop && (
          <button
            type="button"
            aria-label={`Uncrop ${title}`}
            onClick={() => {
              setEditing(false);
              onCropChange(null);
            }}
          >
            Uncrop
          </button>
        )}
      </div>
      {editing && (
        <p class="hint">
          Drag on the image to choose the part to search; arrow keys move the box, Shift+arrows resize it.
        </p>
      )}
    </section>
  );
}
