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
  files = createServer((req, res) => {
    if (req.url === '/photos/tournesol%20%C3%A9t%C3%A9.jpg')
      return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(fetched);
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
  const page = await newPage(browser, `${server.url}${path}`, [server.url], viewport);
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
});
