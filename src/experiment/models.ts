import { join } from 'node:path';
import { normalizeRows } from '../ann/metric.ts';
import {
  applyProjection,
  type LinearProjection,
  learnLda,
  learnWhitening,
  saveProjection,
  stratifiedSplit,
} from '../embed/projection.ts';
import { ArgumentError } from '../errors.ts';
import { displayModel, type ModelFeatures, modelFeatures, POOLINGS, type Pooling } from './features.ts';
import { leaveOneOut, type RetrievalScores } from './retrieval.ts';
import { type ExperimentEvent, type ExperimentRow, emptyRow } from './types.ts';

export const NORMALIZATIONS = ['none', 'l2', 'pca-whitening'] as const;
export type Normalization = (typeof NORMALIZATIONS)[number];
export type Split = 'leave-one-out' | 'held-out';

export interface ModelsInput {
  /** Absolute image paths, each with a label index (≥ 0). */
  paths: string[];
  labels: Int32Array;
  /** A collection's stored vectors (row i for paths[i]): its own model's pass is then free. */
  stored?: { modelId: string; vectors: Float32Array };
}

export interface ModelsOptions {
  models: string[];
  split: Split;
  seed: number;
  /** Where the learned projections are written. */
  outDir: string;
  cacheDir?: string;
  threads?: number;
  batchSize?: number;
  /** Dimensions PCA-whitening keeps. Default 256 (or fewer when the vectors have fewer). */
  whiteningDimensions?: number;
  signal?: AbortSignal;
  emit: (row: ExperimentRow) => Promise<void>;
  onProgress?: (event: ExperimentEvent) => void;
}

/** Rows the models preset makes per model: 4 poolings × 3 normalisations, and raw vs LDA per pooling. */
export const ROWS_PER_MODEL = (1 + POOLINGS.length) * (NORMALIZATIONS.length + 2);

function pick(x: Float32Array, d: number, rows: readonly number[]): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => {
    out.set(x.subarray(r * d, (r + 1) * d), i * d);
  });
  return out;
}

/**
 * The feature-extraction notebook's question with numbers: every model × pooling × normalisation,
 * same-label P@1, P@5 and mAP@10 (leave-one-out over all images, or within a held-out half that
 * nothing was fitted on); then per pooling a linear projection learned from the labels of the other half
 * (LDA), against the raw unit-length features on that same held-out half. The projection of each model's
 * configured embedding (what its collections store) is saved for `ris index --projection`.
 */
export async function runModels(
  input: ModelsInput,
  options: ModelsOptions,
): Promise<{ notes: string[]; projections: { model: string; file: string; beatsRaw: boolean }[] }> {
  const notes: string[] = [];
  const projections: { model: string; file: string; beatsRaw: boolean }[] = [];
  if (new Set(input.labels).size < 2) {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      'The models preset needs images of at least 2 labels (the first sub-folder of each image is its label)',
    );
  }
  for (const model of options.models) {
    if (options.signal?.aborted) break;
    options.onProgress?.({ type: 'step', label: displayModel(model), phase: 'embed' });
    const features = await modelFeatures(model, input.paths, {
      cacheDir: options.cacheDir,
      threads: options.threads,
      batchSize: options.batchSize,
      stored: input.stored,
      signal: options.signal,
      onProgress: (e) => options.onProgress?.({ type: 'embed', model: displayModel(model), ...e }),
    });
    notes.push(
      `${displayModel(model)}: ${features.rows.length} of ${input.paths.length} images embedded in ${features.embedSeconds.toFixed(1)} s` +
        (input.stored?.modelId === features.modelId
          ? ' (its configured embedding read from the collection)'
          : ''),
    );
    if (features.note) notes.push(features.note);
    const saved = await measureModel(features, input, options);
    if (saved) projections.push(saved);
  }
  return { notes, projections };
}

