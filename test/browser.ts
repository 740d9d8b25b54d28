// Driving the page in Debian's chromium (playwright-core), shared by the browser tests.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { build } from 'vite';

export const CHROMIUM = process.env.RIS_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = join(import.meta.dirname, 'artifacts');
// CI installs chromium and sets RIS_REQUIRE_BROWSER, so there a missing browser fails instead of skipping.
export const skipWithoutBrowser =
  existsSync(CHROMIUM) || process.env.RIS_REQUIRE_BROWSER
    ? false
    : `needs chromium at ${CHROMIUM} (apt-get install chromium, or set RIS_CHROMIUM)`;

/** The page as users get it: built by Vite from web/, into `outDir`. */
export async function buildPage(outDir: string): Promise<void> {
  await build({
    configFile: join(import.meta.dirname, '..', 'web', 'vite.config.ts'),
    build: { outDir, emptyOutDir: true },
    logLevel: 'warn',
  });
}

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
    ],
  });
}

const pageErrors = new WeakMap<Page, string[]>();

/**
 * A fresh page at `url`; uncaught page errors, and requests to any origin but `allowed` (and blob: and
 * data:), fail the test in `closePage`.
 */
export async function newPage(
  browser: Browser,
  url: string,
  allowed: string[],
  viewport = { width: 1280, height: 900 },
): Promise<Page> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  pageErrors.set(page, errors);
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('request', (request) => {
    const target = request.url();
    if (![...allowed, 'blob:', 'data:'].some((origin) => target.startsWith(origin)))
      errors.push(`request to ${target}`);
  });
  await page.goto(url);
  return page;
}

export async function closePage(page: Page): Promise<void> {
  assert.deepEqual(pageErrors.get(page), [], 'no uncaught errors in the page, no requests elsewhere');
  await page.context().close();
}

const axeSource = readFile(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** WCAG 2.1 A/AA and best-practice failures that axe-core finds in the page as it is now. */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  // evaluate runs outside the page's Content-Security-Policy, which would refuse an injected script.
  await page.evaluate(await axeSource);
  return page.evaluate(async () => {
    const axe = (window as unknown as { axe: typeof import('axe-core') }).axe;
    const { violations } = await axe.run(document, {
      runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],
    });
    return violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  });
}
