// The page's pure parts, without a browser: the crop box arithmetic and the first check of an address.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CollectionEntry } from '../web/src/api.ts';
import { openingCollection } from '../web/src/collection-choice.ts';
import { clampCrop, initialCrop } from '../web/src/components/CropArea.tsx';
import { checkImageUrl } from '../web/src/query.ts';

describe('crop boxes', () => {
  const natural = { width: 640, height: 480 };

  it('start on the middle 80% of the image, in whole pixels', () => {
    assert.deepEqual(initialCrop(natural), { left: 64, top: 48, width: 512, height: 384 });
    assert.deepEqual(initialCrop({ width: 5, height: 5 }), { left: 1, top: 1, width: 4, height: 4 });
  });

  it('stay inside the image when moved or resized past its edges', () => {
    assert.deepEqual(clampCrop({ left: 600, top: -20, width: 100, height: 100 }, natural), {
      left: 540,
      top: 0,
      width: 100,
      height: 100,
    });
    assert.deepEqual(clampCrop({ left: -5, top: 10, width: 9000, height: 470.6 }, natural), {
      left: 0,
      top: 9,
      width: 640,
      height: 471,
    });
  });

  it('are never smaller than 4 pixels a side', () => {
    assert.deepEqual(clampCrop({ left: 10, top: 10, width: 0, height: 1 }, natural), {
      left: 10,
      top: 10,
      width: 4,
      height: 4,
    });
  });
});

describe('image addresses', () => {
  it('accept http and https', () => {
    assert.equal(checkImageUrl('https://example.com/cat.jpg'), null);
    assert.equal(checkImageUrl('  http://example.com/cat.jpg '), null);
  });

  it('refuse other schemes and non-addresses, saying what to type', () => {
    assert.match(checkImageUrl('ftp://example.com/cat.jpg')!, /Only http:\/\/ and https:\/\/.*not ftp:/);
    assert.match(checkImageUrl('file:///etc/passwd')!, /not file:/);
    assert.match(checkImageUrl('cat.jpg')!, /full address, starting with http/);
  });
});

describe('the collection a page opens on', () => {
  const ready = (name: string) =>
    ({ name, state: 'ready', size: 1, model: 'm', modelId: 'm@1', labels: [] }) as unknown as CollectionEntry;
  const list: CollectionEntry[] = [
    { name: 'voc', state: 'preparing', phase: 'downloading', percent: 35 },
    ready('caltech'),
    ready('photos'),
    { name: 'old', state: 'broken', reason: 'its database is damaged' },
  ];
  it('is the one the address names, when it can be searched', () => {
    assert.deepEqual(openingCollection(list, 'photos'), { name: 'photos' });
    assert.deepEqual(openingCollection(list, null), { name: 'caltech' });
  });
  it('is the first that can be searched otherwise, saying why', () => {
    assert.deepEqual(openingCollection(list, 'nope'), {
      name: 'caltech',
      problem: 'There is no collection "nope" on this server; showing caltech instead.',
    });
    assert.match(openingCollection(list, 'voc').problem!, /^The collection "voc" is still being prepared/);
    assert.match(openingCollection(list, 'old').problem!, /cannot be used: its database is damaged/);
    assert.deepEqual(openingCollection([list[0]!], null), {
      name: '',
      problem: 'No collection can be searched yet: see the collection list for why.',
    });
  });
});
