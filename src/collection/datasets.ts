import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar';
import yauzl from 'yauzl';
import { type DownloadProgress, downloadVerified } from '../embed/download.ts';
import { CollectionError } from '../errors.ts';
import { risHome } from './home.ts';
import { type ImageToAdd, walkImages } from './walk.ts';

export type DatasetName = 'caltech101' | 'voc2012';

export interface DatasetSpec {
  name: DatasetName;
  title: string;
  url: string;
  archive: string;
  /** Size of the archive in bytes, when the source publishes it. */
  bytes?: number;
  license: string;
}

/** The reference app's two datasets, from their official sources. */
export const DATASETS: Record<DatasetName, DatasetSpec> = {
  caltech101: {
    name: 'caltech101',
    title: 'Caltech101: 101 object categories and a background class, 9,144 images',
    url: 'https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip?download=1',
    archive: 'caltech-101.zip',
    license: 'CC BY 4.0',
  },
  voc2012: {
    name: 'voc2012',
    title: 'PASCAL VOC 2012 trainval: 17,125 images, labels from their object annotations',
    url: 'http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar',
    archive: 'VOCtrainval_11-May-2012.tar',
    bytes: 1_999_639_040,
    license: 'see the PASCAL VOC terms of use',
  },
};

export function datasetsDir(): string {
  return process.env.RIS_DATASETS_DIR || join(risHome(), 'datasets');
}

export function isDatasetName(value: string): value is DatasetName {
  return Object.hasOwn(DATASETS, value);
}

const COMPLETE = '.ris-complete';

/** Where a dataset's images are once downloaded and extracted (complete only with its marker file). */
export function datasetRoot(name: DatasetName, dir = datasetsDir()): string {
  return join(dir, name);
}

/** Where a dataset's archive comes from: its URL and, when known, its size. */
export interface DatasetSource {
  url: string;
  bytes?: number;
}

/**
 * The source of a dataset: `$RIS_DATASET_MIRROR/<archive name>` when that variable names a mirror (a
 * company cache, or a test's server), else the official address.
 */
export function datasetSource(name: DatasetName): DatasetSource {
  const spec = DATASETS[name];
  const mirror = process.env.RIS_DATASET_MIRROR;
  return mirror
    ? { url: `${mirror.replace(/\/$/, '')}/${spec.archive}` }
    : { url: spec.url, bytes: spec.bytes };
}

/** The dataset of that name, or UNKNOWN_DATASET naming the ones there are. */
export function datasetNamed(name: string): DatasetName {
  if (isDatasetName(name)) return name;
  throw new CollectionError(
    'UNKNOWN_DATASET',
    `Unknown dataset "${name}"; ris downloads ${Object.keys(DATASETS).join(' and ')}`,
  );
}

export interface DatasetOptions {
  /** Folder of datasets. Default $RIS_DATASETS_DIR, else <RIS_HOME>/datasets. */
  dir?: string;
  onProgress?: (event: DownloadProgress | { type: 'extract'; dataset: DatasetName }) => void;
  /** Another source than the official one (a mirror). Default: datasetSource(name). */
  source?: DatasetSource;
  /** Stops the download; the partial archive stays and the next call resumes it. */
  signal?: AbortSignal;
}

/**
 * Downloads (resuming an interrupted download) and extracts a dataset. Extraction goes to a temporary
 * folder renamed into place at the end, marked complete, so a half-extracted dataset never looks whole.
 * Returns the folder of its images.
 */
