import { useEffect, useRef, useState } from 'preact/hooks';
import type { SimilarityScale } from '../api.ts';
import {
  allDuplicates,
  bytesText,
  type DuplicateGroup,
  type DuplicateImage,
  type DuplicatesPage,
  duplicates,
  fileName,
  imageRefOf,
} from '../duplicates-api.ts';
import { plural, similarityText } from '../format.ts';
import type { Activity } from '../library-events.ts';
import type { Removals } from '../removals.ts';
import './duplicates.css';
import { type Comparison, DuplicateCompare } from './DuplicateCompare.tsx';

/** Groups a page shows: 10,000 groups stay responsive, 50 at a time. */
const PER_PAGE = 50;
/** A slider moved by the keyboard asks once it rests. */
const SETTLE_MS = 350;

/** The hint's words for where the default threshold came from. */
const DEFAULT_FROM: Record<DuplicatesPage['thresholdSource'], string> = {
  model: "The model's default, measured on edited copies. ",
  calibrated: "Calibrated on edited copies of this collection's own images. ",
  given: '',
  none: 'No image could be read to calibrate a default on: choose a threshold. ',
};

interface DuplicatesProps {
  collection: string;
  /** The model's similarity scale: the threshold slider's range and step. */
  scale: SimilarityScale;
  /** The collection's generation as the server last told it: a change asks again. */
  generation?: number;
  /** The server's progress in finding the groups (GET /api/events), shown while the page waits. */
  progress?: Activity;
  removals: Removals;
  /** "Remove the others" is offered with the write token only. */
  canWrite: boolean;
}

/** What the server is doing while the page waits for the groups. */
const STAGES = {
  calibrate: 'Calibrating the threshold on images of this collection',
  neighbours: "Searching each image's nearest neighbours",
  compare: 'Comparing the pixels of candidate pairs',
} as const;
/** "1 copy", "2,400 copies". */
const copies = (n: number) => `${n.toLocaleString('en')} cop${n === 1 ? 'y' : 'ies'}`;
const decimalsOf = (step: number) => Math.max(2, Math.min(4, Math.ceil(-Math.log10(step) - 1e-9)));

/**
 * The Duplicates view: groups of copies (GET …/duplicates), the image to keep first in each, with a
 * threshold slider (the model's default until moved), pages of groups, a full-size comparison of two
 * members, and "remove the others" per group and for all groups, which removes the copies from the
 * collection (with undo) and never touches the files themselves.
 */
