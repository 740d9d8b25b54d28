/** `ris experiment` as a library: the reference notebooks' measurements, seeded, with reports and plots. */

export {
  applyProjection,
  type LdaOptions,
  type LinearProjection,
  learnLda,
  learnWhitening,
  loadProjection,
  projectionFromJson,
  projectionToJson,
  saveProjection,
} from '../embed/projection.ts';
export { type FeatureMap, findFeatureMap } from './features.ts';
export { meanAveragePrecisionAtK, notebookRecallAt5, precisionAtK, recallAtK } from './metrics.ts';
export { type Plot, plotsFor, renderSvg } from './plots.ts';
export { reportMarkdown } from './report.ts';
export { leaveOneOut, type RetrievalScores } from './retrieval.ts';
export { type ExperimentOptions, runExperiment } from './run.ts';
export {
  type ExperimentEvent,
  type ExperimentResults,
  type ExperimentRow,
  type MachineInfo,
  PRESETS,
  type Preset,
  type RunStatus,
} from './types.ts';
