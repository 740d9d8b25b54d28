import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, open, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { crc32 } from '../ann/crc32.ts';
import { nodeFileStore } from '../node/file-store.ts';
import { PLANE_RECORD, readPlaneRecord, writePlaneRecord } from './plane-record.ts';
import type { ImagePlanes } from './planes.ts';

/**
 * The planes of a collection's images (what the duplicates' second look compares), kept in the
 * collection's folder (`duplicates-planes.bin`) by the content hash of each image. A local collection
 * appends the planes of the images it adds (it has their bytes at hand, so a duplicates search right after
 * indexing decodes nothing); a duplicates search adds those it had to decode and compacts the file. A
 * cache only: derived from the files, stamped with the planes' version, and what is damaged in it is
 * skipped and rewritten.
 *
 * Layout, little-endian: a 32-byte header (magic "RISPLANE", version, record size, 20 reserved bytes), then
 * fixed-size records appended one after another: CRC-32 of the rest of the record, 4 reserved bytes,
 * sha256 (32 bytes), then the planes' record (plane-record.ts: width, height, chroma, the planes). The file
 * is created with its header in one step (linked into place), and records are appended in one write each
 * batch (O_APPEND: two processes adding at once do not interleave), so a kill leaves at worst a torn last
 * record, which its CRC refuses; a damaged record is skipped alone.
 */
export class PlaneCache {
  private readonly kept = new Map<string, ImagePlanes>();
  private readonly fresh = new Map<string, ImagePlanes>();
  private readonly used = new Set<string>();
  /** Bytes of the file read at open (records appended after them are picked up by save). */
  private readLength = 0;
  /** The file held damaged records, another version's, or the same image more than once. */
  private untidy = false;

  private constructor(private readonly file: string) {}

  /** The cache of a collection folder (empty when there is none, or it cannot be used). */
  static async open(dir: string): Promise<PlaneCache> {
    const cache = new PlaneCache(join(dir, FILE));
    const bytes = await readFile(cache.file).catch(() => undefined);
    if (bytes) {
      cache.readLength = bytes.length;
      const { entries, damaged } = decode(bytes);
      cache.untidy = damaged;
      for (const [sha, planes] of entries) {
        if (cache.kept.has(sha)) cache.untidy = true;
        cache.kept.set(sha, planes);
      }
    }
    return cache;
  }

  /**
   * Adds the planes of images to the cache of a collection folder, in one append. Best effort: a cache
   * that cannot be written only means those images are decoded when a duplicates search needs them.
   */
  static async append(dir: string, entries: [sha256: string, planes: ImagePlanes][]): Promise<void> {
    if (entries.length === 0) return;
    const file = join(dir, FILE);
    try {
      await createWithHeader(file);
      // O_NOFOLLOW: a link planted in the collection's folder is not written through.
      const handle = await open(file, constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW);
      try {
        const { size } = await handle.stat();
        const header = new Uint8Array(HEADER);
        if (size >= HEADER) await handle.read(header, 0, HEADER, 0);
        // A file of another version, or with a torn record at its end (a kill mid-append): records appended
        // after it could not be read, so leave it to the next duplicates search, which rewrites it.
        if (!validHeader(header) || (size - HEADER) % RECORD !== 0) return;
        await handle.write(encodeRecords(entries));
      } finally {
        await handle.close();
      }
    } catch {
      // A read-only folder, a full disk, a link: the cache stays as it was.
    }
  }

  get(sha256: string): ImagePlanes | undefined {
    const found = this.kept.get(sha256) ?? this.fresh.get(sha256);
    if (found) this.used.add(sha256);
    return found;
  }

  set(sha256: string, planes: ImagePlanes): void {
    this.fresh.set(sha256, planes);
    this.used.add(sha256);
  }

