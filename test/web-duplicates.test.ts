// The Duplicates view in a real browser over a real server with a write token: groups as the API answers
// them (the kept image first and marked, similarity, size and bytes under each), pages of groups, the
// threshold slider, two members compared at full size, "remove the others" for one group and for all
// groups (with undo; the files stay on disk); a reader without the token sees no remove buttons. Then
// the bulk removal route as an attacker sends it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { indexCollection } from '../src/collection/build.ts';
import type { DuplicateGroup } from '../src/duplicates/find.ts';
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
import { scene, writeDuplicateFixture } from './fixtures/duplicate-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';

const TOKEN = 'web-duplicates-test-token-0123456789';
/** Pairs of a scene and its half-size copy, besides the fixture's families: more groups than a page holds. */
const PAIRS = 52;
let dir: string;
let root: string;
let webRoot: string;
let browser: Browser;
let server: RunningServer;

interface Answer {
  threshold: number;
  thresholdSource: string;
  total: number;
  hasMore: boolean;
  groups: DuplicateGroup[];
}

const api = async (query: string): Promise<Answer> => {
  const response = await fetch(`${server.url}/api/collections/albums/duplicates${query}`);
  assert.equal(response.status, 200);
  return (await response.json()) as Answer;
};
const imageStatus = async (id: number) =>
  (await fetch(`${server.url}/api/collections/albums/images/${id}`)).status;
/** What the page shows under an image: as the view writes it. */
const bytesText = (bytes: number) =>
  bytes < 1000
    ? `${bytes} B`
    : bytes < 1_000_000
      ? `${Math.round(bytes / 1000)} KB`
      : `${(bytes / 1_000_000).toFixed(1)} MB`;
const fileName = (path: string) => path.split('/').pop()!;

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'ris-web-duplicates-'));
  root = join(dir, 'mes photos');
  await writeDuplicateFixture(root);
  await mkdir(join(root, 'paires'));
  for (let i = 0; i < PAIRS; i++) {
    const picture = await scene(3000 + i);
    await writeFile(join(root, 'paires', `scène ${i}.jpg`), picture);
    await writeFile(
      join(root, 'paires', `scène ${i} petite.jpg`),
      await sharp(picture).resize(180, 135).jpeg({ quality: 80 }).toBuffer(),
    );
  }
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  const home = join(dir, 'home');
  const { collection } = await indexCollection('albums', root, { model, home });
  await collection.close();
  webRoot = join(dir, 'web');
  await buildPage(webRoot);
  server = await listen({
    port: 0,
    collectionOptions: { home },
    webRoot,
    access: { writeToken: TOKEN },
    log: () => undefined,
  });
  browser = await launchBrowser();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const open = async (path: string): Promise<Page> => {
  const page = await newPage(browser, `${server.url}${path}`, [server.url]);
  await page.getByRole('tab', { name: 'Duplicates' }).click();
  await page.getByText(/groups? of copies at|No copies found/).waitFor();
  return page;
};
const groupItems = (page: Page) => page.locator('.duplicate-group');

/** The page's groups as text, and the API's as the page should write them. */
async function shownGroups(page: Page): Promise<string[][]> {
  return groupItems(page).evaluateAll((groups) =>
    groups.map((group) =>
      [...group.querySelectorAll('.duplicate-facts')].map((facts) =>
        (facts.textContent ?? '').replace(/\s+/g, ' ').trim(),
      ),
    ),
  );
}
const expectedGroups = (groups: DuplicateGroup[]) =>
  groups.map((group) =>
    group.images.map((image) =>
      [
        image.keep ? 'Keep' : image.identical ? 'same bytes' : `similarity ${image.similarity.toFixed(2)}`,
        `${image.width} × ${image.height} · ${bytesText(image.bytes)}`,
        fileName(image.path),
      ].join(''),
    ),
  );

