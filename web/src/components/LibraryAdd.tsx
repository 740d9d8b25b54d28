import { useRef, useState } from 'preact/hooks';
import { filesFromDrop, filesFromInput } from '../dropped-files.ts';
import { plural } from '../format.ts';
import type { UploadLimits } from '../library-api.ts';
import {
  megabytes,
  type NotSent,
  type Picked,
  parseUrlList,
  prepareFiles,
  type ToSend,
} from '../upload-plan.ts';

interface LibraryAddProps {
  collection: string;
  limits: UploadLimits;
  onFiles: (title: string, send: ToSend[], notSent: NotSent[]) => void;
  onUrls: (urls: string[], invalid: NotSent[], label: string) => void;
}

/** "trip: 12 files", "2 folders and 3 files (40 files)": what a drop held, for its row. */
export function describePicked(picked: Picked[]): string {
  const folders = new Set(picked.filter((p) => p.path.includes('/')).map((p) => p.path.split('/')[0]!));
  const loose = picked.filter((p) => !p.path.includes('/')).length;
  if (folders.size === 1 && loose === 0) return `${[...folders][0]}: ${plural(picked.length, 'file')}`;
  const parts = [
    ...(folders.size ? [plural(folders.size, 'folder')] : []),
    ...(loose ? [plural(loose, 'file')] : []),
  ];
  return `${parts.join(' and ')}${folders.size ? ` (${plural(picked.length, 'file')})` : ''}`;
}

/** The ways images get into a collection: a drop of files or folders, two pickers, a list of addresses. */
export function LibraryAdd({ collection, limits, onFiles, onUrls }: LibraryAddProps) {
  const files = useRef<HTMLInputElement>(null);
  const folder = useRef<HTMLInputElement>(null);
  const [label, setLabel] = useState('');
  const [urls, setUrls] = useState('');
  const [dragOver, setDragOver] = useState(false);
  const [reading, setReading] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);

  const take = (picked: Picked[]) => {
    if (picked.length === 0) return setProblem('Nothing to add: there were no files in what came.');
    setProblem(null);
    const { send, notSent } = prepareFiles(picked, label, limits);
    onFiles(describePicked(picked), send, notSent);
  };

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragOver(false);
    if (!event.dataTransfer) return;
    // The folders' entries are taken now, during the event; reading them goes on after it.
    const walking = filesFromDrop(event.dataTransfer);
    setReading(true);
    walking
      .then(take)
      .catch((error: Error) => setProblem(`The dropped files could not be read: ${error.message}`))
      .finally(() => setReading(false));
  };

  const addUrls = (event: Event) => {
    event.preventDefault();
    const { urls: list, invalid } = parseUrlList(urls);
    if (list.length === 0 && invalid.length === 0)
      return setProblem('Paste one or more image addresses first.');
    setProblem(null);
    onUrls(list, invalid, label);
    setUrls('');
  };

  const picker = (input: HTMLInputElement) => {
    take(filesFromInput(input.files));
    input.value = '';
  };

  return (
    <div class="library-add">
      {/* biome-ignore lint/a11y/noStaticElementInteractions: dropping is a shortcut; the two buttons inside do the same */}
      <div
        class={`library-drop${dragOver ? ' drag-over' : ''}`}
        aria-busy={reading}
        onDragOver={(event) => {
          event.preventDefault();
          if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
          setDragOver(true);
        }}
        onDragLeave={() => setDragOver(false)}
        onDrop={onDrop}
      >
        <p>
          <strong>Drop images or whole folders here</strong>
          <br />
          <span class="muted">
            Into {collection}, {plural(limits.maxFiles, 'file')} and {megabytes(limits.maxBytes)} per request
            at most: larger drops go in several.
          </span>
        </p>
        <div class="library-pickers">
          <button type="button" onClick={() => files.current?.click()}>
            Choose images…
          </button>
          <button type="button" onClick={() => folder.current?.click()}>
            Choose a folder…
          </button>
        </div>
        <input
          ref={files}
          type="file"
          accept="image/*"
          multiple
          hidden
          data-picker="files"
          onChange={(event) => picker(event.currentTarget)}
        />
        <input
          ref={folder}
          type="file"
          multiple
          hidden
          data-picker="folder"
          // @ts-expect-error: not in Preact's types, in every browser
          webkitdirectory=""
          onChange={(event) => picker(event.currentTarget)}
        />
        {reading && <p class="muted">Reading the folders…</p>}
      </div>
      <div class="field">
        <label for="upload-label">Label (optional)</label>
        <input
          id="upload-label"
          type="text"
          value={label}
          maxLength={100}
          aria-describedby="upload-label-hint"
          onInput={(event) => setLabel(event.currentTarget.value)}
        />
        <span id="upload-label-hint" class="hint">
          Given to every image sent. Without it, images from a folder get the folder's name (the first folder
          below the one dropped), as ris index labels them.
        </span>
      </div>
      <form class="library-urls" onSubmit={addUrls}>
        <label for="upload-urls">Image addresses</label>
        <textarea
          id="upload-urls"
          rows={3}
          value={urls}
          placeholder="https://…"
          aria-describedby="upload-urls-hint"
          onInput={(event) => setUrls(event.currentTarget.value)}
        />
        <span id="upload-urls-hint" class="hint">
          One per line. The server fetches each (public http(s) addresses only).
        </span>
        <button type="submit" class="urls-submit">
          Add from addresses
        </button>
      </form>
      {problem && (
        <p class="field-error" role="alert">
          {problem}
        </p>
      )}
    </div>
  );
}
