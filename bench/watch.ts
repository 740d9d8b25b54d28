/**
 * `npm run bench:watch`: folder watching as a user meets it, through real `ris serve --watch` processes.
 *
 * 1. Latency (mobilenetv2-int8, 500 Caltech101 images): 100 changes made one after the other (new files,
 *    files overwritten with other pictures, deleted files, files renamed into another folder), each timed
 *    from the change on disk until a search over HTTP answers it (the new image found, the deleted one
 *    not, the renamed one under its new label): p50, p95 and max, against the 5 s target, beside the same
 *    wait for a `ris add` of one new image (the way without watching) in the same run; the server's own
 *    time per batch. Then a burst: 200 images copied into a new folder at once, timed until all are stored
 *    and the last is answered, beside a `ris add` of 200 other images timed the same way.
 * 2. Scale (a tiny generated model, 4 dimensions): 100,000 small generated JPEGs in 5,000 folders, indexed
 *    once with `ris index`; then `ris serve --watch` started over them: time until it listens, until its
 *    watches are in place and until its first full rescan is done; its watches (its own count and the
 *    kernel's, from /proc), and its RSS beside `ris serve` without --watch over the same collection; then
 *    new files at that scale, timed as in 1, and the server's time per batch beside its full rescan.
 *
 * Options: --changes N (100), --burst N (200), --files N (100000), --folders N (5000),
 * --only latency|scale.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { Random } from '../src/ann/random.ts';
import { MODEL_REGISTRY } from '../src/index.ts';
import { tinyConfig, writeTinyModel } from '../test/fixtures/tiny-models.ts';
import { caltechFiles, shared } from './lib.ts';

const arg = (name: string, fallback: number) =>
  process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback;
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const CHANGES = arg('--changes', 100);
const BURST = arg('--burst', 200);
const FILES = arg('--files', 100_000);
const FOLDERS = arg('--folders', 5_000);
const TOKEN = 'bench-watch-token-0123456789';
const bin = join(import.meta.dirname, '..', 'bin', 'ris.js');

if (!existsSync(join(shared, 'caltech101'))) {
  console.log('bench:watch needs ../shared/data/caltech101; skipped');
  process.exit(0);
}
const work = await mkdtemp(join(tmpdir(), 'ris-bench-watch-'));
const xdgCache = join(work, 'xdg');
const entry = MODEL_REGISTRY['mobilenetv2-int8']!;
await mkdir(join(xdgCache, 'ris', 'models'), { recursive: true });
await copyFile(join(shared, 'models', entry.fileName), join(xdgCache, 'ris', 'models', entry.fileName));

interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function ris(home: string, args: string[]): Proc {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { ...process.env, RIS_HOME: home, XDG_CACHE_HOME: xdgCache, RIS_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

async function run(home: string, args: string[]): Promise<void> {
  const p = ris(home, args);
  if ((await p.exited) !== 0) throw new Error(`ris ${args.join(' ')} failed: ${p.stderr()}`);
}

async function until<T>(what: string, check: () => T | undefined | null | false, ms = 600_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = check();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `ris serve` over one collection on a port of its own; resolves once it listens. */
async function serve(home: string, name: string, watch: boolean) {
  const started = performance.now();
  const p = ris(home, ['serve', '--port', '0', '--collections', name, ...(watch ? ['--watch'] : [])]);
  const url = await until(
    'the server to listen',
    () => /API: (http:\S+)\/api\/collections/.exec(p.stdout())?.[1],
  );
  return { ...p, url, started, listening: performance.now() };
}

interface Hit {
  id: number;
  labels: string[];
  similarity: number;
}

async function search(url: string, name: string, bytes: Buffer, k: number): Promise<Hit[]> {
  const body = new FormData();
  body.append('image', new Blob([new Uint8Array(bytes)]), 'q.jpg');
  body.append('k', String(k));
  const response = await fetch(`${url}/api/collections/${name}/search`, { method: 'POST', body });
  if (!response.ok) return [];
  return ((await response.json()) as { results: Hit[] }).results;
}

