import assert from 'node:assert/strict';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tar from 'tar';
import yazl from 'yazl';
import { CollectionError, datasetImages, downloadDataset } from '../src/index.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { listenOnLoopback } from './helpers.ts';

let dir: string;
let server: Server;
let base: string;
const served = new Map<string, string>();
let cutFirst = false;

/** Small archives with the official layouts: a zip holding 101_ObjectCategories.tar.gz, and the VOC tar. */
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ris-datasets-'));
  const src = join(dir, 'src');
  await writeClassFolders(join(src, '101_ObjectCategories'), 3, 4);
  await tar.c({ gzip: true, file: join(src, '101_ObjectCategories.tar.gz'), cwd: src }, [
    '101_ObjectCategories',
  ]);
  await new Promise<void>((resolve) => {
    const zip = new yazl.ZipFile();
    zip.addFile(join(src, '101_ObjectCategories.tar.gz'), 'caltech-101/101_ObjectCategories.tar.gz');
    zip.addBuffer(Buffer.from('readme'), 'caltech-101/README');
    zip.outputStream.pipe(createWriteStream(join(src, 'caltech-101.zip'))).on('close', resolve);
    zip.end();
  });
  const voc = join(src, 'voc', 'VOCdevkit', 'VOC2012');
  await writeClassFolders(join(voc, 'JPEGImages-tmp'), 1, 3);
  await mkdir(join(voc, 'JPEGImages'), { recursive: true });
  await mkdir(join(voc, 'Annotations'), { recursive: true });
  await mkdir(join(voc, 'SegmentationClass'), { recursive: true });
  for (const [i, f] of (await readdir(join(voc, 'JPEGImages-tmp', 'class0'))).entries()) {
    const id = `2008_00000${i}`;
    await writeFile(
      join(voc, 'JPEGImages', `${id}.jpg`),
      await readFile(join(voc, 'JPEGImages-tmp', 'class0', f)),
    );
    const objects = i === 0 ? ['person', 'dog', 'person'] : ['cat'];
    await writeFile(
      join(voc, 'Annotations', `${id}.xml`),
      `<annotation><filename>${id}.jpg</filename>${objects.map((o) => `<object><name>${o}</name><pose>Left</pose></object>`).join('')}</annotation>`,
    );
  }
  await writeFile(join(voc, 'SegmentationClass', 'x.png'), 'not wanted');
  await rm(join(voc, 'JPEGImages-tmp'), { recursive: true });
  await tar.c({ file: join(src, 'voc.tar'), cwd: join(src, 'voc') }, ['VOCdevkit']);
  served.set('/caltech.zip', join(src, 'caltech-101.zip'));
  served.set('/voc.tar', join(src, 'voc.tar'));
  server = createServer(async (req, res) => {
    const file = served.get(req.url!);
    if (!file) return res.writeHead(404).end();
    const { size } = await stat(file);
    const match = /bytes=(\d+)-/.exec(req.headers.range ?? '');
    const start = match ? Number(match[1]) : 0;
    res.writeHead(match ? 206 : 200, {
      'content-length': size - start,
      ...(match ? { 'content-range': `bytes ${start}-${size - 1}/${size}` } : {}),
    });
    const stream = createReadStream(file, { start });
    if (cutFirst) {
      cutFirst = false;
      let sent = 0;
      stream.on('data', (chunk) => {
        sent += chunk.length;
        res.write(chunk);
        if (sent > size / 3) {
          stream.destroy();
          res.destroy();
        }
      });
      return;
    }
    stream.pipe(res);
  });
  base = await listenOnLoopback(server);
});
after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('datasets', () => {
  it('downloads Caltech101 (resuming a cut connection), extracts the inner tar.gz, labels by folder', async () => {
    cutFirst = true;
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
