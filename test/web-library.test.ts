// The library panel in a real browser over a real server with a write token: a collection made, files
// and a whole folder dropped (as the operating system drops them, through Chromium's drag input),
// images picked and fetched, removed with and without undo, a page closed meanwhile, the relevance
// cutoff, a collection deleted by typing its name; a second browser context following it all through
// the event stream, without the token and without write controls.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Locator, Page } from 'playwright-core';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import { MODEL_REGISTRY } from '../src/embed/config.ts';
import { listen, type RunningServer } from '../src/server/serve.ts';
import {
  ARTIFACTS,
  accessibilityViolations,
  buildPage,
  closePage,
  launchBrowser,
  newPage,
  skipWithoutBrowser as skip,
} from './browser.ts';
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';

/** As the page waits before it sends a removal (web/src/removals.ts). */
const UNDO_MS = 6_000;

const TOKEN = 'web-library-test-token-0123456789';
const READ_TOKEN = 'web-library-read-token-0123456789';
let dir: string;
let home: string;
let model: string;
let webRoot: string;
let browser: Browser;
let server: RunningServer;
let files: Server;
let filesBase: string;
/** What the test drops: a folder (with a sub-folder and a note), and loose files beside it. */
let drop: { folder: string; creme: string; notes: string; copy: string };
let picks: string[];

/** A 48×48 JPEG unlike the others, different for every seed. */
async function picture(seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(48 * 48 * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * seed * 31 + seed * 97 + (i % 3) * seed * 53) % 251;
  return sharp(raw, { raw: { width: 48, height: 48, channels: 3 } })
    .jpeg()
    .toBuffer();
}

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'ris-web-library-'));
  home = join(dir, 'home');
  model = await writeTinyModel(dir, 'tiny', 'float', tinyConfig({ tensor: 'features', pooling: 'none' }));
  await writeClassFolders(join(dir, 'colours'), 3, 4, 48, 1, 'colour');
  const { collection } = await indexCollection('colours', join(dir, 'colours'), { model, home });
  await collection.close();

  const folder = join(dir, 'drop', "Vacances d'été");
  await mkdir(join(folder, 'nuit'), { recursive: true });
  await writeFile(join(folder, 'plage au soleil.jpg'), await picture(1));
  await writeFile(join(folder, 'ville.jpg'), await picture(2));
  await writeFile(join(folder, 'nuit', 'étoile filante.jpg'), await picture(3));
  await writeFile(join(folder, 'notes.txt'), 'à ne pas oublier\n');
  drop = {
    folder,
    creme: join(dir, 'drop', 'Crème brûlée 1.jpg'),
    notes: join(dir, 'drop', 'lisez moi.jpg'),
    copy: join(dir, 'drop', 'copie de la plage.jpg'),
  };
  await writeFile(drop.creme, await picture(4));
  await writeFile(drop.notes, 'these are notes, not a picture\n');
  await copyFile(join(folder, 'plage au soleil.jpg'), drop.copy);
  picks = [];
  for (let seed = 5; seed <= 10; seed++) {
    const file = join(dir, 'picks', `photo ${seed}.jpg`);
    await mkdir(join(dir, 'picks'), { recursive: true });
    await writeFile(file, await picture(seed));
    picks.push(file);
  }
  const fetched = await picture(11);
  const far = await picture(40);
  files = createServer((req, res) => {
    if (req.url === '/photos/tournesol%20%C3%A9t%C3%A9.jpg')
      return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(fetched);
    if (req.url === '/far.jpg') return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(far);
    res.writeHead(404).end();
  });
  filesBase = await listenOnLoopback(files);

  webRoot = join(dir, 'web');
  await buildPage(webRoot);
  server = await listen({
    port: 0,
    collectionOptions: { home },
    webRoot,
    access: { writeToken: TOKEN },
    allowLoopbackUrls: true,
    // Small, so a drop of a few files is split into several requests as a large one would be.
    maxUploadFiles: 4,
    log: () => undefined,
  });
  browser = await launchBrowser();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await server?.close();
  files?.close();
  await rm(dir, { recursive: true, force: true });
});

