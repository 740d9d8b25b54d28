import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { Random } from '../src/ann/random.ts';
import { indexCollection } from '../src/collection/build.ts';
import { addUploads } from '../src/collection/library.ts';
import { PlaneCache } from '../src/collection/plane-cache.ts';
import { type ImagePlanes, imagePlanes } from '../src/collection/planes.ts';
import type { ImageCollection } from '../src/collection/store.ts';
import { STAGING_DIR, stagingPath } from '../src/collection/uploads.ts';
import {
  COLOUR_LIMIT,
  DETAIL_MATCH,
  judgeCopy,
  localMatcher,
  PIXEL_MATCH,
} from '../src/duplicates/copies.ts';
import { EDITS, editImage } from '../src/duplicates/edits.ts';
import { type DuplicatesReport, findDuplicates } from '../src/duplicates/find.ts';
import { matchImages } from '../src/duplicates/match.ts';
import { MODEL_REGISTRY } from '../src/index.ts';
import { createMatchThreads } from '../src/node/match-threads.ts';
import { createApp } from '../src/server/app.ts';
import { type DuplicateFixture, scene, writeDuplicateFixture } from './fixtures/duplicate-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { noSharedData, sharedData } from './helpers.ts';
import { ris } from './ris-process.ts';

/** The keeper rule, written out again from the records: most pixels, largest file, added first, smallest id. */
async function expectedKeeper(collection: ImageCollection, ids: number[]): Promise<number> {
  const records = await Promise.all(ids.map(async (id) => (await collection.get(id))!));
  records.sort(
    (a, b) =>
      b.width * b.height - a.width * a.height ||
      b.bytes - a.bytes ||
      a.addedAt.localeCompare(b.addedAt) ||
      a.id - b.id,
  );
  return records[0]!.id;
}

/** Checks a report against the fixture: every family one whole group, nothing else grouped, the rule's keeper. */
async function checkReport(
  collection: ImageCollection,
  report: DuplicatesReport,
  fixture: DuplicateFixture,
  root: string,
) {
  const groups = report.groups.map((g) => g.images.map((i) => i.path).sort());
  const families = fixture.families.map((f) => [...f].sort());
  assert.deepEqual(
    [...groups].sort((a, b) => a[0]!.localeCompare(b[0]!)),
    [...families].sort((a, b) => a[0]!.localeCompare(b[0]!)),
    'each family is one group, whole, and no distractor is in any',
  );
  for (const group of report.groups) {
    const keeper = await expectedKeeper(
      collection,
      group.images.map((i) => i.id),
    );
    assert.equal(group.images[0]!.id, keeper, `the keeper of ${group.images.map((i) => i.path).join(', ')}`);
    assert.deepEqual(
      group.images.map((i) => i.keep),
      group.images.map((_, i) => i === 0),
    );
    const contents = await Promise.all(group.images.map((image) => readFile(join(root, image.path))));
    const keeperBytes = contents[0]!;
    for (const [i, image] of group.images.entries()) {
      assert.deepEqual(Object.keys(image).sort(), [
        'bytes',
        'height',
        'id',
        'identical',
        'keep',
        'path',
        'similarity',
        'width',
      ]);
      const bytes = contents[i]!;
      const meta = await sharp(bytes).metadata();
      assert.equal(image.bytes, bytes.length);
      assert.deepEqual([image.width, image.height], [meta.width, meta.height]);
      // Same bytes as the kept image; for the kept one, another member has its bytes.
      const identical =
        i === 0 ? contents.slice(1).some((c) => c.equals(keeperBytes)) : bytes.equals(keeperBytes);
      assert.equal(image.identical, identical, image.path);
      assert.ok(image.similarity <= 1 && image.similarity > -1, `similarity ${image.similarity}`);
    }
    assert.equal(group.images[0]!.similarity, 1);
  }
}

/** Every pair of the small collection is compared: a tiny random model's neighbours mean little. */
const EVERY_PAIR = { threshold: -1, neighbours: 30 };