describe('the Duplicates view', { skip }, () => {
  it('shows a reader the groups the API answers, kept image first, a page at a time, and no remove buttons', async () => {
    const page = await open('/');
    const first = await api('?page=0&count=50');
    assert.ok(first.total >= PAIRS + 3, `${first.total} groups`);
    await page.getByText(`${first.total} groups of copies at ${first.threshold.toFixed(2)}`).waitFor();
    // A tiny model has no measured threshold: the page says it was calibrated on this collection.
    assert.equal(first.thresholdSource, 'calibrated');
    await page.getByText("Calibrated on edited copies of this collection's own images.").waitFor();
    assert.deepEqual(await shownGroups(page), expectedGroups(first.groups));
    // Every pair of a scene and its smaller copy is a group, the full-size scene kept.
    for (let i = 0; i < PAIRS; i++)
      assert.ok(
        first.groups
          .concat((await api('?page=1&count=50')).groups)
          .some(
            (g) =>
              g.images[0]!.path === `paires/scène ${i}.jpg` &&
              g.images.some((m) => m.path === `paires/scène ${i} petite.jpg`),
          ),
        `scène ${i}`,
      );

    const pages = page.getByRole('navigation', { name: 'Pages of groups' });
    const pageNumber = pages.getByRole('spinbutton', { name: 'Page' });
    await pages.getByText('of 2').waitFor();
    assert.equal(await pageNumber.inputValue(), '1');
    await pages.getByRole('button', { name: 'Next' }).click();
    await page.getByText(`groups 51–${first.total} shown`).waitFor();
    assert.equal(await pageNumber.inputValue(), '2');
    assert.deepEqual(await shownGroups(page), expectedGroups((await api('?page=1&count=50')).groups));
    // A page typed in is gone to at once; one that does not exist is refused, the page kept.
    await pageNumber.fill('1');
    await pageNumber.press('Enter');
    await page.getByText('groups 1–50 shown').waitFor();
    await pageNumber.fill('3');
    await pageNumber.press('Enter');
    assert.equal(await pageNumber.inputValue(), '1');
    await pageNumber.fill('2');
    await pageNumber.press('Enter');
    await page.getByText(`groups 51–${first.total} shown`).waitFor();
    assert.equal(await page.getByRole('button', { name: /^Remove/ }).count(), 0);
    assert.deepEqual(await accessibilityViolations(page), [], 'dark theme');
    await page.getByRole('button', { name: 'Light theme' }).click();
    assert.deepEqual(await accessibilityViolations(page), [], 'light theme');
    await writeFile(join(ARTIFACTS, 'web-duplicates-light.png'), await page.screenshot());
    await closePage(page);
  });

  it('compares two members at full size, and follows the threshold slider', async () => {
    const page = await open('/');
    const { groups, threshold } = await api('?page=0&count=50');
    const group = groups[0]!;
    const other = group.images[1]!;
    await groupItems(page)
      .first()
      .getByRole('button', { name: `Compare ${fileName(other.path)} with the kept image` })
      .click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: new RegExp(fileName(group.images[0]!.path)) }).waitFor();
    const shown = await dialog.locator('img').evaluateAll(async (images) => {
      await Promise.all((images as HTMLImageElement[]).map((img) => img.decode()));
      return (images as HTMLImageElement[]).map((img) => [img.naturalWidth, img.naturalHeight, img.width]);
    });
    assert.deepEqual(shown, [
      [group.images[0]!.width, group.images[0]!.height, group.images[0]!.width],
      [other.width, other.height, other.width],
    ]);
    assert.deepEqual(await accessibilityViolations(page), [], 'with the comparison open');
    await writeFile(join(ARTIFACTS, 'web-duplicates-compare.png'), await page.screenshot());
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });

    // To the slider's end: only byte-for-byte copies and near-identical embeddings stay compared.
    const asked: string[] = [];
    page.on('request', (request) => {
      if (request.url().includes('/duplicates?'))
        asked.push(new URL(request.url()).searchParams.get('threshold') ?? '');
    });
    const slider = page.getByRole('slider', { name: 'Similarity threshold' });
    assert.equal(Number(await slider.inputValue()), threshold);
    await slider.focus();
    await page.keyboard.press('End');
    const highest = Number(await slider.inputValue());
    assert.ok(highest > threshold);
    const strict = await api(`?threshold=${highest}&page=0&count=50`);
    await page
      .getByText(new RegExp(`(${strict.total} groups? of copies|No copies found) at ${highest.toFixed(2)}`))
      .waitFor();
    assert.deepEqual(asked, [String(highest)], 'one request once the slider rests');
    assert.deepEqual(await shownGroups(page), expectedGroups(strict.groups));
    await page.getByRole('button', { name: 'Default threshold' }).click();
    await page.getByText(`groups of copies at ${threshold.toFixed(2)}`).waitFor();
    await closePage(page);
  });

  it('removes the others of one group, then of all groups, from the collection only (with undo)', async () => {
    const page = await open(`/?token=${TOKEN}`);
    const { groups, total } = await api('?page=0&count=50');
    const group = groups[0]!;
    const copies = group.images.slice(1);
    const name = fileName(group.images[0]!.path);
    await groupItems(page)
      .first()
      .getByRole('button', { name: `Remove the others (${copies.length})` })
      .click();
    // The group leaves the page at once; the removal waits for the undo time.
    await waitFor(async () => (await shownGroups(page))[0]?.[0] !== expectedGroups([group])[0]![0]);
    const toast = page.locator('.undo-toast');
    await toast
      .getByText(
        `Removed ${copies.length === 1 ? `the copy ${fileName(copies[0]!.path)}` : `${copies.length} copies of ${name}`} from albums.`,
      )
      .waitFor();
    assert.deepEqual(await accessibilityViolations(page), [], 'with a removal to undo');
    await toast.getByRole('button', { name: 'Undo' }).click();
    await groupItems(page)
      .first()
      .getByRole('button', { name: `Remove the others (${copies.length})` })
      .waitFor();
    assert.deepEqual((await shownGroups(page))[0], expectedGroups([group])[0]);
    await groupItems(page)
      .first()
      .getByRole('button', { name: `Remove the others (${copies.length})` })
      .click();
    await toast.getByRole('button', { name: 'Remove now' }).click();
    await waitFor(async () =>
      (await Promise.all(copies.map((c) => imageStatus(c.id)))).every((s) => s === 404),
    );
    assert.equal(await imageStatus(group.images[0]!.id), 200);
    for (const copy of copies) assert.ok(existsSync(join(root, copy.path)), `${copy.path} stays on disk`);
    await page.getByText(`${total - 1} groups of copies`).waitFor();

    // All groups: counted over every page, confirmed, then removed in one request.
    const everything: DuplicateGroup[] = [];
    for (let p = 0, more = true; more; p++) {
      const answer = await api(`?page=${p}&count=50`);
      everything.push(...answer.groups);
      more = answer.hasMore;
    }
    const doomed = everything.flatMap((g) => g.images.slice(1));
    const bulk: string[] = [];
    page.on('request', (request) => {
      if (request.url().endsWith('/images/remove')) bulk.push(request.postData() ?? '');
    });
    await page.getByRole('button', { name: 'Remove the others in all groups…' }).click();
    await page
      .getByText(`Remove ${doomed.length} copies in ${everything.length} groups from albums`)
      .waitFor();
    await writeFile(join(ARTIFACTS, 'web-duplicates.png'), await page.screenshot({ fullPage: true }));
    await page.getByRole('button', { name: `Remove ${doomed.length} images` }).click();
    await toast
      .getByText(`Removed ${doomed.length} copies in ${everything.length} groups from albums.`)
      .waitFor();
    await toast.getByRole('button', { name: 'Remove now' }).click();
    await page.getByText(/^No copies found at/).waitFor({ timeout: 20_000 });
    assert.equal(bulk.length, 1);
    assert.deepEqual(
      (JSON.parse(bulk[0]!) as { ids: number[] }).ids.sort((a, b) => a - b),
      doomed.map((d) => d.id).sort((a, b) => a - b),
    );
    for (const image of doomed) assert.ok(existsSync(join(root, image.path)), `${image.path} stays on disk`);
    for (const kept of everything) assert.equal(await imageStatus(kept.images[0]!.id), 200);
    assert.deepEqual(await accessibilityViolations(page), [], 'with nothing left');
    await closePage(page);
  });
});

