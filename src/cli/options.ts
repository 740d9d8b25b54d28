import type { IndexSettingsInput } from '../collection/manifest.ts';

/** Options every collection command takes: where the collections are kept. */
export interface StoreOption {
  /** A postgres:// URL or a folder; default $RIS_DATABASE_URL, else $RIS_HOME. */
  store?: string;
}

export interface IndexCommandOptions extends StoreOption {
  collection: string;
  /** A projection file written by ris experiment --preset models. */
  projection?: string;
  model?: string;
  index?: IndexSettingsInput['kind'];
  /** Bytes the index may hold in memory ('auto' only); see IndexSettings.memoryBudget. */
  memoryBudget?: number;
  partitions?: number;
  subVectors?: number;
  from?: string;
  dir?: string;
}
