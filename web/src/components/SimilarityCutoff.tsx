import type { SimilarityScale } from '../api.ts';

interface SimilarityCutoffProps {
  /** The collection's model scale: where its similarities live, and the step between them. */
  scale: SimilarityScale;
  /** The cutoff; null: none (the slider at its start). */
  value: number | null;
  onChange: (value: number | null) => void;
}

const decimalsOf = (step: number) => Math.max(0, Math.min(4, Math.ceil(-Math.log10(step) - 1e-9)));

/** A cutoff within the model's scale, or none. */
export function clampCutoff(value: number | null, scale: SimilarityScale): number | null {
  if (value === null || value <= scale.min) return null;
  return Math.min(value, scale.max);
}

/**
 * The relevance cutoff: results less similar than this are not answered. Its range and steps follow the
 * collection's model (ImageNet features and CLIP text–image cosines live on very different scales);
 * at its start it is off, as by default.
 */
export function SimilarityCutoff({ scale, value, onChange }: SimilarityCutoffProps) {
  const text = value === null ? 'off' : value.toFixed(decimalsOf(scale.step));
  return (
    <div class="similarity-cutoff">
      <label for="min-similarity">
        <strong>Minimum similarity</strong>
      </label>
      <input
        id="min-similarity"
        type="range"
        min={scale.min}
        max={scale.max}
        step={scale.step}
        value={value ?? scale.min}
        aria-valuetext={text}
        aria-describedby="min-similarity-hint"
        onInput={(event) => onChange(clampCutoff(Number(event.currentTarget.value), scale))}
      />
      <output for="min-similarity">{text}</output>
      <span id="min-similarity-hint" class="visually-hidden">
        At its start, off: every result is shown however far.
      </span>
    </div>
  );
}