const open = async (path = '/', viewport?: { width: number; height: number }) => {
  // The test's image server too: the Image URL field shows a preview from it.
  const page = await newPage(browser, `${server.url}${path}`, [server.url, filesBase], viewport);
  await page
    .getByRole('combobox', { name: 'Collection' })
    .locator('option')
    .first()
    .waitFor({ state: 'attached' });
  return page;
};
const tab = (page: Page, name: string) => page.getByRole('tab', { name }).click();
const select = (page: Page) => page.getByRole('combobox', { name: 'Collection' });
const gallery = (page: Page) => page.getByRole('region', { name: 'Gallery' });
const galleryCount = (page: Page, text: RegExp) => gallery(page).getByText(text).waitFor();
const dropZone = (page: Page) => page.locator('.library-drop');

/** Drops files and folders from disk on `target`, as the operating system does (Chromium's drag input). */
async function dropFromDisk(page: Page, target: Locator, paths: string[]) {
  const box = (await target.boundingBox())!;
  const cdp = await page.context().newCDPSession(page);
  const data = { items: [], files: paths, dragOperationsMask: 1 };
  const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
  for (const type of ['dragEnter', 'dragOver', 'drop'] as const)
    await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
  await cdp.detach();
}

/** The id of an image of a collection, from the server, by the file name it was sent under. */
async function imageStatus(collection: string, id: number) {
  return (await fetch(`${server.url}/api/collections/${collection}/images/${id}`)).status;
}