/** Milliseconds from now until `answered` holds for a search by `bytes` (polled as fast as searches go). */
async function waitAnswered(
  url: string,
  name: string,
  bytes: Buffer,
  answered: (hits: Hit[]) => boolean,
  k = 5,
  since = performance.now(),
): Promise<number> {
  for (;;) {
    if (answered(await search(url, name, bytes, k))) return performance.now() - since;
    if (performance.now() - since > 60_000) return Number.POSITIVE_INFINITY;
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** The server's time for each batch a change caused, from its log lines ("name: … (change, 12 ms)"). */
const batchMs = (stderr: string, name: string) =>
  Array.from(stderr.matchAll(new RegExp(`^${name}: .* \\(change, (\\d+) ms\\)$`, 'gm')), (m) => Number(m[1]));

const stats = (ms: number[]) =>
  `p50 ${(percentile(ms, 0.5) / 1000).toFixed(2)} s, p95 ${(percentile(ms, 0.95) / 1000).toFixed(2)} s, max ${(Math.max(...ms) / 1000).toFixed(2)} s`;
const statsMs = (ms: number[]) =>
  `p50 ${percentile(ms, 0.5)} ms, p95 ${percentile(ms, 0.95)} ms, max ${Math.max(...ms)} ms`;

function dbOf(home: string, name: string) {
  return new Database(join(home, 'collections', name, 'metadata.db'), { readonly: true });
}

/** The process's resident memory, in MB. */
async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

/** The inotify watches a process holds, as the kernel counts them. */
async function kernelWatches(pid: number): Promise<number> {
  let count = 0;
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (target !== 'anon_inode:inotify') continue;
    const info = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    count += info.split('\n').filter((line) => line.startsWith('inotify wd:')).length;
  }
  return count;
}

const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  console.log(line);
};

