// The page's collection states (broken, being prepared, then ready), its address checks, and the
// Experiments view, in a real browser over a real server.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { indexCollection } from '../src/collection/build.ts';
import { Collection } from '../src/collection/collection.ts';
import { newPendingWork } from '../src/collection/pending-work.ts';
import { runExperiment } from '../src/experiment/index.ts';
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

let dir: string;
let home: string;
let browser: Browser;
let server: RunningServer;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'ris-web-views-'));
  home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  for (const [name, seed] of [
    ['colours', 1],
    ['later', 5],
    ['damaged', 9],
  ] as const) {
    await writeClassFolders(join(dir, name), 4, 6, 64, seed, name.slice(0, 3));
    const { collection } = await indexCollection(name, join(dir, name), { model, home });
    await collection.close();
  }
  const db = await open(join(home, 'collections', 'damaged', 'metadata.db'), 'r+');
  await db.write(Buffer.from('not a database at all'), 0, 21, 0);
  await db.close();
  await runExperiment({ collection: 'colours', home, queries: 8 });
  const webRoot = join(dir, 'web');
  await buildPage(webRoot);
  server = await listen({
    port: 0,
    collections: ['colours', 'damaged'],
    collectionOptions: { home },
    webRoot,
    access: { writeToken: TOKEN },
  });
  server.registry.set({
    name: 'later',
    state: 'preparing',
    preparation: { phase: 'downloading', percent: 35 },
  });
  browser = await launchBrowser();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const TOKEN = 'web-views-test-token-0123';
const open_ = async (path = '/', viewport?: { width: number; height: number }) => {
  const page = await newPage(browser, `${server.url}${path}`, [server.url], viewport);
  await page
    .getByRole('button', { name: /^Use example/ })
    .first()
    .waitFor();
  return page;
};
const options = (page: Page) =>
  page
    .getByRole('combobox', { name: 'Collection' })
    .locator('option')
    .evaluateAll((list) => list.map((o) => [o.textContent, (o as HTMLOptionElement).disabled]));

describe('collections in every state', { skip }, () => {
  it('lists a broken collection and one being prepared, which joins once ready without a reload', async () => {
    const page = await open_();
    assert.deepEqual(await options(page), [
      ['colours', false],
      ['damaged (broken)', true],
      ['later (preparing: downloading 35%)', true],
    ]);
    const reason = await page.locator('option[value=damaged]').getAttribute('title');
    assert.match(reason!, /not a SQLite database/);
    server.registry.set({
      name: 'later',
      state: 'preparing',
      preparation: { phase: 'embedding', percent: 70 },
    });
    await page
      .locator('option', { hasText: 'later (preparing: embedding 70%)' })
      .waitFor({ state: 'attached' });
    const later = await Collection.open('later', { home, persistIndex: 'builds' });
    server.registry.set({ name: 'later', state: 'ready', collection: later });
    await page.locator('option[value=later]:not([disabled])').waitFor({ state: 'attached' });
    await page.getByRole('combobox', { name: 'Collection' }).selectOption('later');
    await page
      .getByRole('button', { name: /^Use example lat/ })
      .first()
      .waitFor();
    assert.deepEqual(await accessibilityViolations(page), []);
    await closePage(page);
  });

  it('says when the address names a collection that does not exist', async () => {
    const page = await open_('/?collection=nosuch');
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(
      (await alert.textContent())!,
      /There is no collection "nosuch" on this server; showing colours instead/,
    );
    assert.equal(await page.getByRole('combobox', { name: 'Collection' }).inputValue(), 'colours');
    await closePage(page);
  });

  it('offers two public example URLs, which only fill the field and To search', async () => {
    const page = await open_();
    await page.getByRole('tab', { name: 'Image URL' }).click();
    const examples = page.getByRole('button', { name: /Wikimedia Commons/ });
    assert.equal(await examples.count(), 2);
    // The preview would be fetched from Wikimedia by the browser: answered here with a local image instead,
    // and the test asserts that nothing else went out.
    const outside: string[] = [];
    const picture = await readFile(join(dir, 'colours', 'col1', 'img000.jpg'));
    await page.route('**/*', (route) => {
      if (route.request().url().startsWith(server.url)) return route.continue();
      outside.push(route.request().url());
      return route.fulfill({ status: 200, contentType: 'image/jpeg', body: picture });
    });
    await examples.first().click();
    const address = await page.getByRole('textbox', { name: 'Image URL' }).inputValue();
    assert.match(address, /^https:\/\/upload\.wikimedia\.org\//);
    await page.getByRole('img', { name: `To search: ${address}` }).waitFor();
    assert.deepEqual(outside, [address], 'only the preview, which the test answered; no search was sent');
    await page.context().close();
  });
});

describe('interrupted work', { skip }, () => {
  it('shows an interrupted ris index beside the collection, with the command that resumes it', async () => {
    const colours = await Collection.open('colours', { home });
    // The mark a ris index killed part way leaves: its process is gone.
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    colours.beginWork({
      ...newPendingWork('index', 'ris index colours --collection colours', 40),
      pid: gone,
    });
    try {
      const page = await open_();
      await page
        .getByText(
          /interrupted ris index: 24 of 40 images; run ris index colours --collection colours to resume/,
        )
        .waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      await closePage(page);
    } finally {
      colours.endWork();
      await colours.close();
    }
  });
});

describe('the Experiments view', { skip }, () => {
  it('shows the reports of the collection with their plots and command, and runs the seed preset', async () => {
    // The address ris serve prints: the page keeps the token and takes it out of the address bar.
    const page = await open_(`/?token=${TOKEN}`);
    assert.equal(new URL(page.url()).search, '');
    await page.getByRole('tab', { name: 'Experiments' }).click();
    await page.getByText("The notebook's index table").first().waitFor();
    await page.getByText('ris experiment colours').first().waitFor();
    const plot = page.locator('img[alt^="Plot: Recall against speed"]').first();
    await plot.waitFor();
    await page.waitForFunction(() =>
      [...document.querySelectorAll('img[alt^="Plot"]')].every(
        (i) => (i as HTMLImageElement).naturalWidth > 0,
      ),
    );
    assert.deepEqual(await accessibilityViolations(page), [], 'dark theme');
    await page.getByRole('button', { name: 'Light theme' }).click();
    assert.deepEqual(await accessibilityViolations(page), [], 'light theme');
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(join(ARTIFACTS, 'web-experiments.png'), await page.screenshot({ fullPage: true }));

    await page.getByRole('button', { name: /Run the seed experiment/ }).click();
    await page.waitForFunction(
      () => document.querySelectorAll('[data-report-status="done"]').length >= 2,
      undefined,
      { timeout: 120_000 },
    );
    await closePage(page);
  });
});