describe('the progress of a search for duplicates', { skip }, () => {
  it('goes to every open page as progress events (GET /api/events), stage by stage', async () => {
    const controller = new AbortController();
    const stream = await fetch(`${server.url}/api/events`, { signal: controller.signal });
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const readUntil = async (done: () => boolean) => {
      const until = Date.now() + 10_000;
      while (!done()) {
        assert.ok(Date.now() < until, `not heard: ${text.slice(-300)}`);
        text += (await reader.read()).value ?? '';
      }
    };
    await readUntil(() => text.includes('event: hello'));
    // A threshold not asked for before: searched now.
    const { groups } = await api('?threshold=0.31');
    const heard = () =>
      [...text.matchAll(/^data: (.*)$/gm)]
        .map((m) => JSON.parse(m[1]!) as Record<string, unknown>)
        .filter((e) => e.operation === 'duplicates');
    await readUntil(() => heard().some((e) => e.stage === 'compare' && e.done === e.total));
    controller.abort();
    const events = heard();
    assert.ok(events.every((e) => e.type === 'progress' && e.collection === 'albums'));
    assert.deepEqual([...new Set(events.map((e) => e.stage))], ['neighbours', 'compare']);
    assert.equal(new Set(events.map((e) => e.id)).size, 1, 'one id for the whole search');
    const last = events.at(-1)!;
    assert.ok((last.total as number) >= groups.length);
  });
});