// 1. Latency.
if (only !== 'scale') {
  const home = join(work, 'home-latency');
  const root = join(work, 'photos');
  const all = await caltechFiles(9144);
  const base = await caltechFiles(500);
  const taken = new Set(base);
  const others = all.filter((f) => !taken.has(f));
  const spare = Array.from(new Random(5).sample(others.length, 200 + 2 * BURST), (i) => others[i]!);
  for (const file of base) {
    await mkdir(join(root, basename(dirname(file))), { recursive: true });
    await copyFile(file, join(root, basename(dirname(file)), basename(file)));
  }
  await run(home, ['index', root, '--collection', 'photos', '--model', 'mobilenetv2-int8']);
  const server = await serve(home, 'photos', true);
  await until('the first rescan', () => /photos: rescanned in/.test(server.stderr()));
  const db = dbOf(home, 'photos');
  const maxId = () => Number(db.prepare('SELECT max(id) FROM images').pluck().get() ?? 0);
  const random = new Random(11);
  const pick = () => {
    const rows = db.prepare('SELECT id, path FROM images').all() as { id: number; path: string }[];
    return rows[random.int(rows.length)]!;
  };
  const folders = (await readdir(root)).sort();
  const newImage = (hits: Hit[], before: number) => hits.some((h) => h.id > before && h.similarity > 0.999);
  const kinds = ['new', 'overwritten', 'deleted', 'renamed'] as const;
  const latencies: Record<(typeof kinds)[number], number[]> = {
    new: [],
    overwritten: [],
    deleted: [],
    renamed: [],
  };
  for (let i = 0; i < CHANGES; i++) {
    const kind = kinds[i % 4]!;
    const before = maxId();
    if (kind === 'new') {
      const source = spare.pop()!;
      const bytes = await readFile(source);
      await writeFile(join(root, folders[random.int(folders.length)]!, `new ${i}.jpg`), bytes);
      latencies.new.push(await waitAnswered(server.url, 'photos', bytes, (h) => newImage(h, before)));
    } else if (kind === 'overwritten') {
      const target = pick();
      const bytes = await readFile(spare.pop()!);
      await writeFile(join(root, target.path), bytes);
      latencies.overwritten.push(await waitAnswered(server.url, 'photos', bytes, (h) => newImage(h, before)));
    } else if (kind === 'deleted') {
      const target = pick();
      const bytes = await readFile(join(root, target.path));
      await rm(join(root, target.path));
      latencies.deleted.push(
        await waitAnswered(server.url, 'photos', bytes, (h) => !h.some((hit) => hit.id === target.id)),
      );
    } else {
      const target = pick();
      const bytes = await readFile(join(root, target.path));
      const label =
        folders.find((f) => f !== target.path.split('/')[0] && random.int(3) === 0) ?? folders[0]!;
      await rename(join(root, target.path), join(root, label, `renamed ${i}.jpg`));
      latencies.renamed.push(
        await waitAnswered(server.url, 'photos', bytes, (h) =>
          h.some((hit) => hit.id === target.id && hit.labels[0] === label),
        ),
      );
    }
  }
  // The way without watching: `ris add` of one new image, from its start until the server answers it.
  const viaAdd: number[] = [];
  const outside = join(work, 'outside');
  await mkdir(outside);
  for (let i = 0; i < 5; i++) {
    const source = spare.pop()!;
    const file = join(outside, `added ${i}.jpg`);
    await copyFile(source, file);
    const bytes = await readFile(file);
    const before = maxId();
    const since = performance.now();
    await run(home, ['add', 'photos', file]);
    viaAdd.push(await waitAnswered(server.url, 'photos', bytes, (h) => newImage(h, before), 5, since));
  }
  const changeBatches = batchMs(server.stderr(), 'photos');
  // A burst: BURST images copied into a new folder at once, until all are stored and the last answers.
  const burstFiles = spare.splice(0, BURST);
  const burstAt = performance.now();
  const logBefore = server.stderr().length;
  const before = maxId();
  await mkdir(join(root, 'burst'));
  for (const [i, source] of burstFiles.entries())
    await copyFile(source, join(root, 'burst', `burst ${i}.jpg`));
  const copied = performance.now() - burstAt;
  const count = db.prepare("SELECT count(*) FROM images WHERE path LIKE 'burst/%'").pluck();
  await until('the burst to be stored', () => Number(count.get()) === BURST, 300_000);
  const lastBytes = await readFile(burstFiles.at(-1)!);
  const burstMs = await waitAnswered(server.url, 'photos', lastBytes, (h) => newImage(h, before), 5, burstAt);
  const burstBatches = batchMs(server.stderr().slice(logBefore), 'photos');
  // The same count through `ris add` (from outside the folder), timed the same way.
  const peerDir = join(work, 'burst-add');
  const peerFiles = spare.splice(0, BURST);
  await mkdir(peerDir);
  for (const [i, source] of peerFiles.entries()) await copyFile(source, join(peerDir, `add ${i}.jpg`));
  const peerBefore = maxId();
  const peerAt = performance.now();
  await run(home, ['add', 'photos', peerDir]);
  const peerLast = await readFile(join(peerDir, `add ${BURST - 1}.jpg`));
  const addMs = await waitAnswered(server.url, 'photos', peerLast, (h) => newImage(h, peerBefore), 5, peerAt);
  db.close();
  server.child.kill('SIGINT');
  await server.exited;
  const every = Object.values(latencies).flat();
  say(`## watched changes (mobilenetv2-int8, 500 Caltech101 images, ris serve --watch)`);
  say(
    `${every.length} changes, change on disk → answered by search: ${stats(every)} (target p95 ≤ 5 s: ${(percentile(every, 0.95) / 5000).toFixed(2)}× the target)`,
  );
  for (const kind of kinds) say(`  ${kind.padEnd(12)} ${stats(latencies[kind])}`);
  say(
    `ris add of one image, start → answered by the server: ${stats(viaAdd)}; watch p50 / ris add p50 = ${(percentile(every, 0.5) / percentile(viaAdd, 0.5)).toFixed(2)}`,
  );
  say(
    `the server's time per batch of those changes: ${statsMs(changeBatches)} (${changeBatches.length} batches)`,
  );
  say(
    `burst of ${BURST} images copied into a new folder (copying took ${(copied / 1000).toFixed(1)} s): all stored and the last answered ` +
      `${(burstMs / 1000).toFixed(1)} s after the first copy began, in ${burstBatches.length} batch${burstBatches.length === 1 ? '' : 'es'}; ris add of ${BURST} other images, ` +
      `start → the last answered: ${(addMs / 1000).toFixed(1)} s; watch / ris add = ${(burstMs / addMs).toFixed(2)}`,
  );
}

