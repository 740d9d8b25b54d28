// The web page in a real browser (Debian's chromium driven by playwright-core), over a real server with
// two small collections embedded by a tiny test model.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Locator, Page } from 'playwright-core';
import sharp from 'sharp';
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
import { writeClassFolders } from './fixtures/collection-images.ts';
import { tinyConfig, writeTinyModel } from './fixtures/tiny-models.ts';
import { listenOnLoopback } from './helpers.ts';

let dir: string;
let browser: Browser;
let server: { url: string; close: () => Promise<void> };
let imageServer: Server;
let imageBase: string;
const files: Record<string, Buffer> = {};

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'ris-web-'));
  const home = join(dir, 'home');
  const model = await writeTinyModel(
    dir,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'none' }),
  );
  await writeClassFolders(join(dir, 'colours'), 4, 6, 64, 1, 'colour');
  await writeClassFolders(join(dir, 'others'), 3, 5, 64, 5, 'other');
  for (const name of ['colours', 'others']) {
    const { collection } = await indexCollection(name, join(dir, name), { model, home });
    await collection.close();
  }
  const image = (name: string) => readFile(join(dir, 'colours', name));
  files.colour1 = await image('colour1/img000.jpg');
  files.colour2 = await image('colour2/img001.jpg');
  files.colour3 = await image('colour3/img002.jpg');
  // Left half like colour0, right half like colour3: a crop of either half finds that half's class.
  files.twoHalves = await sharp({ create: { width: 128, height: 64, channels: 3, background: '#000' } })
    .composite([
      { input: await image('colour0/img005.jpg'), left: 0, top: 0 },
      { input: await image('colour3/img005.jpg'), left: 64, top: 0 },
    ])
    .jpeg({ quality: 95 })
    .toBuffer();
  files.notAnImage = Buffer.from('these are notes, not a picture\n');

  // The page as users get it: built by Vite from web/, here into the test's folder.
  const webRoot = join(dir, 'web');
  await buildPage(webRoot);
  server = await listen({
    port: 0,
    collections: ['colours', 'others'],
    collectionOptions: { home },
    allowLoopbackUrls: true,
    webRoot,
  });

  imageServer = createServer((req, res) => {
    if (req.url === '/colour2.jpg')
      return res.writeHead(200, { 'content-type': 'image/jpeg' }).end(files.colour2);
    if (req.url === '/page.html') return res.writeHead(200, { 'content-type': 'text/html' }).end('<p>hi</p>');
    res.writeHead(404).end();
  });
  imageBase = await listenOnLoopback(imageServer);

  browser = await launchBrowser();
});

