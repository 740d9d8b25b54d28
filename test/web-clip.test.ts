// "Describe it" on the page, in a real browser, over a real server: a tiny CLIP collection whose vision
// tower sees colour and whose text tower knows "red", "green" and "blue", beside one that sees images only.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { indexCollection } from '../src/collection/build.ts';
import { listen } from '../src/server/serve.ts';
import {
  ARTIFACTS,
  accessibilityViolations,
  buildPage,
  closePage,
  launchBrowser,
  newPage,
  skipWithoutBrowser as skip,
} from './browser.ts';
import { writeColourClip, writeColourImages } from './fixtures/tiny-clip.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

let dir: string;
let browser: Browser;
let server: { url: string; close: () => Promise<void> };
const ids: Record<string, number> = {};

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'ris-web-clip-'));
  const home = join(dir, 'home');
  const images = await writeColourImages(join(dir, 'images'), 80, 60);
  const model = await writeColourClip(join(dir, 'clip'));
  const { collection } = await indexCollection('words', images, { model, home });
  const stored = await collection.storedVectors();
  stored.paths.forEach((path, i) => {
    ids[path.replace('.png', '')] = stored.ids[i]!;
  });
  await collection.close();
  const imageOnly = await writeTinyModel(
    dir,
    'plain',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'avg' }),
  );
  await (await indexCollection('pictures', images, { model: imageOnly, home })).collection.close();
  const webRoot = join(dir, 'web');
  await buildPage(webRoot);
  server = await listen({
    port: 0,
    collections: ['words', 'pictures'],
    collectionOptions: { home },
    webRoot,
  });
  browser = await launchBrowser();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

async function openApp(collection = 'words'): Promise<Page> {
  const page = await newPage(browser, `${server.url}/?collection=${collection}`, [server.url]);
  await page
    .getByRole('button', { name: /^Use example/ })
    .first()
    .waitFor();
  return page;
}

const field = (page: Page) => page.getByLabel('Describe it');
/** The ids of the results, best first. */
const resultIds = async (page: Page) =>
  (
    await page.locator('.result img').evaluateAll((images) => images.map((i) => (i as HTMLImageElement).src))
  ).map((src) => Number(new URL(src).pathname.split('/').pop()));
/** Runs `act` and waits for the results of the search it starts. */
async function searched(page: Page, act: () => Promise<void>) {
  const serial = () => document.querySelector('.results')?.getAttribute('data-search') ?? null;
  const before = await page.evaluate(serial);
  await act();
  await page.waitForFunction((previous) => {
    const element = document.querySelector('.results');
    return element?.getAttribute('data-search') !== previous && element?.ariaBusy === 'false';
  }, before);
}

describe('Describe it', { skip }, () => {
  it('searches by words alone: type, press Enter, the red image comes first', async () => {
    const page = await openApp();
    await field(page).fill('a photo of a red square');
    await searched(page, () => field(page).press('Enter'));
    assert.equal((await resultIds(page))[0], ids.red);
    assert.match(
      (await page.locator('.last-words').textContent())!,
      /Last searched words: \+ a photo of a red square/,
    );
    // Words score on the model's text scale, lower than pictures: the relevance cutoff follows it.
    const cutoff = page.getByRole('slider', { name: 'Minimum similarity' });
    assert.equal(await cutoff.getAttribute('max'), '0.5');
    await closePage(page);
  });

  it('combines + and − chips with the image to search, and shows the words of the last search', async () => {
    const page = await openApp();
    await page.getByRole('slider', { name: 'Number of results' }).fill('4');
    // The blue image to search, and words that outweigh it: 3 × red, minus a little green.
    await page
      .getByRole('button', { name: /^Use example/ })
      .first()
      .waitFor();
    await page
      .locator('.panes input[type=file]')
      .first()
      .setInputFiles({
        name: 'blue.png',
        mimeType: 'image/png',
        buffer: await readFile(join(dir, 'images', 'blue.png')),
      });
    await searched(page, () => page.getByRole('button', { name: 'Search', exact: true }).click());
    assert.equal((await resultIds(page))[0], ids.blue, 'the image alone');
    assert.equal(await page.getByRole('slider', { name: 'Minimum similarity' }).getAttribute('max'), '1');
    await field(page).fill('3:red');
    await page.getByRole('button', { name: '+ Add' }).click();
    await field(page).fill('0.2:green');
    await page.getByRole('button', { name: '− Not' }).click();
    const chips = page.getByRole('list', { name: 'Words of the query' }).getByRole('listitem');
    assert.deepEqual(await chips.allTextContents(), ['+ red ×3×', '− green ×0.2×']);
    assert.equal(await field(page).inputValue(), '', 'the field is emptied into a chip');
    await searched(page, () => page.getByRole('button', { name: 'Search', exact: true }).click());
    const order = await resultIds(page);
    assert.equal(order[0], ids.red, 'three times red outweighs the blue picture');
    assert.equal(order.at(-1), ids.green);
    assert.match((await page.locator('.last-words').textContent())!, /\+ red ×3, − green ×0\.2/);
    // A chip removed is out of the next search.
    await page.getByRole('button', { name: 'Remove + red ×3' }).click();
    await searched(page, () => page.getByRole('button', { name: 'Search', exact: true }).click());
    assert.equal((await resultIds(page))[0], ids.blue);
    assert.deepEqual(await accessibilityViolations(page), [], 'with chips and results');
    await page.screenshot({ path: join(ARTIFACTS, 'web-describe-it.png'), fullPage: false });
    await closePage(page);
  });

  it('offers example sentences from the labels, and a collection that sees images only disables the field', async () => {
    const page = await openApp();
    const example = page.locator('.describe .link-button').first();
    const sentence = (await example.textContent())!;
    assert.match(sentence, /^a photo of a |^a dog on a beach$/);
    await example.click();
    assert.equal(await field(page).inputValue(), sentence);
    await page.locator('#collection').selectOption('pictures');
    assert.equal(await field(page).isDisabled(), true);
    assert.match(
      (await page.locator('#describe-hint').textContent())!,
      /The model of this collection \(.*plain\.onnx\) sees images only; index it with clip-vit-b32 to search by words\./,
    );
    await closePage(page);
  });
});