// 2. Scale.
if (only !== 'latency') {
  const home = join(work, 'home-scale');
  const root = join(work, 'tree');
  const model = await writeTinyModel(
    work,
    'tiny',
    'float',
    tinyConfig({ tensor: 'features', pooling: 'avg' }),
  );
  const tops = Math.max(1, Math.round(Math.sqrt(FOLDERS / 2)));
  const perTop = Math.ceil(FOLDERS / tops);
  const perFolder = Math.ceil(FILES / FOLDERS);
  const random = new Random(3);
  const jpeg = (seed: number) => {
    const raw = Buffer.alloc(24 * 24 * 3);
    const r = new Random(seed);
    for (let i = 0; i < raw.length; i++) raw[i] = r.int(256);
    return sharp(raw, { raw: { width: 24, height: 24, channels: 3 } })
      .jpeg({ quality: 80 })
      .toBuffer();
  };
  let started = performance.now();
  const leaves: string[] = [];
  for (let t = 0; t < tops && leaves.length < FOLDERS; t++)
    for (let l = 0; l < perTop && leaves.length < FOLDERS; l++)
      leaves.push(join(root, `t${t}`, `folder ${l}`));
  let made = 0;
  for (const leaf of leaves) {
    await mkdir(leaf, { recursive: true });
    const count = Math.min(perFolder, FILES - made);
    const files = await Promise.all(Array.from({ length: count }, (_, i) => jpeg(made + i)));
    await Promise.all(files.map((bytes, i) => writeFile(join(leaf, `image ${i}.jpg`), bytes)));
    made += count;
  }
  const generated = (performance.now() - started) / 1000;
  started = performance.now();
  await run(home, ['index', root, '--collection', 'tree', '--model', model, '--index', 'flat']);
  const indexed = (performance.now() - started) / 1000;
  const folderCount = 1 + tops + leaves.length;
  say(
    `## ${made.toLocaleString('en')} files in ${folderCount.toLocaleString('en')} folders (tiny model, 4 dimensions, flat index)`,
  );
  say(`generated in ${generated.toFixed(0)} s; ris index (embed all, first scan) ${indexed.toFixed(0)} s`);

  // Without watching, for the memory it takes.
  const plain = await serve(home, 'tree', false);
  await new Promise((r) => setTimeout(r, 2_000));
  const plainRss = await rssMb(plain.child.pid!);
  const plainListen = (plain.listening - plain.started) / 1000;
  plain.child.kill('SIGINT');
  await plain.exited;

  const watched = await serve(home, 'tree', true);
  const watching = await until('the watches', () => /watching tree: (\d+) folders/.exec(watched.stderr()));
  const watchesAt = performance.now();
  const rescanned = await until('the first rescan', () =>
    /tree: rescanned in ([\d.]+) s: (.*)/.exec(watched.stderr()),
  );
  const scannedAt = performance.now();
  const pid = watched.child.pid!;
  const watchedRss = await rssMb(pid);
  const kernel = await kernelWatches(pid);
  say(
    `ris serve --watch: listening ${((watched.listening - watched.started) / 1000).toFixed(1)} s after its start ` +
      `(without --watch: ${plainListen.toFixed(1)} s), watches in place at ${((watchesAt - watched.started) / 1000).toFixed(1)} s, ` +
      `first full rescan done at ${((scannedAt - watched.started) / 1000).toFixed(1)} s (the rescan itself ${rescanned[1]} s: ${rescanned[2]})`,
  );
  say(
    `watches: ${watching[1]} (the kernel counts ${kernel}; fs.inotify.max_user_watches here ${(await readFile('/proc/sys/fs/inotify/max_user_watches', 'utf8')).trim()}, 8,192 on older kernels)`,
  );
  say(
    `RSS after the first rescan: ${watchedRss.toFixed(0)} MB with --watch, ${plainRss.toFixed(0)} MB without (${(watchedRss / plainRss).toFixed(2)}×)`,
  );

  // New files at this scale.
  const db = dbOf(home, 'tree');
  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) {
    const before = Number(db.prepare('SELECT max(id) FROM images').pluck().get());
    const bytes = await jpeg(10_000_000 + i);
    await writeFile(join(leaves[random.int(leaves.length)]!, `new ${i}.jpg`), bytes);
    latencies.push(
      await waitAnswered(
        watched.url,
        'tree',
        bytes,
        (h) => h.some((hit) => hit.id > before && hit.similarity > 0.99999),
        10,
      ),
    );
  }
  db.close();
  const laterRss = await rssMb(pid);
  const scaleBatches = batchMs(watched.stderr(), 'tree');
  say(`20 new files at this scale, change on disk → answered by search: ${stats(latencies)}`);
  say(
    `the server's time per batch at this scale: ${statsMs(scaleBatches)} (${scaleBatches.length} batches); ` +
      `p50 / the full rescan at start = ${(percentile(scaleBatches, 0.5) / (Number(rescanned[1]) * 1000)).toFixed(4)}`,
  );
  say(
    `RSS with --watch after those changes: ${laterRss.toFixed(0)} MB (${(laterRss / plainRss).toFixed(2)}× without)`,
  );
  watched.child.kill('SIGINT');
  await watched.exited;
}

await rm(work, { recursive: true, force: true });
