/**
 * `npm run bench:duplicates-view`: whether the page's Duplicates view stays responsive with 10,000 groups.
 *
 * A real collection of N pictures each with a half-size copy (2·N images, a tiny model built here, as the
 * tests build it), a real server, and Debian's chromium (playwright-core). Measured: the server's search
 * for the groups (the first API call), then in the page the time from clicking the Duplicates tab to the
 * first page of groups, to the next page, to a page typed in (the last), to the count of
 * "Remove the others in all groups…" (every group listed, 500 a request), to every copy removed (through
 * the bulk route, after the undo window) and the groups found again without them, and the page's
 * main-thread long tasks (over 50 ms, PerformanceObserver) throughout.
 *
 * Options: --pairs N (default 10,000), --keep (leave the set in its temporary folder).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import { listen } from '../src/server/serve.ts';
import { buildPage, CHROMIUM, launchBrowser } from '../test/browser.ts';
import { scene } from '../test/fixtures/duplicate-images.ts';
import { tinyConfig, writeTinyModel } from '../test/fixtures/tiny-models.ts';
import { numberOption } from './lib.ts';

const pairs = numberOption('--pairs', 10_000);
const TOKEN = 'bench-token-bench-token-bench-token';
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

const work = await mkdtemp(join(tmpdir(), 'ris-bench-duplicates-view-'));
try {
  let started = performance.now();
  const root = join(work, 'photos');
  for (let folder = 0; folder * 1000 < pairs; folder++) {
    await mkdir(join(root, `part ${folder}`), { recursive: true });
    const count = Math.min(1000, pairs - folder * 1000);
    await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const n = folder * 1000 + i;
        const picture = await scene(100_000 + n, 160, 120);
        await writeFile(join(root, `part ${folder}`, `scène ${n}.jpg`), picture);
        await writeFile(
          join(root, `part ${folder}`, `scène ${n} petite.jpg`),
          await sharp(picture).resize(80, 60).jpeg({ quality: 80 }).toBuffer(),
        );
      }),
    );
  }
  console.log(`set: ${pairs} pictures with a half-size copy each (${seconds(performance.now() - started)})`);

  started = performance.now();
  const model = await writeTinyModel(
    work,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  const home = join(work, 'home');
  const { collection } = await indexCollection('albums', root, { model, home });
  await collection.close();
  console.log(`indexed: ${2 * pairs} images (${seconds(performance.now() - started)})`);

  const webRoot = join(work, 'web');
  await buildPage(webRoot);
  const server = await listen({
    port: 0,
    collectionOptions: { home },
    webRoot,
    access: { writeToken: TOKEN },
    log: () => undefined,
  });
  const browser = await launchBrowser();
  try {
    started = performance.now();
    const first = (await (
      await fetch(`${server.url}/api/collections/albums/duplicates?page=0&count=50`)
    ).json()) as { total: number; threshold: number; thresholdSource: string };
    const search = performance.now() - started;
    console.log(
      `server: ${first.total} groups at ${first.threshold.toFixed(3)} (${first.thresholdSource}) in ${seconds(search)} (calibration, neighbours and the second look)`,
    );

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.addInitScript(() => {
      const longTasks: number[] = [];
      (window as unknown as { longTasks: number[] }).longTasks = longTasks;
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) longTasks.push(entry.duration);
      }).observe({ type: 'longtask', buffered: true });
    });
    await page.goto(`${server.url}/?token=${TOKEN}`);
    const step = async (what: string, act: () => Promise<unknown>, shown: () => Promise<unknown>) => {
      const at = performance.now();
      await act();
      await shown().catch(async (error: unknown) => {
        const text = (await page.locator('.duplicates').textContent()) ?? '';
        throw new Error(`${what}: not seen; the view shows:\n${text.slice(0, 600)}`, { cause: error });
      });
      const took = performance.now() - at;
      console.log(`page: ${what}: ${seconds(took)}`);
      return took;
    };
    const pages = Math.ceil(first.total / 50);
    const summary = (from: number) =>
      page.getByText(new RegExp(`groups ${from}–\\d+ shown`)).waitFor({ timeout: 120_000 });
    await step(
      'the Duplicates tab to its first page of 50 groups',
      () => page.getByRole('tab', { name: 'Duplicates' }).click(),
      () => summary(1),
    );
    await step(
      'Next to the second page',
      () => page.getByRole('button', { name: 'Next' }).click(),
      () => summary(51),
    );
    const pageNumber = page.getByRole('spinbutton', { name: 'Page' });
    await step(
      `page ${pages} typed in`,
      async () => {
        await pageNumber.fill(String(pages));
        await pageNumber.press('Enter');
      },
      () => summary((pages - 1) * 50 + 1),
    );
    await step(
      `"Remove the others in all groups…" to its count of ${first.total} groups`,
      () => page.getByRole('button', { name: 'Remove the others in all groups…' }).click(),
      () => page.getByText(/^Remove .* in [\d,]+ groups from albums/).waitFor({ timeout: 120_000 }),
    );
    await step(
      'removing them all, to the groups found again without them (the 6 s undo window included)',
      () => page.getByRole('button', { name: /^Remove [\d,]+ images$/ }).click(),
      () =>
        page.waitForFunction(
          (before) => {
            const text = document.querySelector('.duplicates-summary p')?.textContent ?? '';
            const groups = /^([\d,]+) groups? of copies/.exec(text);
            return (
              text.startsWith('No copies found') || (groups && Number(groups[1]!.replace(/,/g, '')) < before)
            );
          },
          first.total,
          { timeout: 300_000 },
        ),
    );
    // The originals left may pair among themselves at the threshold calibrated again without the copies.
    console.log(`page: then shows "${await page.locator('.duplicates-summary p').textContent()}"`);
    const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
    longTasks.sort((a, b) => b - a);
    console.log(
      `page main thread: ${longTasks.length} long tasks (> 50 ms) in all, longest ${
        longTasks
          .slice(0, 5)
          .map((ms) => `${Math.round(ms)} ms`)
          .join(', ') || 'none'
      }`,
    );
    await context.close();
  } finally {
    await browser.close();
    await server.close();
  }
  console.log(`(chromium: ${CHROMIUM})`);
} finally {
  if (!process.argv.includes('--keep')) await rm(work, { recursive: true, force: true });
  else console.log(`kept: ${work}`);
}
