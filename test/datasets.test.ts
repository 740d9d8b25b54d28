import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CollectionError, datasetImages, downloadDataset } from '../src/index.ts';
import { fileServer, writeDatasetArchives } from './fixtures/datasets.ts';
import { listenOnLoopback } from './helpers.ts';

let dir: string;
let server: Server;
let base: string;
const served = new Map<string, string>();
let files: ReturnType<typeof fileServer>;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-datasets-'));
  const { caltech, voc } = await writeDatasetArchives(join(dir, 'src'));
  served.set('/caltech.zip', caltech);
  served.set('/voc.tar', voc);
  files = fileServer(served);
  server = files.server;
  base = await listenOnLoopback(server);
});
after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('datasets', () => {
  it('downloads Caltech101 (resuming a cut connection), extracts the inner tar.gz, labels by folder', async () => {
    files.cutNext();
    const target = join(dir, 'd1');
    const events: string[] = [];
    const root = await downloadDataset('caltech101', {
      dir: target,
      source: { url: `${base}/caltech.zip` },
      onProgress: (e) => events.push(e.type),
    });
    assert.equal(root, join(target, 'caltech101'));
    assert.ok(existsSync(join(root, '.ris-complete')));
    assert.deepEqual(await readdir(target), ['caltech101'], 'the archive and partial folders are gone');
    const images = await datasetImages('caltech101', root);
    assert.equal(images.length, 12);
    assert.deepEqual([...new Set(images.map((i) => i.labels?.[0]))], ['class0', 'class1', 'class2']);
    assert.ok(events.includes('download') && events.includes('extract'));
    // Complete already: no second download.
    served.delete('/caltech.zip');
    assert.equal(
      await downloadDataset('caltech101', { dir: target, source: { url: `${base}/caltech.zip` } }),
      root,
    );
  });

  it('downloads VOC2012, keeps JPEGImages and Annotations, labels from the annotated objects', async () => {
    const root = await downloadDataset('voc2012', {
      dir: join(dir, 'd2'),
      source: { url: `${base}/voc.tar` },
    });
    assert.deepEqual((await readdir(root)).sort(), ['.ris-complete', 'Annotations', 'JPEGImages']);
    const images = await datasetImages('voc2012', root);
    assert.deepEqual(
      images.map((i) => i.labels),
      [['dog', 'person'], ['cat'], ['cat']],
    );
  });

  it('fails clearly on a failed server and leaves no dataset that looks complete', async () => {
    const target = join(dir, 'd3');
    await assert.rejects(
      downloadDataset('caltech101', { dir: target, source: { url: `${base}/missing.zip` } }),
      (error: unknown) => {
        assert.ok(error instanceof CollectionError);
        assert.equal(error.code, 'DATASET_FAILED');
        assert.match(error.message, /Downloading caltech101 failed: .*HTTP 404/);
        return true;
      },
    );
    assert.ok(!existsSync(join(target, 'caltech101')));
    // A corrupt archive: extraction fails, nothing half-extracted is left behind.
    await mkdir(target, { recursive: true });
    await writeFile(join(target, 'caltech-101.zip'), 'PK not really a zip');
    await assert.rejects(downloadDataset('caltech101', { dir: target }), /Extracting caltech-101.zip failed/);
    assert.deepEqual(
      (await readdir(target)).filter((f) => f.startsWith('caltech101')),
      [],
    );
  });
});