describe('POST /api/collections/:name/images/remove', { skip }, () => {
  const remove = (body: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/api/collections/albums/images/remove`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers },
      body,
    });
  const codeOf = async (response: Response) =>
    ((await response.json()) as { error: { code: string } }).error.code;

  it('refuses requests without the token, from other origins, and bodies that are not a list of ids', async () => {
    const images = (await (
      await fetch(`${server.url}/api/collections/albums/gallery?seed=1&count=3`)
    ).json()) as { images: { id: number }[] };
    const ids = images.images.map((i) => i.id);
    const body = JSON.stringify({ ids });
    const noToken = await fetch(`${server.url}/api/collections/albums/images/remove`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    assert.deepEqual([noToken.status, await codeOf(noToken)], [401, 'UNAUTHORIZED']);
    const elsewhere = await remove(body, { origin: 'http://evil.example' });
    assert.deepEqual([elsewhere.status, await codeOf(elsewhere)], [403, 'ORIGIN_NOT_ALLOWED']);
    const text = await remove(body, { 'content-type': 'text/plain' });
    assert.deepEqual([text.status, await codeOf(text)], [415, 'UNSUPPORTED_CONTENT_TYPE']);
    for (const wrong of [
      '{"ids": [',
      '{}',
      '{"ids": []}',
      '{"ids": [-1]}',
      '{"ids": ["1"]}',
      '{"ids": [1.5]}',
      `{"ids": [${ids[0]}], "deleteFiles": true}`,
      JSON.stringify({ ids: Array.from({ length: 5001 }, (_, i) => i) }),
    ]) {
      const refused = await remove(wrong);
      assert.deepEqual(
        [refused.status, await codeOf(refused)],
        [400, 'INVALID_ARGUMENT'],
        wrong.slice(0, 60),
      );
    }
    const huge = await remove(JSON.stringify({ ids: Array.from({ length: 60_000 }, (_, i) => i) }));
    assert.deepEqual([huge.status, await codeOf(huge)], [413, 'UPLOAD_TOO_LARGE']);
    for (const id of ids) assert.equal(await imageStatus(id), 200, 'nothing removed by a refused request');

    const done = await remove(JSON.stringify({ ids: [...ids, ids[0], 999_999] }));
    assert.equal(done.status, 200);
    assert.deepEqual(await done.json(), { removed: ids.length, notFound: [999_999] });
    for (const id of ids) assert.equal(await imageStatus(id), 404);
    const unknown = await fetch(`${server.url}/api/collections/nothing/images/remove`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body,
    });
    assert.equal(unknown.status, 404);
  });
});

async function waitFor(condition: () => Promise<boolean>, timeout = 10_000) {
  const until = Date.now() + timeout;
  while (!(await condition())) {
    assert.ok(Date.now() < until, `not within ${timeout} ms: ${condition}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