async function measureModel(
  features: ModelFeatures,
  input: ModelsInput,
  options: ModelsOptions,
): Promise<{ model: string; file: string; beatsRaw: boolean } | undefined> {
  const d = features.dimension;
  const labels = Int32Array.from(features.rows, (r) => input.labels[r]!);
  const all = Array.from({ length: labels.length }, (_, i) => i);
  const { fit: train, check: test } = stratifiedSplit(labels, 0.5, options.seed);
  const name = displayModel(features.model);
  const row = (pooling: Pooling, normalization: string, split: Split | 'held-out', group: string) => {
    const where = group === 'projection' ? ', held-out half' : '';
    const r = emptyRow('models', group, `${name} ${pooling} ${normalization}${where}`);
    r.model = name;
    r.pooling = pooling;
    r.normalization = normalization;
    r.split = split;
    return r;
  };
  const fill = (r: ExperimentRow, scores: RetrievalScores, dimension: number, n: number) => {
    r.precisionAt1 = scores.precisionAt1;
    r.precisionAt5 = scores.precisionAt5;
    r.map10 = scores.map10;
    r.dimension = dimension;
    r.n = n;
    r.queries = n;
  };
  let saved: { model: string; file: string; beatsRaw: boolean } | undefined;
  for (const pooling of ['configured', ...POOLINGS] as Pooling[]) {
    const x = features.vectors.get(pooling);
    if (!x) {
      for (const normalization of NORMALIZATIONS)
        await options.emit({
          ...row(pooling, normalization, options.split, 'models'),
          skipped: features.note ?? 'no feature map',
        });
      for (const normalization of ['l2', 'lda'])
        await options.emit({
          ...row(pooling, normalization, 'held-out', 'projection'),
          skipped: features.note ?? 'no feature map',
        });
      continue;
    }
    const evalRows = options.split === 'leave-one-out' ? all : test;
    const fitRows = options.split === 'leave-one-out' ? all : train;
    const evalLabels = Int32Array.from(evalRows, (i) => labels[i]!);
    for (const normalization of NORMALIZATIONS) {
      if (options.signal?.aborted) return saved;
      options.onProgress?.({ type: 'step', label: `${name} ${pooling} ${normalization}`, phase: 'fit' });
      await new Promise<void>((resolve) => setImmediate(resolve));
      const r = row(pooling, normalization, options.split, 'models');
      const started = performance.now();
      let vectors = pick(x, d, evalRows);
      let dimension = d;
      if (normalization === 'l2') vectors = normalizeRows(vectors, d);
      else if (normalization === 'pca-whitening') {
        const whitening = learnWhitening(pick(x, d, fitRows), d, {
          dimensions: options.whiteningDimensions,
          seed: options.seed,
        });
        vectors = applyProjection(whitening, vectors);
        dimension = whitening.outputDimension;
        r.trainSeconds = (performance.now() - started) / 1000;
        r.params = { whiteningDimensions: dimension };
      }
      fill(r, leaveOneOut(vectors, dimension, evalLabels), dimension, evalRows.length);
      await options.emit(r);
    }

    // The learned projection: fitted on the training half, measured on the held-out half.
    if (options.signal?.aborted) return saved;
    options.onProgress?.({ type: 'step', label: `${name} ${pooling} LDA`, phase: 'fit' });
    await new Promise<void>((resolve) => setImmediate(resolve));
    const testLabels = Int32Array.from(test, (i) => labels[i]!);
    const raw = row(pooling, 'l2', 'held-out', 'projection');
    const rawScores = leaveOneOut(normalizeRows(pick(x, d, test), d), d, testLabels);
    fill(raw, rawScores, d, test.length);
    await options.emit(raw);
    const lda = row(pooling, 'lda', 'held-out', 'projection');
    let projection: LinearProjection;
    const started = performance.now();
    try {
      projection = learnLda(
        pick(x, d, train),
        Int32Array.from(train, (i) => labels[i]!),
        d,
        {
          seed: options.seed,
          score: (projected, dim, y) => leaveOneOut(projected, dim, y).precisionAt5 ?? 0,
          model: pooling === 'configured' ? features.model : null,
          modelId: pooling === 'configured' ? features.modelId : null,
        },
      );
    } catch (error) {
      if (!(error instanceof ArgumentError)) throw error;
      await options.emit({ ...lda, skipped: error.message });
      continue;
    }
    lda.trainSeconds = (performance.now() - started) / 1000;
    lda.params = {
      shrinkage: projection.trainedOn.shrinkage,
      trainedOn: projection.trainedOn.vectors,
      classes: projection.trainedOn.classes,
    };
    const ldaScores = leaveOneOut(
      applyProjection(projection, pick(x, d, test)),
      projection.outputDimension,
      testLabels,
    );
    fill(lda, ldaScores, projection.outputDimension, test.length);
    const beatsRaw = (ldaScores.precisionAt5 ?? 0) > (rawScores.precisionAt5 ?? 0);
    lda.params.beatsRaw = beatsRaw;
    await options.emit(lda);
    if (pooling === 'configured') {
      // Measured on the held-out half; saved refitted on every labelled image with the shrinkage chosen.
      const final = learnLda(x, labels, d, {
        shrinkage: projection.trainedOn.shrinkage ?? undefined,
        model: features.model,
        modelId: features.modelId,
      });
      const file = `projection-${name.replace(/\.onnx$/, '').replace(/[^a-z0-9._-]+/gi, '_')}.json`;
      await saveProjection(join(options.outDir, file), final);
      saved = { model: features.model, file, beatsRaw };
    }
  }
  return saved;
}
