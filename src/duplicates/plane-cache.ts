import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from '../ann/crc32.ts';
import { nodeFileStore } from '../node/file-store.ts';
import { PLANE_RECORD, readPlaneRecord, writePlaneRecord } from './plane-record.ts';
import type { ImagePlanes } from './planes.ts';

/**
 * The planes of images already decoded by an earlier look, kept in the collection's folder
 * (`duplicates-planes.bin`) by the content hash of each image: a later run, another threshold or a
 * restarted server reads them instead of decoding the images again. A cache only: derived from the files,
 * stamped with the planes' version, ignored and rewritten when it is damaged or from another version.
 *
 * Layout, little-endian: a 32-byte header (magic "RISPLANE", version, record count, record size, CRC-32
 * of the records, 8 reserved bytes), then fixed-size records: sha256 (32 bytes), then the planes' record
 * (plane-record.ts: width, height, chroma, the planes).
 */
export class PlaneCache {
  private readonly kept = new Map<string, ImagePlanes>();
  private readonly fresh = new Map<string, ImagePlanes>();
  private readonly used = new Set<string>();

  private constructor(private readonly file: string) {}

  /** The cache of a collection folder (empty when there is none, or it cannot be used). */
  static async open(dir: string): Promise<PlaneCache> {
    const cache = new PlaneCache(join(dir, FILE));
    const bytes = await readFile(cache.file).catch(() => undefined);
    if (bytes)
      for (const [sha, planes] of decode(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)))
        cache.kept.set(sha, planes);
    return cache;
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
   * Writes what was decoded this time with what was kept (atomically: temp file, fsync, rename). Entries
   * this run did not use are dropped once there are more than `limit` (images removed, or compared no
   * more). Nothing is written when nothing is new. A failed write only loses the cache.
   */
  async save(limit: number): Promise<void> {
    if (this.fresh.size === 0) return;
    let entries = [...this.kept, ...this.fresh];
    if (entries.length > limit) entries = entries.filter(([sha]) => this.used.has(sha));
    await nodeFileStore.write(this.file, encode(entries)).catch(() => undefined);
    for (const [sha, planes] of this.fresh) this.kept.set(sha, planes);
    this.fresh.clear();
  }
}

const FILE = 'duplicates-planes.bin';
const MAGIC = 'RISPLANE';
/** Bumped whenever planes.ts makes different planes. */
const VERSION = 1;
const HEADER = 32;
const RECORD = 32 + PLANE_RECORD;

function encode(entries: [string, ImagePlanes][]): Uint8Array {
  const bytes = new Uint8Array(HEADER + entries.length * RECORD);
  const view = new DataView(bytes.buffer);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, entries.length, true);
  view.setUint32(16, RECORD, true);
  for (const [i, [sha, planes]] of entries.entries()) {
    const at = HEADER + i * RECORD;
    bytes.set(Buffer.from(sha, 'hex'), at);
    writePlaneRecord(planes, bytes, at + 32);
  }
  view.setUint32(20, crc32(bytes.subarray(HEADER)), true);
  return bytes;
}

/** The entries of a cache file; none when it is not one, another version, or damaged. */
function decode(bytes: Uint8Array): [string, ImagePlanes][] {
  if (bytes.length < HEADER || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const count = view.getUint32(12, true);
  if (view.getUint32(8, true) !== VERSION || view.getUint32(16, true) !== RECORD) return [];
  if (bytes.length !== HEADER + count * RECORD || crc32(bytes.subarray(HEADER)) !== view.getUint32(20, true))
    return [];
  const out: [string, ImagePlanes][] = [];
  for (let i = 0; i < count; i++) {
    const at = HEADER + i * RECORD;
    out.push([Buffer.from(bytes.subarray(at, at + 32)).toString('hex'), readPlaneRecord(bytes, at + 32)]);
  }
  return out;
}