/** Every text a batch row showed, from now on (its phases pass faster than a test can look). */
async function recordBatchTexts(page: Page) {
  await page.evaluate(() => {
    const seen = new Set<string>();
    (window as unknown as { batchTexts: Set<string> }).batchTexts = seen;
    new MutationObserver(() => {
      for (const element of document.querySelectorAll('.batch-text')) seen.add(element.textContent ?? '');
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}
const batchTexts = (page: Page) =>
  page.evaluate(() => [...(window as unknown as { batchTexts: Set<string> }).batchTexts]);

let writer: Page;
let reader: Page;

describe('the library panel', { skip }, () => {
  it('keeps the token from the address and offers changes only to the page that has it', async () => {
    writer = await open(`/?token=${TOKEN}`);
    assert.equal(new URL(writer.url()).search, '', 'the token left the address bar');
    assert.equal(await writer.evaluate(() => localStorage.getItem('ris-token')), TOKEN);
    await tab(writer, 'Library');
    await writer.getByRole('button', { name: 'Create collection' }).waitFor();
    assert.equal(await writer.getByRole('button', { name: 'Delete colours' }).count(), 1);
    assert.equal(await writer.getByRole('button', { name: 'Rescan the folder of colours' }).count(), 1);
    await writer.getByRole('button', { name: 'Choose images…' }).waitFor();

    // Another browser, without the token: everything shows, nothing can be changed.
    reader = await open('/');
    await gallery(reader)
      .getByRole('button', { name: /^Enlarge/ })
      .first()
      .waitFor();
    assert.equal(await reader.getByRole('button', { name: /^Remove/ }).count(), 0, 'no remove on tiles');
    await gallery(reader)
      .getByRole('button', { name: /^Enlarge/ })
      .first()
      .click();
    await reader.getByRole('dialog').getByRole('button', { name: 'Search with this image' }).click();
    await reader.locator('.result').first().waitFor();
    assert.equal(await reader.getByRole('button', { name: 'Remove from collection' }).count(), 0);
    await tab(reader, 'Library');
    await reader.getByText('This page can search but not change the library').first().waitFor();
    for (const name of ['Create collection', 'Choose images…', 'Choose a folder…', 'Add from addresses'])
      assert.equal(await reader.getByRole('button', { name }).count(), 0, name);
    assert.equal(await reader.getByRole('button', { name: /^Delete/ }).count(), 0);
    assert.equal(await reader.getByRole('button', { name: /^Rescan/ }).count(), 0);
    assert.equal(
      await reader.locator('input[type=file], textarea').count(),
      1,
      'only To search takes a file',
    );
  });

  it('creates a collection with a model and an index; the other page lists it at once', async () => {
    await writer.getByRole('textbox', { name: 'Name' }).fill('été');
    await writer.getByRole('button', { name: 'Create collection' }).click();
    await writer
      .getByRole('alert')
      .getByText(/letters, digits/)
      .waitFor();

    await writer.getByRole('textbox', { name: 'Name' }).fill('holiday-2024');
    await writer.getByRole('combobox', { name: 'Model' }).selectOption({ label: 'tiny.onnx' });
    await writer.getByRole('combobox', { name: 'Index' }).selectOption('hnsw');
    await writer.getByRole('button', { name: 'Create collection' }).click();
    await writer.getByRole('heading', { name: 'Add images to holiday-2024' }).waitFor();
    assert.equal(await select(writer).inputValue(), 'holiday-2024', 'the new collection is shown');
    assert.match(writer.url(), /collection=holiday-2024/);
    await writer.getByRole('status').getByText('Created the collection holiday-2024.').waitFor();
    // Made elsewhere: the reader's page hears it from the event stream.
    await select(reader)
      .locator('option', { hasText: /^holiday-2024$/ })
      .waitFor({ state: 'attached' });
    await reader.getByRole('rowheader', { name: 'holiday-2024' }).waitFor();
    // It follows no folder of the user's: there is nothing to rescan.
    assert.equal(await writer.getByRole('button', { name: 'Rescan the folder of holiday-2024' }).count(), 0);
  });

  it('drops files and a folder: a bar per request, each file that failed or was skipped with why, the images in the gallery without a reload', async () => {
    await recordBatchTexts(writer);
    await dropFromDisk(writer, dropZone(writer), [drop.folder, drop.creme, drop.notes, drop.copy]);
    const summary = writer.locator('.drop-summary');
    await summary.getByText(/added/).waitFor({ timeout: 20_000 });
    assert.equal(
      await summary.textContent(),
      '4 added · 1 skipped · 2 failed or not sent',
      (await writer.locator('.drop').textContent()) ?? '',
    );
    assert.equal(
      await writer.locator('.drop-title').textContent(),
      '1 folder and 3 files (7 files) into holiday-2024',
    );
    // One label per request: the folder's images, its sub-folder's, the loose files.
    const rows = writer.locator('.batch');
    assert.equal(await rows.count(), 3);
    assert.deepEqual(await rows.evaluateAll((list) => list.map((r) => r.getAttribute('data-phase'))), [
      'done',
      'done',
      'done',
    ]);
    assert.deepEqual(
      await writer
        .locator('.batch progress')
        .evaluateAll((list) => list.map((p) => (p as HTMLProgressElement).value)),
      [1, 1, 1],
    );
    const texts = await batchTexts(writer);
    assert.ok(
      texts.some((t) => /label Vacances d'été/.test(t)),
      texts.join('\n'),
    );
    assert.ok(
      texts.some((t) => /label nuit/.test(t)),
      texts.join('\n'),
    );
    assert.ok(
      texts.some((t) => /Sending/.test(t)),
      texts.join('\n'),
    );
    assert.ok(
      texts.some((t) => /Adding: \d+ of \d+ files/.test(t)),
      texts.join('\n'),
    );
    const failed = await writer.locator('.batch-outcomes[open] li').allTextContents();
    assert.deepEqual(failed.length, 2, failed.join('\n'));
    assert.match(failed[0]!, /^Vacances d'été\/notes\.txt: not an image by its name/);
    assert.match(failed[1]!, /^lisez moi\.jpg: .*(not an image|unsupported)/i);
    await writer.getByText('Skipped (1)').click();
    assert.match(
      (await writer.locator('.batch-outcomes:not([open]) li, .batch-outcomes li').last().textContent())!,
      /^copie de la plage\.jpg: .*plage au soleil\.jpg/,
    );

    // The gallery of both pages shows them, without a reload.
    await tab(writer, 'Search');
    await galleryCount(writer, /^4 of 4 images/);
    await select(reader).selectOption('holiday-2024');
    await tab(reader, 'Search');
    await galleryCount(reader, /^4 of 4 images/);
    const names = await gallery(writer)
      .getByRole('button', { name: /^Enlarge/ })
      .evaluateAll((list) => list.map((b) => b.getAttribute('aria-label')));
    assert.ok(names.some((n) => n?.startsWith("Enlarge Vacances d'été #")));
    assert.ok(names.some((n) => n?.startsWith('Enlarge nuit #')));
    assert.ok(names.some((n) => n?.startsWith('Enlarge unlabelled #')));
  });

  it('sends picked images in requests the server takes, and fetches pasted addresses', async () => {
    await tab(writer, 'Library');
    await writer.locator('input[data-picker="files"]').setInputFiles(picks);
    const latest = writer.locator('.drop').first();
    await latest.locator('.drop-summary').getByText(/added/).waitFor({ timeout: 20_000 });
    assert.equal(
      await latest.locator('.drop-summary').textContent(),
      '6 added · 0 skipped · 0 failed or not sent',
    );
    const requests = await latest.locator('.batch-text').allTextContents();
    assert.equal(requests.length, 2, requests.join('\n'));
    assert.match(requests[0]!, /^Request 1 of 2: 4 files, \d+ KB · Done: 4 added$/);
    assert.match(requests[1]!, /^Request 2 of 2: 2 files, \d+ KB · Done: 2 added$/);

    await writer
      .getByRole('textbox', { name: 'Image addresses' })
      .fill(
        `${filesBase.replace('127.0.0.1', 'localhost')}/photos/tournesol%20%C3%A9t%C3%A9.jpg\n${filesBase}/missing.jpg\nnot-an-address`,
      );
    await writer.getByRole('textbox', { name: 'Label (optional)' }).fill('fleurs');
    await writer.getByRole('button', { name: 'Add from addresses' }).click();
    const urls = writer.locator('.drop').first();
    await urls.locator('.drop-summary').getByText(/added/).waitFor({ timeout: 20_000 });
    assert.equal(
      await urls.locator('.drop-summary').textContent(),
      '1 added · 0 skipped · 2 failed or not sent',
    );
    const failed = await urls.locator('.batch-outcomes li').allTextContents();
    assert.match(failed[0]!, /^not-an-address: not an http/);
    assert.match(failed[1]!, /missing\.jpg: .*404/);

    // The reader's gallery and collection list follow.
    await galleryCount(reader, /^11 of 11 images/);
    await tab(reader, 'Library');
    await reader.getByRole('row', { name: /holiday-2024 11 / }).waitFor();
    await tab(reader, 'Search');
  });

  it('passes axe-core in both themes with what was sent listed, fits a narrow screen (test/artifacts/web-library.png)', async () => {
    await tab(writer, 'Library');
    assert.deepEqual(await accessibilityViolations(writer), [], 'dark theme');
    await writer.getByRole('button', { name: 'Light theme' }).click();
    assert.deepEqual(await accessibilityViolations(writer), [], 'light theme');
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(join(ARTIFACTS, 'web-library.png'), await writer.screenshot({ fullPage: true }));
    await writer.getByRole('button', { name: 'Light theme' }).click();
    await writer.setViewportSize({ width: 390, height: 844 });
    const overflow = await writer.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert.ok(overflow <= 0, `the Library view is ${overflow}px wider than a 390px screen`);
    await writer.setViewportSize({ width: 1280, height: 900 });
    assert.deepEqual(await accessibilityViolations(reader), [], 'the reader, without write controls');
  });

  it('removes from a result card with undo and without, from a gallery tile, and when the page is closed meanwhile', async () => {
    const deletes: string[] = [];
    writer.on('request', (request) => {
      if (request.method() === 'DELETE') deletes.push(request.url());
    });
    await tab(writer, 'Search');
    await gallery(writer)
      .getByRole('button', { name: /^Enlarge/ })
      .first()
      .click();
    await writer.getByRole('dialog').getByRole('button', { name: 'Search with this image' }).click();
    const cards = writer.locator('.result');
    await cards.nth(2).waitFor();
    const idOf = async (card: Locator) =>
      Number(new URL((await card.locator('img').getAttribute('src'))!, server.url).pathname.split('/').pop());
    const first = await idOf(cards.first());
    const toast = writer.locator('.undo-toast');

    // Undone: nothing is sent, the card comes back.
    await cards.first().getByRole('button', { name: 'Remove from collection' }).click();
    await toast.getByText(new RegExp(`#${first} from holiday-2024\\.`)).waitFor();
    assert.notEqual(await idOf(cards.first()), first, 'gone from the results at once');
    assert.equal(
      await gallery(writer)
        .getByRole('button', { name: new RegExp(`#${first}$`) })
        .count(),
      0,
      'and from the gallery',
    );
    assert.equal(await writer.evaluate(() => document.activeElement?.textContent), 'Undo', 'focus on Undo');
    assert.deepEqual(await accessibilityViolations(writer), [], 'with a removal to undo');
    await writeFile(join(ARTIFACTS, 'web-library-undo.png'), await writer.screenshot());
    await writer.keyboard.press('Enter');
    await toast.waitFor({ state: 'detached' });
    assert.equal(await idOf(cards.first()), first, 'back after undo');
    await writer.waitForFunction(
      (id) => document.activeElement?.getAttribute('data-removes-id') === String(id),
      first,
      { timeout: 2_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, UNDO_MS + 500));
    assert.deepEqual(deletes, []);
    assert.equal(await imageStatus('holiday-2024', first), 200);

    // Not undone: removed once the time is up; the other page's gallery follows.
    await cards.first().getByRole('button', { name: 'Remove from collection' }).click();
    await toast.waitFor({ state: 'detached', timeout: UNDO_MS + 5_000 });
    await waitFor(async () => (await imageStatus('holiday-2024', first)) === 404);
    assert.equal(deletes.length, 1);
    await galleryCount(reader, /^10 of 10 images/);

    // From a gallery tile, removed now; the grid keeps its order (the page's own change).
    await galleryCount(writer, /^10 of 10 images/);
    const tiles = () =>
      gallery(writer)
        .getByRole('button', { name: /^Enlarge/ })
        .evaluateAll((list) => list.map((b) => b.getAttribute('aria-label')));
    const before = await tiles();
    const tile = gallery(writer)
      .getByRole('button', { name: /^Remove / })
      .nth(1);
    const tileId = Number((await tile.getAttribute('aria-label'))!.split('#').pop());
    await tile.click();
    await toast.getByRole('button', { name: 'Remove now' }).click();
    await waitFor(async () => (await imageStatus('holiday-2024', tileId)) === 404);
    await galleryCount(writer, /^9 of 9 images/);
    assert.deepEqual(
      await tiles(),
      before.filter((label) => !label!.endsWith(`#${tileId}`)),
    );

    // Closed within the undo time: the page sends the removal as it goes.
    const last = await idOf(cards.first());
    await cards.first().getByRole('button', { name: 'Remove from collection' }).click();
    await toast.waitFor();
    await writer.close();
    await waitFor(async () => (await imageStatus('holiday-2024', last)) === 404);
    await galleryCount(reader, /^8 of 8 images/);
    await writer.context().close();
  });

  it('takes a cutoff on the model\'s scale: results below it go, and nothing close says "no close match"', async () => {
    writer = await open(`/?token=${TOKEN}&collection=holiday-2024`);
    const sent: string[] = [];
    writer.on('request', (request) => {
      if (request.url().endsWith('/search')) sent.push(request.postData() ?? '');
    });
    const slider = writer.getByRole('slider', { name: 'Minimum similarity' });
    const scale = (
      (await (await fetch(`${server.url}/api/collections`)).json()) as {
        name: string;
        similarity: { min: number; max: number; step: number };
      }[]
    ).find((c) => c.name === 'holiday-2024')!.similarity;
    assert.deepEqual(
      [await slider.getAttribute('min'), await slider.getAttribute('max'), await slider.getAttribute('step')],
      [String(scale.min), String(scale.max), String(scale.step)],
    );
    assert.equal(await slider.getAttribute('aria-valuetext'), 'off', 'no cutoff by default');
    // An image unlike any of the collection, by URL (the search request is JSON the test can read).
    await writer.getByRole('tab', { name: 'Image URL' }).click();
    await writer.getByRole('textbox', { name: 'Image URL' }).fill(`${filesBase}/far.jpg`);
    await writer.getByRole('button', { name: 'Use this URL' }).click();
    // Every image of the collection as a result, to count those above a cutoff.
    await writer.getByRole('checkbox', { name: 'Allow up to 20 results' }).check();
    await writer.getByRole('slider', { name: 'Number of results' }).fill('20');
    await writer.getByRole('button', { name: 'Search', exact: true }).click();
    const cards = writer.locator('.result');
    await cards.nth(7).waitFor();
    assert.doesNotMatch(sent.at(-1)!, /minSimilarity/);
    // The similarities as the server has them (the page shows two decimals).
    const exact = (
      (await (
        await fetch(`${server.url}/api/collections/holiday-2024/search`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ url: `${filesBase}/far.jpg`, k: 20 }),
        })
      ).json()) as { results: { similarity: number }[] }
    ).results.map((r) => r.similarity);
    assert.equal(exact.length, 8);

    // Above every result: none is shown, not even the least bad.
    await slider.fill(String(scale.max));
    await writer.getByText('No close match').waitFor();
    assert.equal(await cards.count(), 0);
    await writer.getByRole('button', { name: 'Search', exact: true }).click();
    await waitFor(async () => JSON.parse(sent.at(-1) ?? '{}').minSimilarity === scale.max);
    await writer.getByText('No close match').waitFor();
    assert.equal(await cards.count(), 0);

    // A step of the slider between two results: those above it are left; lowering asks the search anew.
    const gap = exact.findIndex((s, i) => i + 1 < exact.length && Math.floor(s * 100) / 100 > exact[i + 1]!);
    assert.ok(gap >= 0, `no slider step between two results: ${exact.join(', ')}`);
    const between = Math.floor(exact[gap]! * 100) / 100;
    const asked = sent.length;
    await slider.fill(between.toFixed(2));
    await waitFor(async () => sent.length > asked);
    assert.equal(JSON.parse(sent.at(-1)!).minSimilarity, between);
    await writer.waitForFunction((n) => document.querySelectorAll('.result').length === n, gap + 1);
    assert.equal(
      await writer.getByRole('slider', { name: 'Minimum similarity' }).getAttribute('aria-valuetext'),
      between.toFixed(2),
    );
    await slider.fill(String(scale.min));
    await cards.nth(7).waitFor();
    assert.doesNotMatch(sent.at(-1)!, /minSimilarity/);

    // A model whose scores live elsewhere: the slider follows its scale.
    MODEL_REGISTRY[model] = { ...MODEL_REGISTRY.resnet50!, similarity: { min: 0.5, max: 0.9, step: 0.005 } };
    try {
      await writer.reload();
      await slider.waitFor();
      assert.deepEqual(
        [
          await slider.getAttribute('min'),
          await slider.getAttribute('max'),
          await slider.getAttribute('step'),
        ],
        ['0.5', '0.9', '0.005'],
      );
      await slider.fill('0.75');
      assert.equal(await writer.locator('output[for="min-similarity"]').textContent(), '0.750');
    } finally {
      delete MODEL_REGISTRY[model];
    }
  });

  it('deletes a collection once its name is typed; every page sees it go', async () => {
    await tab(writer, 'Library');
    await writer.getByRole('button', { name: 'Delete holiday-2024' }).click();
    const dialog = writer.getByRole('dialog', { name: 'Delete the collection holiday-2024?' });
    const confirm = dialog.getByRole('button', { name: 'Delete collection' });
    assert.equal(await confirm.isDisabled(), true);
    await dialog.getByRole('textbox', { name: 'Type holiday-2024 to confirm' }).fill('holiday');
    assert.equal(await confirm.isDisabled(), true, 'not with part of the name');
    await dialog.getByRole('textbox', { name: 'Type holiday-2024 to confirm' }).fill('holiday-2024');
    assert.deepEqual(await accessibilityViolations(writer), [], 'with the dialog open');
    await writeFile(join(ARTIFACTS, 'web-library-delete.png'), await writer.screenshot());
    await confirm.click();
    await dialog.waitFor({ state: 'hidden' });
    await writer.getByRole('status').getByText('Deleted the collection holiday-2024.').waitFor();
    assert.equal(await writer.getByRole('rowheader', { name: 'holiday-2024' }).count(), 0);
    assert.equal(await select(writer).inputValue(), 'colours');
    assert.equal(existsSync(join(home, 'collections', 'holiday-2024')), false);
    // The reader was showing it: it says so, and shows another.
    await reader
      .getByRole('alert')
      .getByText('The collection holiday-2024 was deleted; showing colours instead.')
      .waitFor();
    assert.deepEqual(await select(reader).locator('option').allTextContents(), ['colours']);
    await closePage(reader);
  });

  it('rescans a collection that follows its folder, and says what changed', async () => {
    const status = writer.getByRole('status').first();
    const rescan = writer.getByRole('button', { name: 'Rescan the folder of colours' });
    const added = join(dir, 'colours', 'colour1', 'nouvelle prise de vue.jpg');
    await writeFile(added, await picture(21));
    await rescan.click();
    await status.getByText('Rescanned colours: 1 added.').waitFor();
    await writer.getByRole('row', { name: /colours\s+13/ }).waitFor();
    await rm(added);
    await rescan.click();
    await status.getByText('Rescanned colours: 1 removed.').waitFor();
    await rescan.click();
    await status.getByText('Rescanned colours: its folder has not changed.').waitFor();
  });

  it('forgets a token the server refuses, and says so', async () => {
    const wrong = await open('/?token=not-the-token');
    await wrong
      .getByRole('alert')
      .getByText(/did not accept the token this page was given/)
      .waitFor();
    assert.equal(await wrong.evaluate(() => localStorage.getItem('ris-token')), null);
    await tab(wrong, 'Library');
    assert.equal(await wrong.getByRole('button', { name: 'Create collection' }).count(), 0);
    await closePage(wrong);

    // The server was restarted with another token since the page got it: the first change is refused.
    await writer.evaluate(() => localStorage.setItem('ris-token', 'a-token-of-another-day'));
    await writer.getByRole('textbox', { name: 'Name' }).fill('refused');
    await writer.getByRole('button', { name: 'Create collection' }).click();
    await writer
      .getByRole('alert')
      .getByText(/refused this page's token/)
      .waitFor();
    assert.equal(await writer.getByRole('button', { name: 'Create collection' }).count(), 0);
    assert.equal(await writer.evaluate(() => localStorage.getItem('ris-token')), null);
    assert.equal(existsSync(join(home, 'collections', 'refused')), false);
    await closePage(writer);
  });

  it('a server that needs a read token shows nothing without it and says how to get it', async () => {
    const guarded = await listen({
      port: 0,
      collectionOptions: { home },
      webRoot,
      access: { writeToken: TOKEN, readToken: READ_TOKEN },
      log: () => undefined,
    });
    try {
      const locked = await newPage(browser, `${guarded.url}/`, [guarded.url]);
      await locked.getByRole('heading', { name: 'This server needs a token' }).waitFor();
      await locked
        .getByText(/ends in \?token=/)
        .first()
        .waitFor();
      assert.equal(await locked.getByRole('tab').count(), 0, 'no view without the token');
      assert.deepEqual(await accessibilityViolations(locked), []);
      await closePage(locked);

      // With the read token: searching and images (by the session's cookie), no change offered.
      const page = await newPage(browser, `${guarded.url}/?token=${READ_TOKEN}`, [guarded.url]);
      await page
        .getByRole('region', { name: 'Gallery' })
        .getByRole('button', { name: /^Enlarge/ })
        .first()
        .waitFor();
      await page.waitForFunction(() =>
        [...document.querySelectorAll('.gallery img')].every((i) => (i as HTMLImageElement).naturalWidth > 0),
      );
      assert.equal(await page.getByRole('button', { name: /^Remove/ }).count(), 0);
      await tab(page, 'Library');
      await page.getByText('This page can search but not change the library').first().waitFor();
      await closePage(page);
    } finally {
      await guarded.close();
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeout = 10_000) {
  const until = Date.now() + timeout;
  while (!(await condition())) {
    assert.ok(Date.now() < until, `not within ${timeout} ms: ${condition}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