describe('ris duplicates on real edited copies (a tiny model: every pair compared pixel by pixel)', () => {
  let dir: string;
  let root: string;
  let collection: ImageCollection;
  let fixture: DuplicateFixture;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ris-duplicates-'));
    root = join(dir, 'photos');
    fixture = await writeDuplicateFixture(root);
    const model = await writeTinyModel(
      dir,
      'tiny',
      'float',
      tinyConfig({ tensor: 'features', pooling: 'none' }),
    );
    ({ collection } = await indexCollection('photos', root, { model, home: join(dir, 'home') }));
  });
  after(async () => {
    await collection?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('groups each picture with its copies and nothing else, and puts the image the keeper rule names first', async () => {
    const events: string[] = [];
    let reads = 0;
    const readImage = collection.readImage.bind(collection);
    collection.readImage = (record) => {
      reads++;
      return readImage(record);
    };
    const report = await findDuplicates(collection, {
      ...EVERY_PAIR,
      onProgress: (e) => events.push(e.type),
    }).finally(() => {
      collection.readImage = readImage;
    });
    assert.equal(
      reads,
      0,
      'right after indexing, the planes made while embedding are used: no image is read',
    );
    assert.equal(report.threshold, -1);
    assert.equal(report.thresholdSource, 'given');
    await checkReport(collection, report, fixture, root);
    // Most pixels, then most bytes (the twins differ only in age and id).
    const keepers = report.groups.map((g) => g.images[0]!.path);
    assert.ok(
      keepers.includes('landscape/landscape larger.jpg') && keepers.includes('scenes/market q95.jpg'),
    );
    assert.ok(events.includes('neighbours') && events.includes('compare'));
  });

  it('prints the JSON of the issue and nothing else with --json, and lines for people without, through the binary', async () => {
    const home = join(dir, 'home');
    const json = await ris(home, ['duplicates', 'photos', '--threshold=-1', '--neighbours', '30', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout) as DuplicatesReport;
    assert.deepEqual(Object.keys(report), ['threshold', 'groups']);
    assert.equal(report.threshold, -1);
    await checkReport(collection, report, fixture, root);

    const text = await ris(home, ['duplicates', 'photos', '--threshold=-1', '--neighbours', '30']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^3 groups of copies in photos: 13 images, 10 of them could go \(threshold -1, /,
    );
    assert.match(text.stdout, /keep {2}#\d+ +780×585 .* landscape\/landscape larger\.jpg/);
    assert.match(text.stdout, /same bytes landscape\/copie été\.png|same bytes scenes\/scene/);

    const wrong = await ris(home, ['duplicates', 'photos', '--threshold', '1.5']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /Expected --threshold to be a number from -1 to 1 but received number 1\.5/);
    const missing = await ris(home, ['duplicates', 'nothing-here']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /nothing-here/);
  });

  it('answers GET /api/collections/:name/duplicates as --json does, a page of groups at a time, and follows changes', async () => {
    const app = createApp({ collections: [collection], log: () => undefined });
    const get = async (query: string) => {
      const response = await app.request(`/api/collections/photos/duplicates${query}`);
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const all = await get('?threshold=-1&neighbours=30');
    assert.equal(all.status, 200);
    const library = await findDuplicates(collection, EVERY_PAIR);
    assert.deepEqual(all.body, {
      threshold: -1,
      thresholdSource: 'given',
      total: 3,
      page: 0,
      count: 50,
      hasMore: false,
      groups: library.groups,
    });
    const first = await get('?threshold=-1&neighbours=30&count=2');
    const second = await get('?threshold=-1&neighbours=30&count=2&page=1');
    assert.deepEqual([first.body.groups, first.body.hasMore], [library.groups.slice(0, 2), true]);
    assert.deepEqual([second.body.groups, second.body.hasMore], [library.groups.slice(2), false]);
    assert.deepEqual((await get('?threshold=-1&neighbours=30&page=7')).body.groups, []);

    for (const query of ['?threshold=abc', '?threshold=2', '?count=0', '?count=501', '?page=-1']) {
      const refused = await get(query);
      assert.equal(refused.status, 400, query);
      assert.equal((refused.body.error as { code: string }).code, 'INVALID_ARGUMENT', query);
    }
    assert.equal((await app.request('/api/collections/nothing/duplicates')).status, 404);

    // A new copy joins its group on the next request (the kept answer belongs to the older collection).
    const scene = await readFile(join(root, 'scenes', 'scene.jpg'));
    await writeFile(
      join(root, 'scenes', 'scene mirrored.jpg'),
      await sharp(scene).flop().jpeg({ quality: 90 }).toBuffer(),
    );
    await collection.addImages([{ path: join(root, 'scenes', 'scene mirrored.jpg') }]);
    const after = await get('?threshold=-1&neighbours=30');
    const scenes = (after.body.groups as DuplicatesReport['groups']).find((g) =>
      g.images.some((i) => i.path === 'scenes/scene.jpg'),
    )!;
    assert.deepEqual(scenes.images.map((i) => i.path).sort(), [
      'scenes/scene copy.jpg',
      'scenes/scene mirrored.jpg',
      'scenes/scene.jpg',
    ]);
    await collection.removeImages([join(root, 'scenes', 'scene mirrored.jpg')]);
  });

  it('calibrates a threshold on the collection for a model that has none recorded, keeps it, and reuses it', async () => {
    const events: number[] = [];
    const report = await findDuplicates(collection, {
      onProgress: (e) => {
        if (e.type === 'calibrate') events.push(e.done);
      },
    });
    const kept = JSON.parse(await readFile(join(collection.dir, 'duplicates-calibration.json'), 'utf8'));
    assert.equal(kept.threshold, report.threshold);
    assert.equal(report.thresholdSource, 'calibrated');
    assert.equal(kept.modelId, collection.manifest.modelId);
    assert.equal(kept.copies, 6 * (await collection.count()), 'six edited copies of every sampled image');
    assert.ok(kept.copiesReached >= 0.97, `share of copies at the threshold: ${kept.copiesReached}`);
    assert.deepEqual(events.slice(0, 2), [0, 1]);
    const again = await findDuplicates(collection);
    assert.equal(again.threshold, report.threshold);
    assert.equal(
      JSON.parse(await readFile(join(collection.dir, 'duplicates-calibration.json'), 'utf8')).createdAt,
      kept.createdAt,
      'the calibration is reused',
    );
  });

  it('says there is no calibrated threshold when none of the sample could be read, and keeps none', async () => {
    const folder = join(dir, 'gone');
    await mkdir(folder);
    for (const name of ['a.jpg', 'b.jpg', 'c.jpg'])
      await copyFile(join(root, 'scenes', 'scene.jpg'), join(folder, name));
    const model = await writeTinyModel(
      dir,
      'tiny',
      'float',
      tinyConfig({ tensor: 'features', pooling: 'none' }),
    );
    const { collection: gone } = await indexCollection('gone', folder, { model, home: join(dir, 'home') });
    try {
      await rm(folder, { recursive: true });
      const report = await findDuplicates(gone);
      assert.deepEqual([report.threshold, report.thresholdSource], [1, 'none']);
      await assert.rejects(readFile(join(gone.dir, 'duplicates-calibration.json')), { code: 'ENOENT' });
      // One an older ris kept is measured again once the images are back.
      await writeFile(
        join(gone.dir, 'duplicates-calibration.json'),
        JSON.stringify({
          modelId: gone.manifest.modelId,
          images: 3,
          threshold: 1,
          copies: 0,
          copiesReached: 0,
          neighbours: 0,
          neighboursReached: 0,
          createdAt: new Date().toISOString(),
        }),
      );
      await mkdir(folder);
      for (const name of ['a.jpg', 'b.jpg', 'c.jpg'])
        await copyFile(join(root, 'scenes', 'scene.jpg'), join(folder, name));
      const again = await findDuplicates(gone);
      assert.equal(again.thresholdSource, 'calibrated');
      assert.ok(again.threshold < 1);
    } finally {
      await gone.close();
    }
  });

  it('finds the same groups, in the same order, with the comparisons on worker threads', async () => {
    // minPairs 1: even this small collection's pairs go to the workers.
    const threads = createMatchThreads({ threads: 2, minPairs: 1 });
    try {
      const local = await findDuplicates(collection, { ...EVERY_PAIR, matcher: localMatcher });
      const pairs: number[] = [];
      const counting = {
        ...threads,
        copies: (...args: Parameters<typeof threads.copies>) => {
          pairs.push(args[1].length);
          return threads.copies(...args);
        },
      };
      assert.deepEqual(await findDuplicates(collection, { ...EVERY_PAIR, matcher: counting }), local);
      assert.ok(Math.max(...pairs) > 64, `several chunks of pairs went to the threads: ${pairs.join(', ')}`);
    } finally {
      await threads.close();
    }
  });

  it('keeps the decoded pixels by content hash: a second run reads no image, a damaged cache is rebuilt', async () => {
    const file = join(collection.dir, 'duplicates-planes.bin');
    await rm(file, { force: true });
    const first = await findDuplicates(collection, EVERY_PAIR);
    const saved = await readFile(file);
    assert.equal(saved.subarray(0, 8).toString(), 'RISPLANE');
    let reads = 0;
    const readImage = collection.readImage.bind(collection);
    collection.readImage = (record) => {
      reads++;
      return readImage(record);
    };
    try {
      assert.deepEqual(await findDuplicates(collection, EVERY_PAIR), first);
      assert.equal(reads, 0, 'every image found in the cache');
      const damaged = Buffer.from(saved);
      damaged[damaged.length - 100]! ^= 0xff;
      await writeFile(file, damaged);
      assert.deepEqual(await findDuplicates(collection, EVERY_PAIR), first);
      assert.ok(reads > 0, 'a damaged cache is not used');
      assert.equal((await readFile(file)).length, saved.length, 'and is written again');
    } finally {
      collection.readImage = readImage;
    }
  });
  it('keeps the planes of a sent file with it: a search after an upload reads no image either', async () => {
    await mkdir(join(collection.dir, STAGING_DIR), { recursive: true });
    const file = stagingPath(collection.dir);
    const sent = await sharp(await scene(77))
      .jpeg({ quality: 60 })
      .toBuffer();
    await writeFile(file, sent);
    const report = await addUploads(collection, [{ name: 'sent été.jpg', file }]);
    assert.equal(report.added.length, 1, JSON.stringify(report));
    const cache = await PlaneCache.open(collection.dir);
    const sha = createHash('sha256').update(sent).digest('hex');
    assert.deepEqual(cache.get(sha), await imagePlanes(sent, 360, 270));
  });
});

describe('a group whose kept image is itself an edit', () => {
  let dir: string;
  let collection: ImageCollection;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ris-duplicates-keeper-'));
    const root = join(dir, 'photos');
    await mkdir(root);
    const original = await readFile(join(import.meta.dirname, 'golden', 'landscape.png'));
    // The mirrored copy, enlarged, has the most pixels: it is kept. The turned copy is a copy of the
    // original, not of the mirror (no quarter turn lays it over the mirror).
    await writeFile(join(root, 'original.png'), original);
    await writeFile(
      join(root, 'mirrored larger.jpg'),
      await sharp(original).flop().resize(780, 585).jpeg({ quality: 92 }).toBuffer(),
    );
    await writeFile(
      join(root, 'turned.jpg'),
      await sharp(original).rotate(90).jpeg({ quality: 90 }).toBuffer(),
    );
    for (let seed = 1; seed <= 3; seed++) await writeFile(join(root, `other ${seed}.jpg`), await scene(seed));
    const model = await writeTinyModel(
      dir,
      'tiny',
      'float',
      tinyConfig({ tensor: 'features', pooling: 'none' }),
    );
    ({ collection } = await indexCollection('photos', root, { model, home: join(dir, 'home') }));
  });
  after(async () => {
    await collection?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps the copies of the original the kept edit was made from in its group', async () => {
    const report = await findDuplicates(collection, EVERY_PAIR);
    assert.deepEqual(
      report.groups.map((g) => [
        g.images[0]!.path,
        ...g.images
          .slice(1)
          .map((i) => i.path)
          .sort(),
      ]),
      [['mirrored larger.jpg', 'original.png', 'turned.jpg']],
    );
  });
});

describe('ris duplicates on Caltech101 copies with mobilenetv2-int8 at its recorded threshold', {
  skip: noSharedData,
}, () => {
  let dir: string;
  let collection: ImageCollection;
  /** Family of each file (relative to the root); distractors are −1. */
  const families = new Map<string, number>();
  const CLASSES = ['butterfly', 'elephant', 'kangaroo', 'pagoda', 'sunflower'];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ris-duplicates-caltech-'));
    const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
    await mkdir(join(dir, 'models'));
    await copyFile(join(sharedData, 'models', entry.fileName), join(dir, 'models', entry.fileName));
    const random = new Random(3);
    for (const [family, name] of CLASSES.entries()) {
      const files = (await readdir(join(sharedData, 'caltech101', name))).sort();
      await mkdir(join(dir, 'images', name), { recursive: true });
      // The first file with its six edited copies, the next five as look-alikes of the same class.
      const original = await readFile(join(sharedData, 'caltech101', name, files[0]!));
      await writeFile(join(dir, 'images', name, files[0]!), original);
      families.set(`${name}/${files[0]}`, family);
      for (const edit of EDITS.filter((e) => e !== 'rotate')) {
        await writeFile(
          join(dir, 'images', name, `${edit}.jpg`),
          (await editImage(original, edit, random)).bytes,
        );
        families.set(`${name}/${edit}.jpg`, family);
      }
      for (const file of files.slice(1, 6)) {
        await copyFile(join(sharedData, 'caltech101', name, file), join(dir, 'images', name, file));
        families.set(`${name}/${file}`, -1);
      }
    }
    ({ collection } = await indexCollection('caltech', join(dir, 'images'), {
      model: 'mobilenetv2-int8',
      home: join(dir, 'home'),
      embedder: { cacheDir: join(dir, 'models') },
    }));
  });
  after(async () => {
    await collection?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('finds each original with its copies, and no look-alike of the same class', async () => {
    const report = await findDuplicates(collection);
    assert.equal(report.threshold, MODEL_REGISTRY['mobilenetv2-int8']!.duplicateThreshold);
    assert.equal(report.thresholdSource, 'model');
    const found = report.groups.map((g) => g.images.map((i) => families.get(i.path)!));
    for (const group of found)
      assert.equal(new Set(group).size, 1, `one family per group: ${group.join(', ')}`);
    assert.ok(!found.flat().includes(-1), 'no look-alike grouped');
    for (const family of CLASSES.keys()) {
      const largest = Math.max(0, ...found.filter((g) => g[0] === family).map((g) => g.length));
      assert.ok(largest >= 6, `${CLASSES[family]}: ${largest} of its 7 images in one group`);
    }
    for (const group of report.groups)
      assert.equal(
        group.images[0]!.id,
        await expectedKeeper(
          collection,
          group.images.map((i) => i.id),
        ),
      );
  });
});

describe('the second look: one image laid over the other', () => {
  const golden = join(import.meta.dirname, 'golden');
  const planesOf = async (bytes: Buffer) => {
    const { width, height } = await sharp(bytes).metadata();
    return imagePlanes(bytes, width!, height!);
  };
  const same = (match: { lightness: number; colour: number }) =>
    match.lightness >= PIXEL_MATCH && match.colour <= COLOUR_LIMIT;

  it('sees every edit of a photo as the photo, and distinct pictures as distinct', async () => {
    const original = await readFile(join(golden, 'landscape.png'));
    const photo = await planesOf(original);
    const random = new Random(11);
    for (const edit of EDITS) {
      for (let i = 0; i < 3; i++) {
        const { bytes, description } = await editImage(original, edit, random);
        const match = matchImages(photo, await planesOf(bytes));
        assert.ok(same(match), `${description}: ${JSON.stringify(match)}`);
        assert.equal(
          match.transform,
          edit === 'mirror' ? 'mirror' : edit === 'rotate' ? 'rotate90' : 'identity',
        );
      }
    }
    for (let seed = 1; seed <= 8; seed++) {
      const match = matchImages(photo, await planesOf(await scene(seed)));
      assert.ok(!same(match), `scene ${seed}: ${JSON.stringify(match)}`);
    }
  });

  it('tells the same layout in other colours apart, unless one of the two is grayscale', async () => {
    const picture = await scene(77);
    const planes = await planesOf(picture);
    const repainted = matchImages(
      planes,
      await planesOf(await sharp(picture).modulate({ hue: 150 }).toBuffer()),
    );
    assert.ok(repainted.lightness > 0.9 && repainted.colour > COLOUR_LIMIT, JSON.stringify(repainted));
    const gray = matchImages(planes, await planesOf(await sharp(picture).grayscale().toBuffer()));
    assert.ok(same(gray), JSON.stringify(gray));
    // Warmer (a white balance moved): every colour shifted alike, the same picture.
    const warmer = matchImages(
      planes,
      await planesOf(
        await sharp(picture)
          .recomb([
            [1.1, 0, 0],
            [0, 1, 0],
            [0, 0, 0.85],
          ])
          .jpeg({ quality: 90 })
          .toBuffer(),
      ),
    );
    assert.ok(same(warmer), JSON.stringify(warmer));
    // Faded to a third of its colour (a filter): the same hues, weaker, so the same picture.
    const faded = matchImages(
      planes,
      await planesOf(await sharp(picture).modulate({ saturation: 0.3 }).toBuffer()),
    );
    assert.ok(same(faded), JSON.stringify(faded));
  });

  it('tells a red motorbike from a black one in the same studio pose, and knows a warmer copy (Caltech101)', {
    skip: noSharedData,
  }, async () => {
    const motorbike = (n: number) =>
      readFile(join(sharedData, 'caltech101', 'Motorbikes', `image_0${n}.jpg`));
    const red = await planesOf(await motorbike(729));
    const black = await planesOf(await motorbike(716));
    const match = matchImages(red, black);
    // Alike in lightness and detail: only the colours tell them apart (the red one's can't be scaled into
    // the black one's faint colours and back).
    assert.ok(match.lightness >= PIXEL_MATCH && match.detail >= DETAIL_MATCH, JSON.stringify(match));
    assert.ok(match.colour > COLOUR_LIMIT, JSON.stringify(match));
    assert.equal(judgeCopy(red, black), false);
    const darker = await planesOf(
      await sharp(await motorbike(729))
        .modulate({ brightness: 0.7 })
        .toBuffer(),
    );
    assert.ok(judgeCopy(red, darker), 'a darker copy of the red one is a copy');
    // A warmer white balance shifts every colour alike: still one picture (scaling alone missed these).
    for (const photo of ['butterfly/image_0001.jpg', 'Faces_easy/image_0001.jpg']) {
      const bytes = await readFile(join(sharedData, 'caltech101', photo));
      const warmer = await sharp(bytes)
        .recomb([
          [1.1, 0, 0],
          [0, 1, 0],
          [0, 0, 0.85],
        ])
        .jpeg({ quality: 90 })
        .toBuffer();
      assert.ok(judgeCopy(await planesOf(bytes), await planesOf(warmer)), `${photo}, warmer`);
    }
  });

  it('matches nothing to a flat image, without failing', async () => {
    const flat = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const match = matchImages(
      await planesOf(flat),
      await planesOf(await readFile(join(golden, 'landscape.png'))),
    );
    assert.ok(!same(match));
  });
});

describe('the pixel comparisons on worker threads', () => {
  let planes: ImagePlanes[];
  let first: Uint32Array;
  let second: Uint32Array;
  let expected: Uint8Array;
  before(async () => {
    const original = await readFile(join(import.meta.dirname, 'golden', 'landscape.png'));
    const random = new Random(5);
    const images: Buffer[] = [original];
    for (const edit of EDITS) images.push((await editImage(original, edit, random)).bytes);
    for (let seed = 1; seed <= 6; seed++) {
      const picture = await scene(seed);
      images.push(picture, await sharp(picture).flop().jpeg({ quality: 80 }).toBuffer());
    }
    planes = await Promise.all(
      images.map(async (bytes) => {
        const { width, height } = await sharp(bytes).metadata();
        return imagePlanes(bytes, width!, height!);
      }),
    );
    // Every ordered pair: more than 32 chunks of 32, copies and distinct pictures mixed.
    const a: number[] = [];
    const b: number[] = [];
    for (let i = 0; i < planes.length; i++)
      for (let j = 0; j < planes.length; j++)
        if (i !== j) {
          a.push(i);
          b.push(j);
        }
    first = Uint32Array.from(a);
    second = Uint32Array.from(b);
    expected = Uint8Array.from(a, (i, k) => (judgeCopy(planes[i]!, planes[b[k]!]!) ? 1 : 0));
  });

  it('answers each pair as this thread does, in the order asked, again in the same session and after a release', async () => {
    assert.ok(expected.includes(1) && expected.includes(0));
    const threads = createMatchThreads({ threads: 3, minPairs: 1 });
    const session = {};
    try {
      const planesOf = (image: number) => planes[image]!;
      assert.deepEqual(await threads.copies(session, first, second, planesOf), expected);
      assert.deepEqual(await localMatcher.copies(session, first, second, planesOf), expected);
      // The workers keep the planes: the second time only pairs go out, reversed this time.
      const reversed = (list: Uint32Array) => Uint32Array.from(list).reverse();
      const none = () => {
        throw new Error('planes asked again');
      };
      assert.deepEqual(
        await threads.copies(session, reversed(first), reversed(second), none),
        Uint8Array.from(expected).reverse(),
      );
      threads.release(session);
      assert.deepEqual(await threads.copies(session, first, second, planesOf), expected);
    } finally {
      await threads.close();
    }
  });

  it('compares on this thread the pairs of workers that end midway', async () => {
    const threads = createMatchThreads({ threads: 2, minPairs: 1 });
    const answer = threads.copies({}, first, second, (image) => planes[image]!);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await threads.close();
    assert.deepEqual(await answer, expected);
  });
});
