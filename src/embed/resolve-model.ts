import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Dispatcher } from 'undici';
import { ModelError } from '../errors.ts';
import {
  MODEL_REGISTRY,
  type ModelConfig,
  parseModelConfig,
  type RegistryEntry,
  type RegistryFile,
  type SelfTestSpec,
} from './config.ts';
import { type DownloadProgress, downloadVerified, fileSha256 } from './download.ts';

export interface ResolveOptions {
  cacheDir: string;
  mirrors?: string[];
  officialSources?: boolean;
  /** Which text tower of a model that has two. */
  textTower?: 'quantized' | 'float';
  dispatcher?: Dispatcher;
  onProgress?: (event: DownloadProgress) => void;
  /** Whether the self-test has passed on this machine for these files (then its image is not fetched). */
  selfTestPassed?: (model: ResolvedModel) => Promise<boolean>;
}

/** A model's files on disk, checked, and its config. */
export interface ResolvedModel {
  /** The image model. */
  file: string;
  config: ModelConfig;
  sha256: string;
  /** The text tower and its tokenizer's files, where the config has a text tower. */
  text?: { file: string; sha256: string; vocab: string; merges: string; tokenizerSha256: string };
  /** A registry model's self-test, with its image where the test still has to run. */
  selfTest?: { spec: SelfTestSpec; record: string; image: string | undefined };
}

/** Finds a model's files: a built-in model's in the cache (downloaded and checked), or a local .onnx file's. */
export async function resolveModel(model: string, options: ResolveOptions): Promise<ResolvedModel> {
  const entry = MODEL_REGISTRY[model];
  if (entry) return resolveRegistryModel(model, entry, options);
  if (model.endsWith('.onnx')) return resolveLocalModel(model, options.textTower);
  throw new ModelError(
    'UNKNOWN_MODEL',
    `Unknown model "${model}"; use one of ${Object.keys(MODEL_REGISTRY).join(', ')} or the path of an .onnx file`,
  );
}

/**
 * Whether a model (a built-in name or a local .onnx path) has a text tower, from its config alone: no
 * file is loaded or downloaded. False for a model whose config cannot be read.
 */
export function modelHasTextTower(model: string): boolean {
  const entry = MODEL_REGISTRY[model];
  if (entry) return entry.config.text !== undefined;
  try {
    const raw = JSON.parse(readFileSync(resolve(model).replace(/\.onnx$/, '.json'), 'utf8')) as {
      text?: unknown;
    };
    return typeof raw.text === 'object' && raw.text !== null;
  } catch {
    return false;
  }
}

async function resolveRegistryModel(
  model: string,
  entry: RegistryEntry,
  options: ResolveOptions,
): Promise<ResolvedModel> {
  const config = parseModelConfig(entry.config, model);
  const folder = dirname(entry.fileName);
  // A file the config names, by its registry entry (names are relative to the image model's folder).
  const named = (name: string): RegistryFile => {
    const fileName = folder === '.' ? name : `${folder}/${name}`;
    const file = entry.files?.find((f) => f.fileName === fileName);
    if (!file) throw new Error(`registry entry ${model} lists no file ${fileName}`);
    return file;
  };
  const files: RegistryFile[] = [entry];
  let textFiles: RegistryFile[] | undefined;
  if (config.text) {
    const tower = textTowerName(model, config, options.textTower);
    textFiles = [named(tower), named(config.text.vocab), named(config.text.merges)];
    files.push(...textFiles);
  }
  const path = (file: RegistryFile) => join(options.cacheDir, file.fileName);
  const resolved: ResolvedModel = { file: path(entry), config, sha256: entry.sha256 };
  if (textFiles) {
    const [tower, vocab, merges] = textFiles as [RegistryFile, RegistryFile, RegistryFile];
    resolved.text = {
      file: path(tower),
      sha256: tower.sha256,
      vocab: path(vocab),
      merges: path(merges),
      tokenizerSha256: `${vocab.sha256}:${merges.sha256}`,
    };
  }
  if (entry.selfTest) {
    const record = join(options.cacheDir, folder, 'self-test.json');
    resolved.selfTest = { spec: entry.selfTest, record, image: undefined };
    if (!(await options.selfTestPassed?.(resolved))) {
      files.push(entry.selfTest.image);
      resolved.selfTest.image = path(entry.selfTest.image);
    }
  }
  await ensureFiles(model, files, options);
  return resolved;
}

/** The text tower's file name for the asked precision. */
function textTowerName(model: string, config: ModelConfig, precision: 'quantized' | 'float' | undefined) {
  const text = config.text!;
  if (precision !== 'float') return text.model;
  if (!text.floatModel) {
    throw new ModelError(
      'INVALID_MODEL',
      `The model ${model} has one text tower only; leave textTower unset (or 'quantized')`,
    );
  }
  return text.floatModel;
}

/**
 * Checks each file of a built-in model in the cache and downloads those missing or wrong. Every file is
 * tried before failing, so one message names all that are missing (and a host found unreachable is not
 * asked again for the next file).
 */
