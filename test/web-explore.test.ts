// The Explore view in a real browser over a real server: the four figures for a searched image, their
// counts against the API's, hover and keyboard details, the HNSW animation, nprobes, both themes (axe),
// a narrow screen, and a collection without partitions of its own (the server builds an IVF-Flat for
// the view, the page shows how far). Screenshots go to test/artifacts/explore-*.png.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { indexCollection } from '../src/collection/build.ts';
import type { HnswTrace, IvfTrace, ProjectionTrace } from '../src/explore/types.ts';
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
let browser: Browser;
let server: RunningServer;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'ris-web-explore-'));
  const home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  // 280 images: enough for an IVF-PQ index of 16 partitions; 'small' stays exact (Flat).
  await writeClassFolders(join(dir, 'pics'), 4, 70, 48, 8, 'pic');
  await writeClassFolders(join(dir, 'small'), 3, 5, 48, 3, 'small');
  await writeClassFolders(join(dir, 'graph'), 3, 10, 48, 5, 'graph');
  for (const [name, index] of [
    ['pics', { kind: 'ivf-pq', numPartitions: 16 }],
    ['small', { kind: 'auto' }],
    ['graph', { kind: 'hnsw' }],
  ] as const) {
    const { collection } = await indexCollection(name, join(dir, name), { model, home, index });
    await collection.close();
  }
  const webRoot = join(dir, 'web');
  await buildPage(webRoot);
  server = await listen({
    port: 0,
    collections: ['pics', 'small', 'graph'],
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

async function api<T>(path: string, body: unknown): Promise<T> {
  const response = await fetch(`${server.url}/api/collections/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.ok(response.ok, await response.clone().text());
  return (await response.json()) as T;
}

/** The page with an example of `collection` searched, then the Explore tab open; returns the searched id. */
async function exploreAnExample(
  collection = 'pics',
  viewport = { width: 1280, height: 900 },
): Promise<{ page: Page; id: number }> {
  const page = await newPage(browser, `${server.url}/?collection=${collection}`, [server.url], viewport);
  const example = page.getByRole('button', { name: /^Use example/ }).first();
  await example.click();
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('.result').first().waitFor();
  await page.getByRole('tab', { name: 'Explore' }).click();
  const alt = (await page.getByRole('img', { name: /^Explored image:/ }).getAttribute('alt'))!;
  return { page, id: Number(/#(\d+)/.exec(alt)![1]) };
}

const shoot = async (page: Page, name: string) => {
  await mkdir(ARTIFACTS, { recursive: true });
  await writeFile(join(ARTIFACTS, `explore-${name}.png`), await page.screenshot({ fullPage: true }));
};

const probedCells = (page: Page) =>
  page.locator('path.explore-cell[data-probe]').evaluateAll((cells) =>
    cells
      .map((c) => [Number(c.getAttribute('data-probe')), Number(c.getAttribute('data-partition'))])
      .sort((a, b) => a[0]! - b[0]!)
      .map(([, partition]) => partition),
  );

const setSlider = async (page: Page, name: string | RegExp, value: number) => {
  await page.getByRole('slider', { name }).fill(String(value));
};

/** Waits until the detail beside a figure shows a loaded image. */
const detailImageLoaded = (page: Page, selector: string) =>
  page.waitForFunction((s) => {
    const image = document.querySelector(s) as HTMLImageElement | null;
    return image?.complete && image.naturalWidth > 0;
  }, selector);

describe('the Explore view of an IVF-PQ collection', { skip }, () => {
  it('draws the partition map with the probed cells in probe order; nprobes changes them; hover and keys show images', async () => {
    const { page, id } = await exploreAnExample();
    await page.locator('path.explore-cell').first().waitFor();
    assert.equal(await page.locator('path.explore-cell').count(), 16, 'one cell per partition');
    // Default nprobes: min(16, partitions) = every partition.
    assert.equal((await probedCells(page)).length, 16);

    await setSlider(page, 'Partitions probed (nprobes)', 3);
    await page.waitForFunction(() => document.querySelectorAll('path.explore-cell[data-probe]').length === 3);
    const three = await api<IvfTrace>('pics/explore/ivf', { id, k: 5, nprobes: 3 });
    assert.deepEqual(
      await probedCells(page),
      three.coarse.probes.map((p) => p.partition),
      'the highlighted cells are the probed partitions, in probe order',
    );
    await setSlider(page, 'Partitions probed (nprobes)', 5);
    await page.waitForFunction(() => document.querySelectorAll('path.explore-cell[data-probe]').length === 5);
    const five = await probedCells(page);
    assert.deepEqual(
      five.slice(0, 3),
      three.coarse.probes.map((p) => p.partition),
      'more probes keep the nearest',
    );
    assert.notDeepEqual(
      five,
      three.coarse.probes.map((p) => p.partition),
    );

    // Pointing at a cell shows a few of its images.
    const cell = page.locator(`path.explore-cell[data-partition="${five[4]}"]`);
    const box = (await cell.boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.getByText(new RegExp(`^Partition ${five[4]}: `)).waitFor();
    await detailImageLoaded(page, '#explore-coarse-detail .explore-samples img');
    // From the keyboard: focus the map, step to the next partition.
    const map = page.getByRole('region', { name: /^Partition map/ });
    await map.focus();
    await page.keyboard.press('Home');
    await page.getByText(new RegExp(`^Partition ${five[0]}: .*probed 1st`)).waitFor();
    await page.keyboard.press('ArrowRight');
    await page.getByText(new RegExp(`^Partition ${five[1]}: .*probed 2nd`)).waitFor();
    await detailImageLoaded(page, '#explore-coarse-detail .explore-samples img');
    // Enter opens the partition's gallery.
    await page.keyboard.press('Enter');
    const gallery = page.getByRole('region', { name: new RegExp(`^Partition ${five[1]}`) });
    await gallery
      .getByRole('button', { name: /^Enlarge/ })
      .first()
      .waitFor();

    assert.deepEqual(await accessibilityViolations(page), [], 'dark theme');
    await shoot(page, 'coarse');
    await page.getByRole('button', { name: 'Light theme' }).click();
    assert.deepEqual(await accessibilityViolations(page), [], 'light theme');
    await shoot(page, 'coarse-light');
    await closePage(page);
  });

  it('draws every candidate of the probed partitions by distance, the results marked; hover shows one', async () => {
    const { page, id } = await exploreAnExample();
    await page.getByRole('tab', { name: 'IVF fine search: distance' }).click();
    await setSlider(page, 'Partitions probed (nprobes)', 4);
    const trace = await api<IvfTrace>('pics/explore/ivf', { id, k: 5, nprobes: 4 });
    const probedSizes = trace.coarse.probes.reduce((s, p) => s + p.size, 0);
    assert.equal(trace.fine.total, probedSizes);
    await page.waitForFunction(
      (n) => document.querySelectorAll('circle.explore-point').length === n,
      trace.fine.shown,
    );
    assert.equal(await page.locator('.explore-result-mark').count(), 5);
    await page.getByText(`among the ${probedSizes} images of the 4 probed partitions`).waitFor();

    const point = page.locator(`circle[data-candidate="${trace.results[1]!.id}"]`);
    const box = (await point.boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.getByText(`#${trace.results[1]!.id} · `).first().waitFor();
    await detailImageLoaded(page, '#explore-distance-detail img');
    assert.deepEqual(await accessibilityViolations(page), []);
    await shoot(page, 'distance');
    await closePage(page);
  });

  it('projects the probed partitions with the query among them', async () => {
    const { page, id } = await exploreAnExample();
    await page.getByRole('tab', { name: 'IVF fine search: projection' }).click();
    await page.locator('circle.explore-point').first().waitFor({ timeout: 60_000 });
    const trace = await api<ProjectionTrace>('pics/explore/projection', { id, k: 5, nprobes: 16 });
    assert.equal(trace.mode, 'partitions');
    assert.equal(await page.locator('circle.explore-point').count(), trace.shown);
    assert.equal(trace.shown, Math.min(trace.total, 1499));
    assert.equal(await page.locator('.explore-result-mark').count(), 5);
    await page.getByRole('region', { name: /^Projection/ }).focus();
    await page.keyboard.press('Home');
    await detailImageLoaded(page, '#explore-projection-detail img');
    assert.deepEqual(await accessibilityViolations(page), []);
    await shoot(page, 'projection');
    await closePage(page);
  });

  it('builds the HNSW graph (with its progress), draws its levels, and plays the path to the results', async () => {
    const { page, id } = await exploreAnExample();
    await page.getByRole('tab', { name: 'HNSW search' }).click();
    // The graph is built on demand: the page shows how far until it is ready, then draws it.
    await page
      .getByRole('progressbar', { name: /^Building the HNSW graph of pics \(280 images\): \d+%$/ })
      .waitFor();
    await page.locator('g.explore-plane').first().waitFor({ timeout: 60_000 });
    assert.equal(await page.getByRole('progressbar').count(), 0, 'the progress is gone once drawn');
    const trace = await api<HnswTrace>('pics/explore/hnsw', { id, k: 5, efSearch: 64 });
    assert.equal(
      await page.locator('g.explore-plane').count(),
      trace.graph.levels.length,
      'one plane per level',
    );
    assert.equal(await page.locator('.explore-levels li').count(), trace.trace.length);

    await page.getByRole('button', { name: 'Replay' }).click();
    await page.waitForFunction(
      () => document.querySelector('.explore-step-text')?.getAttribute('data-finished') === 'false',
    );
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('button', { name: 'Step', exact: true }).click();
    await page.getByRole('button', { name: 'Play', exact: true }).click();
    await page.waitForFunction(
      () => document.querySelector('.explore-step-text')?.getAttribute('data-finished') === 'true',
      undefined,
      { timeout: 20_000 },
    );
    const reached = (await page.locator('.explore-step-text').textContent())!;
    assert.equal(reached, `Reached the 5 results: ${trace.results.map((r) => `#${r.id}`).join(', ')}`);
    assert.equal(await page.locator('.explore-result-mark').count(), 5);
    // The path on level 0 ends where the results are.
    const level0 = trace.trace.at(-1)!;
    assert.equal(level0.level, 0);
    assert.equal(level0.best.id, trace.results[0]!.id);

    await page.getByRole('region', { name: /^HNSW graph/ }).focus();
    await page.keyboard.press('End');
    await detailImageLoaded(page, '#explore-hnsw-detail img');
    assert.deepEqual(await accessibilityViolations(page), [], 'dark theme');
    await shoot(page, 'hnsw');
    await page.getByRole('button', { name: 'Light theme' }).click();
    assert.deepEqual(await accessibilityViolations(page), [], 'light theme');
    await closePage(page);
  });

  it('fits a narrow screen', async () => {
    const { page } = await exploreAnExample('pics', { width: 390, height: 800 });
    await page.locator('path.explore-cell').first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px too wide)`);
    assert.deepEqual(await accessibilityViolations(page), []);
    await shoot(page, 'narrow');
    await closePage(page);
  });
});

describe('the Explore view of a collection whose own index is not IVF', { skip }, () => {
  it("opens on the HNSW graph where that is the collection's own index", async () => {
    const { page } = await exploreAnExample('graph');
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('[role="tab"]')]
          .find((t) => t.textContent?.trim() === 'HNSW search')
          ?.getAttribute('aria-selected') === 'true',
    );
    assert.equal(
      await page.getByRole('tab', { name: 'IVF coarse search' }).getAttribute('aria-selected'),
      'false',
    );
    await page.close();
  });

  it('shows the build of an IVF-Flat for the view, then its partitions, distances and projection', async () => {
    const { page, id } = await exploreAnExample('small');
    // 'small' searches exactly (Flat): the coarse view asks, the server builds 4 partitions (√15).
    await page
      .getByRole('progressbar', {
        name: /^Building an IVF-Flat of 4 partitions for small \(15 images\): \d+%$/,
      })
      .waitFor();
    assert.equal(
      await page.getByRole('tab', { name: 'IVF coarse search' }).getAttribute('aria-selected'),
      'true',
    );
    await page.locator('path.explore-cell').first().waitFor({ timeout: 60_000 });
    assert.equal(await page.getByRole('progressbar').count(), 0, 'the progress is gone once drawn');
    assert.equal(await page.locator('path.explore-cell').count(), 4, 'one cell per partition');
    const trace = await api<IvfTrace>('small/explore/ivf', { id, k: 5, nprobes: 4 });
    assert.equal(trace.source, 'explore');
    assert.deepEqual(
      await probedCells(page),
      trace.coarse.probes.map((p) => p.partition),
      'every partition probed (nprobes = 4), in probe order',
    );
    await page
      .getByText(
        '15 images in 4 partitions of an IVF-Flat built for this view (small itself searches exactly, with a Flat index)',
      )
      .waitFor();
    await page.getByText(/IVF-Flat of 4 partitions built for this view from its stored vectors/).waitFor();
    assert.deepEqual(await accessibilityViolations(page), [], 'dark theme');
    await shoot(page, 'flat');

    await page.getByRole('tab', { name: 'IVF fine search: distance' }).click();
    await page.waitForFunction(
      (n) => document.querySelectorAll('circle.explore-point').length === n,
      trace.fine.shown,
    );
    assert.equal(trace.fine.total, 15);
    await page.getByText(/probed partitions of an IVF-Flat built for this view/).waitFor();

    await page.getByRole('tab', { name: 'IVF fine search: projection' }).click();
    await page
      .getByText(
        /^The 15 images of the 4 \(nprobes = 4\) probed partitions of an IVF-Flat built for this view/,
      )
      .waitFor({ timeout: 60_000 });
    assert.equal(await page.locator('circle.explore-point').count(), 15, 'every image of the collection');
    await page.getByRole('button', { name: 'Light theme' }).click();
    assert.deepEqual(await accessibilityViolations(page), [], 'light theme');
    await shoot(page, 'flat-projection');
    await closePage(page);
  });
});