  /**
   * Writes what was decoded this time with what was kept and what others appended meanwhile, atomically
   * (temp file, fsync, rename). Entries this run did not use are dropped once there are more than `limit`
   * (images removed, or compared no more). Nothing is written when nothing is new, nothing is damaged and
   * the file is within the limit. A failed write only loses the cache.
   */
  async save(limit: number): Promise<void> {
    if (this.fresh.size === 0 && !this.untidy && this.kept.size <= limit) return;
    const now = await readFile(this.file).catch(() => undefined);
    if (now && now.length > this.readLength && this.readLength >= HEADER) {
      // Appended since open by a process adding images: keep those too.
      const since = decode(concat(headerBytes(), now.subarray(this.readLength)));
      for (const [sha, planes] of since.entries) if (!this.kept.has(sha)) this.kept.set(sha, planes);
    }
    const merged = new Map([...this.kept, ...this.fresh]);
    let entries = [...merged];
    if (entries.length > limit) entries = entries.filter(([sha]) => this.used.has(sha));
    const bytes = concat(headerBytes(), encodeRecords(entries));
    await nodeFileStore.write(this.file, bytes).catch(() => undefined);
    for (const [sha, planes] of this.fresh) this.kept.set(sha, planes);
    this.fresh.clear();
    this.readLength = bytes.length;
    this.untidy = false;
  }
}

const FILE = 'duplicates-planes.bin';
const MAGIC = 'RISPLANE';
/** Bumped whenever planes.ts makes different planes or the layout changes (1: one CRC over all records). */
const VERSION = 2;
const HEADER = 32;
const RECORD = 8 + 32 + PLANE_RECORD;

function headerBytes(): Uint8Array {
  const bytes = new Uint8Array(HEADER);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, RECORD, true);
  return bytes;
}

function validHeader(bytes: Uint8Array): boolean {
  if (bytes.length < HEADER || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  return view.getUint32(8, true) === VERSION && view.getUint32(12, true) === RECORD;
}

function encodeRecords(entries: [string, ImagePlanes][]): Uint8Array {
  const bytes = new Uint8Array(entries.length * RECORD);
  const view = new DataView(bytes.buffer);
  for (const [i, [sha, planes]] of entries.entries()) {
    const at = i * RECORD;
    bytes.set(Buffer.from(sha, 'hex'), at + 8);
    writePlaneRecord(planes, bytes, at + 40);
    view.setUint32(at, crc32(bytes.subarray(at + 4, at + RECORD)), true);
  }
  return bytes;
}

/**
 * The entries of a cache file, in file order, but for damaged records and a torn end (`damaged`: there
 * was one, or the file is not a cache of this version).
 */
function decode(bytes: Uint8Array): { entries: [string, ImagePlanes][]; damaged: boolean } {
  if (!validHeader(bytes)) return { entries: [], damaged: true };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const entries: [string, ImagePlanes][] = [];
  let damaged = false;
  for (let at = HEADER; at < bytes.length; at += RECORD) {
    if (at + RECORD > bytes.length) return { entries, damaged: true }; // torn at the end
    if (crc32(bytes.subarray(at + 4, at + RECORD)) !== view.getUint32(at, true)) {
      damaged = true; // records are fixed-size: the next one starts where it always would
      continue;
    }
    entries.push([
      Buffer.from(bytes.subarray(at + 8, at + 40)).toString('hex'),
      readPlaneRecord(bytes, at + 40),
    ]);
  }
  return { entries, damaged };
}

/**
 * Creates the file, header and all, unless it exists: written beside it and linked into place, so two
 * processes adding at once never both write a header into one file.
 */
async function createWithHeader(file: string): Promise<void> {
  if (
    await lstat(file).then(
      () => true,
      () => false,
    )
  )
    return;
  // Named as the collection's other temp files, which its next open removes if a kill leaves one.
  const temp = join(dirname(file), `.${randomBytes(6).toString('hex')}.tmp`);
  await writeFile(temp, headerBytes(), { flag: 'wx' });
  try {
    await link(temp, file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  } finally {
    await rm(temp, { force: true });
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