async function ensureFiles(model: string, files: RegistryFile[], options: ResolveOptions): Promise<void> {
  const unreachable = new Map<string, string>();
  const failures: { file: RegistryFile; error: ModelError }[] = [];
  for (const [i, file] of files.entries()) {
    // The first file is the model itself; the others are named as its parts.
    const label = i === 0 ? model : `${basename(file.fileName)} of ${model}`;
    try {
      await ensureFile(label, file, options, unreachable);
    } catch (error) {
      if (!(error instanceof ModelError)) throw error;
      failures.push({ file, error });
    }
  }
  if (failures.length === 0) return;
  if (failures.length === 1) throw failures[0]!.error;
  // One line for several files: what is missing, why (once, where it is the same), and where to put it.
  const folders = [...new Set(failures.map(({ file }) => dirname(join(options.cacheDir, file.fileName))))];
  const reasons = [...new Set(unreachable.values())];
  const why =
    reasons.length > 0 && failures.every(({ error }) => error.code === 'DOWNLOAD_FAILED')
      ? reasons.join('; ')
      : failures.map(({ file, error }) => `${basename(file.fileName)}: ${error.message}`).join('; ');
  const names = failures.map(({ file }) => basename(file.fileName)).join(', ');
  const sources = [...new Set(failures.map(({ file }) => sourceFolder(file)))].join(' and ');
  throw new ModelError(
    failures.some(({ error }) => error.code === 'CHECKSUM_MISMATCH')
      ? 'CHECKSUM_MISMATCH'
      : 'DOWNLOAD_FAILED',
    `Cannot get the files of ${model} (${why}): put ${names} (from ${sources}) in ${folders.join(' and ')}, or run again with network access`,
  );
}

/** Where a file's first source keeps it, for people who fetch it by hand. */
function sourceFolder(file: RegistryFile): string {
  const url = file.urls[0];
  return url ? url.slice(0, url.lastIndexOf('/') + 1) : 'its source';
}

async function ensureFile(
  label: string,
  entry: RegistryFile,
  options: ResolveOptions,
  unreachable: Map<string, string>,
): Promise<void> {
  const file = join(options.cacheDir, entry.fileName);
  const found = existsSync(file) ? await fileSha256(file) : undefined;
  if (found === entry.sha256) return;
  // A mirror is a copy of the cache folder: the same relative paths.
  const urls = [
    ...(options.mirrors ?? []).map((m) => `${m.replace(/\/$/, '')}/${entry.fileName}`),
    ...(options.officialSources === false ? [] : entry.urls),
  ];
  try {
    await downloadVerified(urls, file, entry, {
      onProgress: options.onProgress,
      dispatcher: options.dispatcher,
      unreachable,
    });
  } catch (error) {
    if (found === undefined || !(error instanceof ModelError)) throw error;
    // Say first what is wrong with the copy that is there, then why no fresh one could be had.
    throw new ModelError(
      'CHECKSUM_MISMATCH',
      `The copy of ${label} at ${file} failed its sha256 check (expected ${entry.sha256}, found ${found}), ` +
        `and no fresh copy could be downloaded (${error.message}). Delete that file and run again with network access, ` +
        'or replace it with a verified copy',
      { cause: error },
    );
  }
}

async function resolveLocalModel(
  model: string,
  precision: 'quantized' | 'float' | undefined,
): Promise<ResolvedModel> {
  const path = resolve(model);
  if (!existsSync(path)) {
    throw new ModelError(
      'MODEL_NOT_FOUND',
      `The model file ${path} does not exist; check the path (a collection's model must stay where it was when the collection was built)`,
    );
  }
  const configFile = path.replace(/\.onnx$/, '.json');
  if (!existsSync(configFile)) {
    throw new ModelError(
      'INVALID_MODEL',
      `No config for ${path}: write ${basename(configFile)} beside it (input name and size, normalisation, output tensor; see src/embed/config.ts)`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(configFile, 'utf8'));
  } catch (error) {
    throw new ModelError(
      'INVALID_MODEL',
      `Model config ${configFile} is not valid JSON: ${(error as Error).message}`,
    );
  }
  const config = parseModelConfig(raw, configFile);
  const resolved: ResolvedModel = { file: path, config, sha256: await fileSha256(path) };
  if (config.text) {
    const beside = (name: string) => resolve(dirname(path), name);
    const tower = textTowerName(model, config, precision);
    const text = {
      file: beside(tower),
      vocab: beside(config.text.vocab),
      merges: beside(config.text.merges),
    };
    for (const file of Object.values(text)) {
      if (!existsSync(file)) {
        throw new ModelError(
          'MODEL_NOT_FOUND',
          `The text tower file ${file}, named in ${configFile}, does not exist; put it beside the model or fix text in the config`,
        );
      }
    }
    const [sha256, vocabSha, mergesSha] = await Promise.all([
      fileSha256(text.file),
      fileSha256(text.vocab),
      fileSha256(text.merges),
    ]);
    resolved.text = { ...text, sha256, tokenizerSha256: `${vocabSha}:${mergesSha}` };
  }
  return resolved;
}
