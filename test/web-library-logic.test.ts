// The library panel's pure parts, without a browser: which files of a drop are sent with which label,
// and how they are split into requests the server takes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describePicked } from '../web/src/components/LibraryAdd.tsx';
import { clampCutoff } from '../web/src/components/SimilarityCutoff.tsx';
import { labelByFolder, megabytes, parseUrlList, planBatches, prepareFiles } from '../web/src/upload-plan.ts';

const file = (size: number) => ({ size });
const limits = { maxFiles: 3, maxBytes: 1000 };

describe('a drop', () => {
  it('labels images by folder as ris index does, the dropped folder itself for its own files', () => {
    assert.equal(labelByFolder('photo.jpg'), undefined);
    assert.equal(labelByFolder("Vacances d'été/plage.jpg"), "Vacances d'été");
    assert.equal(labelByFolder('trip/beach/day 1/a.jpg'), 'beach');
    assert.equal(
      labelByFolder(`${'x'.repeat(150)}/a.jpg`),
      'x'.repeat(100),
      'a label is 100 characters at most',
    );
  });

  it('sends loose files whatever their name, only images from folders, nothing over the request limit', () => {
    const { send, notSent } = prepareFiles(
      [
        { file: file(10), path: 'notes.txt' },
        { file: file(10), path: 'trip/notes.txt' },
        { file: file(10), path: 'trip/.DS_Store' },
        { file: file(10), path: 'trip/beach/Crème brûlée.JPG' },
        { file: file(2000), path: 'trip/huge.png' },
      ],
      '',
      limits,
    );
    assert.deepEqual(
      send.map((s) => [s.path, s.label]),
      [
        ['notes.txt', undefined],
        ['trip/beach/Crème brûlée.JPG', 'beach'],
      ],
    );
    assert.deepEqual(
      notSent.map((n) => n.path),
      ['trip/notes.txt', 'trip/.DS_Store', 'trip/huge.png'],
    );
    assert.match(notSent[2]!.reason, /larger than the 1 KB one request may carry/);
  });

  it('gives a typed label to every file, trimmed, without control characters', () => {
    const { send } = prepareFiles(
      [
        { file: file(1), path: 'a.jpg' },
        { file: file(1), path: 'trip/b.jpg' },
      ],
      '  summer\u0007 ',
      limits,
    );
    assert.deepEqual(
      send.map((s) => s.label),
      ['summer', 'summer'],
    );
  });

  it('is described by its folders and files', () => {
    const picked = (paths: string[]) => paths.map((path) => ({ file: new File([], 'x'), path }));
    assert.equal(describePicked(picked(['trip/a.jpg', 'trip/b/c.jpg'])), 'trip: 2 files');
    assert.equal(describePicked(picked(['a.jpg'])), '1 file');
    assert.equal(describePicked(picked(['a/x.jpg', 'b/y.jpg', 'c.jpg'])), '2 folders and 1 file (3 files)');
  });
});

describe('requests', () => {
  it('carry one label each, at most maxFiles files and maxBytes bytes, in the order given', () => {
    const items = [
      { file: file(100), label: 'a', n: 1 },
      { file: file(100), label: 'b', n: 2 },
      { file: file(100), label: 'a', n: 3 },
      { file: file(100), label: 'a', n: 4 },
      { file: file(100), label: 'a', n: 5 },
      { file: file(600), label: 'b', n: 6 },
      { file: file(500), label: 'b', n: 7 },
      { file: file(1000), n: 8 },
    ];
    assert.deepEqual(
      planBatches(items, limits).map((batch) => batch.map((item) => item.n)),
      [[1, 3, 4], [5], [2, 6], [7], [8]],
    );
    assert.deepEqual(planBatches([], limits), []);
  });

  it('of addresses take http(s) only, once each, and say what is not one', () => {
    const { urls, invalid } = parseUrlList(
      'https://a.example/1.jpg\nhttp://b.example/2.jpg, https://a.example/1.jpg  ftp://c/3.jpg\n\nphoto.jpg',
    );
    assert.deepEqual(urls, ['https://a.example/1.jpg', 'http://b.example/2.jpg']);
    assert.deepEqual(
      invalid.map((i) => i.path),
      ['ftp://c/3.jpg', 'photo.jpg'],
    );
  });

  it('are sized in words a user reads', () => {
    assert.equal(megabytes(0), '0 KB');
    assert.equal(megabytes(12), '1 KB');
    assert.equal(megabytes(45_000), '45 KB');
    assert.equal(megabytes(2_500_000), '2.5 MB');
    assert.equal(megabytes(200_000_000), '200 MB');
  });
});

describe('the relevance cutoff', () => {
  it('is off at the start of the scale and stays within it', () => {
    const scale = { min: 0.2, max: 0.9, step: 0.01 };
    assert.equal(clampCutoff(null, scale), null);
    assert.equal(clampCutoff(0.2, scale), null);
    assert.equal(clampCutoff(0.1, scale), null);
    assert.equal(clampCutoff(0.5, scale), 0.5);
    assert.equal(clampCutoff(0.95, scale), 0.9);
  });
});