after(async () => {
  if (skip) return;
  await browser?.close();
  imageServer?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh page on the app, with its examples shown; uncaught page errors fail the test in `done`. */
async function openApp(viewport = { width: 1280, height: 900 }): Promise<Page> {
  // Nothing from a CDN or anywhere else: only this server, the test's image server, blobs and data URLs.
  const page = await newPage(browser, `${server.url}/`, [server.url, imageBase], viewport);
  await examples(page).first().waitFor();
  return page;
}

const done = closePage;

const examples = (page: Page) => page.getByRole('button', { name: /^Use example/ });
const pane = (page: Page, title: string) => page.getByRole('region', { name: title, exact: true });
const paneImage = (page: Page, title: string) => pane(page, title).getByRole('img');
const results = (page: Page) => page.locator('.result');
const resultLabels = (page: Page) => page.locator('.result .label').allTextContents();
const searchButton = (page: Page) => page.getByRole('button', { name: 'Search', exact: true });

/** Presses Search and waits for the new results. */
async function search(page: Page) {
  const serial = () => document.querySelector('.results')?.getAttribute('data-search') ?? null;
  const before = await page.evaluate(serial);
  await searchButton(page).click();
  await page.waitForFunction((previous) => {
    const element = document.querySelector('.results');
    return element?.getAttribute('data-search') !== previous && element?.ariaBusy === 'false';
  }, before);
}

async function upload(page: Page, name: string, bytes: Buffer, mimeType = 'image/jpeg') {
  await pane(page, 'To search').locator('input[type=file]').setInputFiles({ name, mimeType, buffer: bytes });
  await paneImage(page, 'To search').waitFor();
}

const resultIds = async (page: Page) =>
  (await page.locator('.result img').evaluateAll((images) => images.map((i) => (i as HTMLImageElement).src)))
    .map((src) => new URL(src).pathname.split('/').pop())
    .join(',');

/** Drags over part of an image: fractions of its width and height. */
async function dragOver(page: Page, target: Locator, from: [number, number], to: [number, number]) {
  const box = (await target.boundingBox())!;
  await page.mouse.move(box.x + box.width * from[0], box.y + box.height * from[1]);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * to[0], box.y + box.height * to[1], { steps: 5 });
  await page.mouse.up();
}

describe('web page', { skip }, () => {
  it('searches with a clicked example; Last searched shows it and the best result is itself', async () => {
    const page = await openApp();
    assert.equal(await examples(page).count(), 20);
    const example = examples(page).first();
    const name = (await example.getAttribute('aria-label'))!.replace('Use example ', '');
    await example.click();
    assert.match((await paneImage(page, 'To search').getAttribute('alt'))!, new RegExp(name));
    await search(page);
    assert.equal(await results(page).count(), 3, 'three results by default, as the reference');
    const [label, id] = name.split(' #') as [string, string];
    assert.equal((await resultLabels(page))[0], label);
    assert.match((await resultIds(page)).split(',')[0]!, new RegExp(`^${id}$`));
    assert.equal(await page.locator('.result .similarity strong').first().textContent(), '1.00');
    assert.match((await paneImage(page, 'Last searched').getAttribute('alt'))!, new RegExp(name));
    await done(page);
  });

  it('shows "more" examples without repeating any', async () => {
    const page = await openApp();
    const first = await examples(page).evaluateAll((b) => b.map((e) => e.getAttribute('aria-label')));
    await page.getByRole('button', { name: 'More examples' }).click();
    await page.waitForFunction(
      (old) => document.querySelector('[aria-label^="Use example"]')?.getAttribute('aria-label') !== old,
      first[0],
    );
    const second = await examples(page).evaluateAll((b) => b.map((e) => e.getAttribute('aria-label')));
    assert.equal(second.length, 4, '24 images: 20 on the first page, 4 on the second');
    for (const label of second) assert.ok(!first.includes(label), `${label} was already shown`);
    await done(page);
  });

  it('searches with an upload, a pasted image and a dropped image', async () => {
    const page = await openApp();
    await upload(page, 'mine.jpg', files.colour1!);
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour1', 'colour1', 'colour1']);

    const putByEvent = (type: 'paste' | 'drop', bytes: Buffer, name: string) =>
      page.evaluate(
        ({ type, data, name }) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([new Uint8Array(data)], name, { type: 'image/jpeg' }));
          if (type === 'paste')
            document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true }));
          else
            document
              .querySelector('.pane-frame')!
              .dispatchEvent(
                new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }),
              );
        },
        { type, data: [...bytes], name },
      );
    await putByEvent('paste', files.colour2!, 'pasted.jpg');
    await page.getByRole('img', { name: 'To search: pasted.jpg' }).waitFor();
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour2', 'colour2', 'colour2']);

    await putByEvent('drop', files.colour3!, 'dropped.jpg');
    await page.getByRole('img', { name: 'To search: dropped.jpg' }).waitFor();
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour3', 'colour3', 'colour3']);
    await done(page);
  });

  it('captures from the webcam and searches; the camera stops when off or hidden', async () => {
    const page = await openApp();
    // Keep every stream the page opens, to see whether its camera is still running.
    await page.evaluate(() => {
      const opened: MediaStream[] = [];
      (window as unknown as { opened: MediaStream[] }).opened = opened;
      const original = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      navigator.mediaDevices.getUserMedia = async (constraints) => {
        const stream = await original(constraints);
        opened.push(stream);
        return stream;
      };
    });
    const live = () =>
      page.evaluate(() =>
        (window as unknown as { opened: MediaStream[] }).opened.map((s) => s.getTracks()[0]!.readyState),
      );
    const webcam = page.getByRole('switch', { name: 'Use webcam' });
    await webcam.check();
    await page.getByRole('button', { name: 'Capture' }).waitFor();
    assert.deepEqual(await accessibilityViolations(page), [], 'with the camera on');
    await page.getByRole('button', { name: 'Capture' }).click({ timeout: 10_000 });
    await page.getByRole('img', { name: 'To search: webcam capture' }).waitFor();
    assert.equal(await webcam.isChecked(), false, 'a capture turns the camera off');
    assert.deepEqual(await live(), ['ended']);
    await search(page);
    assert.equal(await results(page).count(), 3);

    await webcam.check();
    await page.getByRole('button', { name: 'Capture' }).waitFor();
    await page.waitForFunction(() => (window as unknown as { opened: unknown[] }).opened.length === 2);
    const setHidden = (hidden: boolean) =>
      page.evaluate((hidden) => {
        Object.defineProperty(document, 'hidden', { value: hidden, configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
    await setHidden(true);
    assert.deepEqual(await live(), ['ended', 'ended'], 'a hidden page stops the camera');
    await setHidden(false);
    await page.waitForFunction(() => (window as unknown as { opened: unknown[] }).opened.length === 3);
    await webcam.uncheck();
    await page.waitForFunction(
      () =>
        (window as unknown as { opened: MediaStream[] }).opened[2]!.getTracks()[0]!.readyState === 'ended',
      undefined,
      { timeout: 5000 },
    );
    assert.deepEqual(await live(), ['ended', 'ended', 'ended'], 'the toggle stops the camera');
    await done(page);
  });

  it('searches by URL from a local server, and says when a URL cannot be used', async () => {
    const page = await openApp();
    await page.getByRole('tab', { name: 'Image URL' }).click();
    const field = page.getByRole('textbox', { name: 'Image URL' });
    const use = page.getByRole('button', { name: 'Use this URL' });

    await field.fill('ftp://example.com/a.jpg');
    await use.click();
    assert.match(
      (await page.locator('#image-url-error').textContent()) ?? '',
      /Only http:\/\/ and https:\/\//,
    );

    await field.fill(`${imageBase}/page.html`);
    await use.click();
    await searchButton(page).click();
    await page.getByRole('alert').waitFor();
    assert.match((await page.locator('#image-url-error').textContent())!, /not an image|image\/\*/i);
    assert.equal(await field.getAttribute('aria-invalid'), 'true');

    await field.fill(`${imageBase}/colour2.jpg`);
    await use.click();
    await page.getByRole('img', { name: `To search: ${imageBase}/colour2.jpg` }).waitFor();
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour2', 'colour2', 'colour2']);
    assert.equal(await page.locator('#image-url-error').count(), 0, 'the error goes once the URL works');
    assert.equal(await page.getByRole('alert').count(), 0);
    await done(page);
  });

  it('searches with the crop: each half of an image finds its own class', async () => {
    const page = await openApp();
    await upload(page, 'halves.jpg', files.twoHalves!);
    await search(page);
    const whole = await resultIds(page);

    const image = paneImage(page, 'To search');
    await page.getByRole('button', { name: 'Crop To search', exact: true }).click();
    await dragOver(page, image, [0.02, 0.02], [0.48, 0.98]);
    await page.getByRole('button', { name: 'Crop To search', exact: true }).click();
    assert.match((await image.getAttribute('alt'))!, /\(cropped\)/);
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour0', 'colour0', 'colour0']);
    assert.notEqual(await resultIds(page), whole);

    // The keyboard moves the crop: focus the box, then arrow keys; here to the right half.
    await page.getByRole('button', { name: 'Crop To search', exact: true }).click();
    const cropBox = pane(page, 'To search').getByRole('group', { name: /^Crop area/ });
    await cropBox.focus();
    for (let i = 0; i < 40; i++) await page.keyboard.press('ArrowRight');
    assert.deepEqual(await accessibilityViolations(page), [], 'while cropping');
    assert.match((await cropBox.getAttribute('aria-label'))!, /at 6\d, /);
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour3', 'colour3', 'colour3']);

    await page.getByRole('button', { name: 'Uncrop To search' }).click();
    await search(page);
    assert.equal(await resultIds(page), whole, 'without the crop, the whole image again');
    await done(page);
  });

  it('copies To search → Last searched and back', async () => {
    const page = await openApp();
    await upload(page, 'first.jpg', files.colour1!);
    await search(page);
    await upload(page, 'second.jpg', files.colour2!);
    const copyRight = page.getByRole('button', { name: 'Copy To search → Last searched' });
    const copyLeft = page.getByRole('button', { name: 'Copy Last searched → To search' });

    await copyRight.click();
    assert.equal(
      await paneImage(page, 'Last searched').getAttribute('src'),
      await paneImage(page, 'To search').getAttribute('src'),
    );
    assert.match((await paneImage(page, 'Last searched').getAttribute('alt'))!, /second\.jpg/);

    await upload(page, 'third.jpg', files.colour3!);
    await copyLeft.click();
    assert.match((await paneImage(page, 'To search').getAttribute('alt'))!, /second\.jpg/);
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour2', 'colour2', 'colour2']);
    await done(page);
  });

  it('searches again with a result', async () => {
    const page = await openApp();
    await upload(page, 'mine.jpg', files.colour1!);
    await search(page);
    const second = (await resultIds(page)).split(',')[1]!;
    await results(page).nth(1).getByRole('button', { name: 'Search with this image' }).click();
    await page.waitForFunction((id) => {
      const src = document.querySelector('.result img')?.getAttribute('src');
      return src ? new URL(src, location.href).pathname.endsWith(`/${id}`) : false;
    }, second);
    assert.match(
      (await paneImage(page, 'To search').getAttribute('alt'))!,
      new RegExp(`#${second} from colours`),
    );
    assert.equal(await page.locator('.result .similarity strong').first().textContent(), '1.00');

    // A result's image dragged onto To search is that collection image, not a URL for the server to fetch.
    const third = (await resultIds(page)).split(',')[2]!;
    await page.evaluate((id) => {
      const transfer = new DataTransfer();
      transfer.setData('text/uri-list', `${location.origin}/api/collections/colours/images/${id}`);
      const drop = new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true });
      document.querySelector('.pane-frame')!.dispatchEvent(drop);
    }, third);
    await page.getByRole('img', { name: `To search: image #${third} from colours` }).waitFor();
    await search(page);
    assert.equal((await resultIds(page)).split(',')[0], third);
    await done(page);
  });

  it('shows as many results as the slider says, up to 20 with the setting', async () => {
    const page = await openApp();
    await upload(page, 'mine.jpg', files.colour1!);
    await search(page);
    const slider = page.getByRole('slider', { name: 'Number of results' });
    assert.equal(await slider.getAttribute('max'), '5');
    await slider.focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    assert.equal(await results(page).count(), 5);
    await page.keyboard.press('Home');
    assert.equal(await results(page).count(), 1);

    await page.getByRole('checkbox', { name: 'Allow up to 20 results' }).check();
    assert.equal(await slider.getAttribute('max'), '20');
    await slider.fill('12');
    await page.locator('.result').nth(11).waitFor();
    assert.equal(await results(page).count(), 12);
    assert.deepEqual((await resultLabels(page)).slice(0, 6), Array(6).fill('colour1'));
    await done(page);
  });

  it('switching collection changes the examples, the gallery and the results', async () => {
    const page = await openApp();
    await upload(page, 'mine.jpg', files.colour1!);
    await search(page);
    const select = page.getByRole('combobox', { name: 'Collection' });
    assert.deepEqual(await select.locator('option').allTextContents(), ['colours', 'others']);
    await select.selectOption('others');
    await page
      .getByRole('button', { name: /^Use example other/ })
      .first()
      .waitFor();
    await page.waitForFunction(() =>
      document.querySelector('.results p')?.textContent?.includes('in others'),
    );
    for (const label of await resultLabels(page)) assert.match(label, /^other\d$/);
    assert.equal(await examples(page).count(), 15, 'the others collection has 15 images');
    await page
      .getByRole('button', { name: /^Enlarge other/ })
      .first()
      .waitFor();
    assert.match(page.url(), /collection=others/);
    await done(page);
  });

  it('shows an error for a file that is not an image, and the next search works', async () => {
    const page = await openApp();
    await pane(page, 'To search')
      .locator('input[type=file]')
      .setInputFiles({ name: 'notes.jpg', mimeType: 'image/jpeg', buffer: files.notAnImage! });
    await pane(page, 'To search')
      .getByText(/No preview/)
      .waitFor();
    await searchButton(page).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match((await alert.textContent())!, /The search failed: .*(not an image|decode|unsupported)/i);
    assert.equal(await results(page).count(), 0);

    await upload(page, 'good.jpg', files.colour3!);
    await search(page);
    assert.deepEqual(await resultLabels(page), ['colour3', 'colour3', 'colour3']);
    assert.equal(await alert.count(), 0, 'a good search clears the error');
    await done(page);
  });

  it('enlarges a gallery image with a download link; Escape closes it', async () => {
    const page = await openApp();
    const gallery = page.getByRole('region', { name: 'Gallery' });
    const first = gallery.getByRole('button', { name: /^Enlarge/ }).first();
    const name = (await first.getAttribute('aria-label'))!.replace('Enlarge ', '');
    await first.click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match((await dialog.getByRole('heading').textContent())!, new RegExp(name.split(' #')[0]!));
    assert.deepEqual(await accessibilityViolations(page), [], 'with the dialog open');
    const download = dialog.getByRole('link', { name: 'Download' });
    const href = (await download.getAttribute('href'))!;
    assert.equal(await download.getAttribute('download'), '');
    const response = await page.request.get(new URL(href, server.url).toString());
    assert.equal(response.headers()['content-type'], 'image/jpeg');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    await done(page);
  });

  it('works by keyboard, passes axe-core in both themes, and fits a narrow screen', async () => {
    const page = await openApp({ width: 390, height: 844 });
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll('button, input:not([type=file]), select, a[href], [tabindex="0"]')]
        .filter((element) => {
          const labelled = (element as HTMLInputElement).labels?.length;
          const text = element.getAttribute('aria-label') ?? element.textContent ?? '';
          return !labelled && text.trim() === '';
        })
        .map((element) => element.outerHTML.slice(0, 80)),
    );
    assert.deepEqual(unnamed, [], 'controls without an accessible name');

    // Tab to the first example and press Enter, then to Search.
    await page.getByRole('button', { name: 'Search', exact: true }).focus();
    await examples(page).first().focus();
    await page.keyboard.press('Enter');
    await paneImage(page, 'To search').waitFor();
    await searchButton(page).focus();
    await page.keyboard.press('Enter');
    await results(page).first().waitFor();
    const overflow = await page.evaluate(
      () => document.documentElement.scrollWidth - document.documentElement.clientWidth,
    );
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 390px screen`);

    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    assert.deepEqual(await accessibilityViolations(page), [], 'dark theme, with results');
    await page.getByRole('button', { name: 'Light theme' }).click();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light');
    assert.deepEqual(await accessibilityViolations(page), [], 'light theme, with results');
    await page.reload();
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'light', 'remembered');
    await done(page);
  });

  it('saves a screenshot of the page with results (test/artifacts/web-results.png)', async () => {
    const page = await openApp({ width: 1280, height: 1000 });
    await examples(page).nth(3).click();
    await page.getByRole('checkbox', { name: 'Allow up to 20 results' }).check();
    await page.getByRole('slider', { name: 'Number of results' }).fill('6');
    await search(page);
    await page.getByRole('button', { name: 'Crop Last searched', exact: true }).waitFor();
    await page.waitForFunction(() =>
      [...document.querySelectorAll('img')].every((img) => img.complete && img.naturalWidth > 0),
    );
    await mkdir(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, 'web-results.png');
    await writeFile(file, await page.screenshot({ fullPage: true }));
    assert.ok((await readFile(file)).length > 10_000);
    await done(page);
  });
});