export function Duplicates({ collection, scale, generation, progress, removals, canWrite }: DuplicatesProps) {
  /** The threshold asked for; null: the model's default. */
  const [threshold, setThreshold] = useState<number | null>(null);
  /** Where the slider is while it moves (asked for once it rests). */
  const [draft, setDraft] = useState<number | null>(null);
  const [page, setPage] = useState(0);
  const [answer, setAnswer] = useState<DuplicatesPage | null>(null);
  const [loading, setLoading] = useState(true);
  const [failed, setFailed] = useState<string | null>(null);
  const [comparison, setComparison] = useState<Comparison | null>(null);
  /** "Remove the others in all groups": counting, then waiting for a confirmation. */
  const [bulk, setBulk] = useState<
    { state: 'counting' } | { state: 'confirm'; images: DuplicateImage[]; groups: number } | null
  >(null);
  const settle = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  useEffect(() => {
    const controller = new AbortController();
    setLoading(true);
    setFailed(null);
    duplicates(collection, { threshold, page, count: PER_PAGE }, controller.signal)
      .then((found) => {
        // Fewer groups than before (copies removed): the last page that has any.
        if (found.groups.length === 0 && page > 0)
          setPage(Math.max(0, Math.ceil(found.total / PER_PAGE) - 1));
        setAnswer(found);
        setLoading(false);
      })
      .catch((error: unknown) => {
        if (controller.signal.aborted) return;
        setFailed(error instanceof Error ? error.message : String(error));
        setLoading(false);
      });
    return () => controller.abort();
  }, [collection, threshold, page, generation]);
  useEffect(() => () => clearTimeout(settle.current), []);

  const shownThreshold = draft ?? threshold ?? answer?.threshold ?? null;
  const decimals = decimalsOf(scale.step);
  const moveThreshold = (value: number) => {
    setDraft(value);
    setBulk(null);
    clearTimeout(settle.current);
    settle.current = setTimeout(() => {
      setThreshold(value);
      setPage(0);
      setDraft(null);
    }, SETTLE_MS);
  };

  const isGone = (image: DuplicateImage) => removals.isRemoved(collection, image.id);
  // A group whose copies were removed here leaves the page at once (the server's answer follows).
  const visible = (answer?.groups ?? [])
    .map((group, i) => ({
      number: (answer?.page ?? 0) * PER_PAGE + i + 1,
      images: group.images.filter((m) => !isGone(m)),
    }))
    .filter((group) => group.images.length >= 2 && group.images[0]!.keep);
  const others = (group: DuplicateGroup) => group.images.filter((image) => !image.keep);
  const removeOthers = (group: DuplicateGroup) => {
    const gone = others(group);
    removals.removeMany(
      collection,
      gone.map((image) => imageRefOf(collection, image)),
      gone.length === 1
        ? `the copy ${fileName(gone[0]!)}`
        : `${copies(gone.length)} of ${fileName(group.images[0]!)}`,
    );
  };
  const countAll = () => {
    setBulk({ state: 'counting' });
    allDuplicates(collection, threshold)
      .then((groups) => {
        const images = groups.flatMap((group) => others(group).filter((image) => !isGone(image)));
        setBulk({ state: 'confirm', images, groups: groups.length });
      })
      .catch((error: unknown) => {
        setBulk(null);
        setFailed(
          `the groups could not be listed (${error instanceof Error ? error.message : String(error)})`,
        );
      });
  };
  const total = answer?.total ?? 0;
  // From the answer shown, not the page asked for: the range changes with the groups it names.
  const first = (answer?.page ?? 0) * PER_PAGE;
  const pages = Math.ceil(total / PER_PAGE);

  return (
    <section class="duplicates" aria-labelledby="duplicates-heading" aria-busy={loading}>
      <h2 id="duplicates-heading">Duplicates</h2>
      <p class="hint">
        Copies of one picture (resized, cropped, mirrored, re-saved, lighter or darker, grayscale) found from
        each image's nearest neighbours and a second look at their pixels. The image to keep (most pixels,
        then the largest file, then the oldest) comes first. Click an image to compare it with the kept one at
        full size.
      </p>
      <div class="duplicates-settings">
        <label for="duplicate-threshold">
          <strong>Similarity threshold</strong>
        </label>
        <input
          id="duplicate-threshold"
          type="range"
          min={scale.min}
          max={scale.max}
          step={scale.step}
          value={shownThreshold ?? scale.max}
          disabled={shownThreshold === null}
          aria-describedby="duplicate-threshold-hint"
          onInput={(event) => moveThreshold(Number(event.currentTarget.value))}
        />
        <output for="duplicate-threshold">
          {shownThreshold === null ? '…' : shownThreshold.toFixed(decimals)}
        </output>
        {threshold !== null && (
          <button
            type="button"
            onClick={() => {
              setThreshold(null);
              setDraft(null);
              setPage(0);
            }}
          >
            Default threshold
          </button>
        )}
        <span id="duplicate-threshold-hint" class="muted">
          {threshold === null && answer ? DEFAULT_FROM[answer.thresholdSource] : ''}Lower finds heavier edits
          and compares more pairs.
        </span>
      </div>

      {failed && (
        <p class="field-error" role="alert">
          The duplicates could not be found: {failed}
        </p>
      )}
      {answer && (
        <div class="duplicates-summary">
          <p aria-live="polite">
            {total === 0
              ? `No copies found at ${answer.threshold.toFixed(decimals)}.`
              : `${plural(total, 'group')} of copies at ${answer.threshold.toFixed(decimals)}; groups ${first + 1}–${Math.min(total, first + PER_PAGE)} shown.`}
          </p>
          {canWrite && total > 0 && !bulk && (
            <button type="button" onClick={countAll}>
              Remove the others in all groups…
            </button>
          )}
          {bulk?.state === 'counting' && <p class="muted">Counting the copies of every group…</p>}
          {bulk?.state === 'confirm' && (
            <div class="duplicates-confirm">
              <p>
                Remove {copies(bulk.images.length)} in {plural(bulk.groups, 'group')} from {collection},
                keeping the first image of each? The files stay where they are.
              </p>
              <button
                type="button"
                class="danger"
                disabled={bulk.images.length === 0}
                onClick={() => {
                  removals.removeMany(
                    collection,
                    bulk.images.map((image) => imageRefOf(collection, image)),
                    `${copies(bulk.images.length)} in ${plural(bulk.groups, 'group')}`,
                  );
                  setBulk(null);
                }}
              >
                Remove {bulk.images.length.toLocaleString('en')} images
              </button>
              <button type="button" onClick={() => setBulk(null)}>
                Cancel
              </button>
            </div>
          )}
        </div>
      )}
      {loading && (
        <div class="duplicates-progress" role="status">
          {progress && progress.done < progress.total ? (
            <>
              <label for="duplicates-progress">
                {STAGES[progress.stage ?? 'compare']}: {progress.done.toLocaleString('en')} of{' '}
                {progress.total.toLocaleString('en')}
              </label>
              <progress id="duplicates-progress" max={progress.total} value={progress.done} />
            </>
          ) : (
            <span class="muted">Looking for copies…</span>
          )}
        </div>
      )}

      <ol class="duplicate-groups">
        {visible.map((group) => (
          <li key={group.images[0]!.id} class="duplicate-group" aria-label={`Group ${group.number}`}>
            <ul class="duplicate-members">
              {group.images.map((image) => (
                <li key={image.id} class={image.keep ? 'duplicate-member keep' : 'duplicate-member'}>
                  <button
                    type="button"
                    class="duplicate-thumb"
                    title={image.path}
                    aria-label={`Compare ${fileName(image)}${image.keep ? ' (kept)' : ''} with ${image.keep ? 'a copy' : 'the kept image'}`}
                    onClick={() =>
                      setComparison({
                        keeper: group.images[0]!,
                        other: image.keep ? group.images[1]! : image,
                        imageUrl: (shown) => imageRefOf(collection, shown).imageUrl,
                      })
                    }
                  >
                    <img src={imageRefOf(collection, image).thumbnailUrl} alt="" loading="lazy" />
                  </button>
                  <p class="duplicate-facts">
                    {image.keep ? (
                      <strong class="keep-badge">Keep</strong>
                    ) : image.identical ? (
                      <span>same bytes</span>
                    ) : (
                      <span>similarity {similarityText(image.similarity)}</span>
                    )}
                    <br />
                    <span>
                      {image.width} × {image.height}
                    </span>{' '}
                    · <span>{bytesText(image.bytes)}</span>
                    <br />
                    <span class="muted duplicate-name" title={image.path}>
                      {fileName(image)}
                    </span>
                  </p>
                </li>
              ))}
            </ul>
            {canWrite && (
              <button type="button" class="duplicate-remove" onClick={() => removeOthers(group)}>
                Remove the others ({group.images.length - 1})
              </button>
            )}
          </li>
        ))}
      </ol>

      {total > PER_PAGE && (
        <nav class="duplicates-pages" aria-label="Pages of groups">
          <button type="button" disabled={page === 0 || loading} onClick={() => setPage(page - 1)}>
            Previous
          </button>
          <label>
            Page{' '}
            <input
              type="number"
              min={1}
              max={pages}
              value={page + 1}
              // Read-only, not disabled, while a page loads: the keyboard's focus stays on it.
              readOnly={loading}
              // Committed on Enter, blur or the arrows: a jump across thousands of groups in one step.
              onChange={(event) => {
                const wanted = Number(event.currentTarget.value);
                if (Number.isInteger(wanted) && wanted >= 1 && wanted <= pages) setPage(wanted - 1);
                else event.currentTarget.value = String(page + 1);
              }}
            />{' '}
            of {pages}
          </label>
          <button type="button" disabled={!answer?.hasMore || loading} onClick={() => setPage(page + 1)}>
            Next
          </button>
        </nav>
      )}
      <DuplicateCompare comparison={comparison} onClose={() => setComparison(null)} />
    </section>
  );
}