export async function downloadDataset(name: DatasetName, options: DatasetOptions = {}): Promise<string> {
  const spec = DATASETS[name];
  const dir = options.dir ?? datasetsDir();
  const root = datasetRoot(name, dir);
  if (existsSync(join(root, COMPLETE))) return root;
  await mkdir(dir, { recursive: true });
  const archive = join(dir, spec.archive);
  if (!existsSync(archive)) {
    try {
      const source = options.source ?? datasetSource(name);
      await downloadVerified(
        [source.url],
        archive,
        { bytes: source.bytes },
        { onProgress: options.onProgress, signal: options.signal },
      );
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw new CollectionError('DATASET_FAILED', `Downloading ${name} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  options.onProgress?.({ type: 'extract', dataset: name });
  const work = `${root}.partial`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    if (name === 'caltech101') await extractCaltech(archive, work);
    else await extractVoc(archive, work);
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    const full =
      (error as NodeJS.ErrnoException).code === 'ENOSPC'
        ? ' (the disk is full: free some space and run it again)'
        : '';
    throw new CollectionError(
      'DATASET_FAILED',
      `Extracting ${spec.archive} failed${full}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  await writeFile(join(work, COMPLETE), `${new Date().toISOString()}\n`);
  await rm(root, { recursive: true, force: true });
  await rename(work, root);
  await rm(archive, { force: true });
  return root;
}

/** caltech-101.zip holds caltech-101/101_ObjectCategories.tar.gz: 102 folders, the label is the folder. */
async function extractCaltech(archive: string, work: string): Promise<void> {
  const inner = join(work, 'categories.tar.gz');
  await unzipEntry(archive, /101_ObjectCategories\.tar\.gz$/, inner);
  await tar.x({
    file: inner,
    cwd: work,
    strip: 1,
    filter: (path) => /\.jpe?g$/i.test(path) || !path.includes('.'),
  });
  await rm(inner);
}

/** The VOC tar: keep JPEGImages and Annotations of VOCdevkit/VOC2012. */
async function extractVoc(archive: string, work: string): Promise<void> {
  await tar.x({
    file: archive,
    cwd: work,
    strip: 2,
    filter: (path) => /VOCdevkit\/VOC2012\/(JPEGImages|Annotations)(\/|$)/.test(path),
  });
}

function unzipEntry(archive: string, name: RegExp, target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    yauzl.open(archive, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return reject(error ?? new Error('cannot open zip'));
      let found = false;
      zip.on('entry', (entry: yauzl.Entry) => {
        if (!name.test(entry.fileName)) return zip.readEntry();
        found = true;
        zip.openReadStream(entry, (err, stream) => {
          if (err || !stream) return reject(err ?? new Error('cannot read zip entry'));
          pipeline(stream, createWriteStream(target)).then(() => {
            zip.close();
            resolve();
          }, reject);
        });
      });
      zip.on('end', () => {
        if (!found) reject(new Error(`the archive has no entry matching ${name}`));
      });
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** The images of a dataset folder with their labels: folder names, or VOC's annotated object names. */
export async function datasetImages(name: DatasetName, root: string): Promise<ImageToAdd[]> {
  if (name === 'caltech101') return walkImages(root);
  const images = await walkImages(join(root, 'JPEGImages'));
  const annotations = join(root, 'Annotations');
  return Promise.all(
    images.map(async (image) => {
      const xml = join(
        annotations,
        `${image.path
          .split('/')
          .pop()!
          .replace(/\.[^.]+$/, '')}.xml`,
      );
      const text = existsSync(xml) ? await readFile(xml, 'utf8') : '';
      const labels = [
        ...new Set([...text.matchAll(/<object>[\s\S]*?<name>\s*([^<\s]+)\s*<\/name>/g)].map((m) => m[1]!)),
      ].sort();
      return { path: image.path, labels };
    }),
  );
}

/** Is `dir` a complete copy (one with images in it)? Used for --from. */
export async function checkDatasetCopy(name: DatasetName, dir: string): Promise<void> {
  const probe = name === 'voc2012' ? join(dir, 'JPEGImages') : dir;
  const entries = await readdir(probe).catch(() => [] as string[]);
  if (entries.length === 0) {
    throw new CollectionError(
      'DATASET_FAILED',
      `${dir} does not look like a copy of ${name} (${name === 'voc2012' ? 'no JPEGImages folder' : 'no class folders'}); point --from at the dataset's image folder`,
    );
  }
}
