import { FileFormatError } from '../errors.ts';
import { crc32, crc32Combine } from './crc32.ts';
import { DISTANCE_TYPES, type DistanceType } from './metric.ts';
import type { RangedFile, StreamedFile } from './storage.ts';

/**
 * The index file: a fixed 128-byte header, a table of sections, then the sections, each aligned to
 * 64 bytes so typed arrays can view them in place. Little-endian throughout, written through DataView.
 *
 *   0  magic "RISINDEX"          64  file length (u64)
 *   8  format version (u32)      72  reserved for the file's owner (src/ann neither writes nor reads it;
 *  12  header fields: 12 × u32       collections stamp their data generation there), covered by the CRCs
 *  60  number of sections       116  version 2: CRC-32 of the resident part (below); version 1: owner's
 *                               120  CRC-32 of the whole file, this field read as zero
 *                               124  header size (128)
 *
 * Section table entry (32 bytes): tag (4 ASCII bytes), element type, offset (u64), byte length (u64),
 * then in version 2 flags (u32; bit 0: read on demand) and the CRC-32 of the section's bytes.
 *
 * Version 2 adds sections read on demand: an index that has them (full vectors kept only for re-ranking,
 * say) leaves them on disk and reads a row at a time. They come after every other section; the header,
 * the table and the other sections form the resident part, whose own CRC (at 116, read with 116–124 as
 * zero) is all `loadIndex` must read to check them, and each on-demand section has its own CRC in its
 * table entry. A file without such sections is written as version 1, byte for byte as before.
 *
 * The frame (magic, version, file length, whole-file CRC and where they sit) is the same in every
 * version, so a file of a newer version can be verified before ris says "upgrade": a version that fails
 * its checksum, or one far past any ris release, is a damaged file instead.
 */
/** The newest format this ris reads and writes (files without on-demand sections are written as 1). */
export const FORMAT_VERSION = 2;
const PLAIN_VERSION = 1;
/** Versions above this are damage, not the future: ris bumps the version once per format change. */
const MAX_PLAUSIBLE_VERSION = 255;
const MAGIC = 'RISINDEX';
const HEADER_SIZE = 128;
const ENTRY_SIZE = 32;
const ALIGN = 64;
const CRC_OFFSET = 120;
const RESIDENT_CRC_OFFSET = 116;
/** Table entry flag: the section is read on demand (version 2). */
const ON_DEMAND = 1;

/** The header's fixed fields, in file order; all u32. */
export const HEADER_FIELDS = [
  'kind',
  'dimension',
  'innerDimension',
  'distanceType',
  'numPartitions',
  'numSubVectors',
  'numBits',
  'refineStorage',
  'transform',
  'count',
  'nextId',
  'seed',
] as const;
export type HeaderFields = Record<(typeof HEADER_FIELDS)[number], number>;

/** The kinds of index ris writes: the header's `kind` code, and the class that opens each. */
export const INDEX_KINDS = {
  flat: { code: 1, title: 'Flat', opener: 'FlatIndex' },
  'ivf-flat': { code: 2, title: 'IVF-Flat', opener: 'IvfFlatIndex' },
  'ivf-pq': { code: 3, title: 'IVF-PQ', opener: 'IvfPqIndex' },
  pq: { code: 4, title: 'PQ', opener: 'PqIndex' },
  hnsw: { code: 5, title: 'HNSW', opener: 'HnswIndex' },
  'ivf-rabitq': { code: 6, title: 'IVF-RaBitQ', opener: 'IvfRabitqIndex' },
} as const;
export type IndexKind = keyof typeof INDEX_KINDS;

export type SectionData = Float32Array | Uint32Array | Uint16Array | Uint8Array;
const ELEMENT_TYPES = [Uint8Array, Uint16Array, Uint32Array, Float32Array] as const;

/**
 * A section written from chunks rather than from one array: rows read back from the file an index was
 * loaded from while the new file is written, so a file larger than memory can be saved again.
 */
export interface StreamedSection {
  readonly byteLength: number;
  /** The element type, as the typed array a reader views it with. */
  readonly elementType: (typeof ELEMENT_TYPES)[number];
  /** The section's bytes in order; they must add up to byteLength. */
  chunks(): Iterable<Uint8Array>;
}

export type Section = SectionData | StreamedSection;

/** The header fields every kind writes; the others default to 0. */
export type IndexHeader = Pick<HeaderFields, 'dimension' | 'count' | 'nextId'> &
  Partial<Omit<HeaderFields, 'kind' | 'distanceType'>> & { distanceType: DistanceType };

/**
 * The file of an index of `kind`: its header (unset fields 0) and its sections, in the given order
 * except that the sections named in `onDemand` go last (see the format above).
 */
export function encodeIndex(
  kind: IndexKind,
  header: IndexHeader,
  sections: ReadonlyMap<string, Section>,
  onDemand: ReadonlySet<string> = new Set(),
): Uint8Array {
  return concatenate(streamIndex(kind, header, sections, onDemand));
}

/** The same file as `encodeIndex`, as parts to write in order (see FileStore.write). */
export function streamIndex(
  kind: IndexKind,
  header: IndexHeader,
  sections: ReadonlyMap<string, Section>,
  onDemand: ReadonlySet<string> = new Set(),
): StreamedFile {
  const fields = Object.fromEntries(HEADER_FIELDS.map((name) => [name, 0])) as HeaderFields;
  Object.assign(fields, header, {
    kind: INDEX_KINDS[kind].code,
    innerDimension: header.innerDimension ?? header.dimension,
    distanceType: DISTANCE_TYPES.indexOf(header.distanceType),
  });
  return streamIndexFile(fields, sections, onDemand);
}

export function encodeIndexFile(fields: HeaderFields, sections: ReadonlyMap<string, Section>): Uint8Array {
  return concatenate(streamIndexFile(fields, sections, new Set()));
}

function streamIndexFile(
  fields: HeaderFields,
  sections: ReadonlyMap<string, Section>,
  onDemand: ReadonlySet<string>,
): StreamedFile {
  for (const tag of onDemand)
    if (!sections.has(tag)) throw new Error(`No section "${tag}" to read on demand`);
  const ordered = [
    ...[...sections].filter(([tag]) => !onDemand.has(tag)),
    ...[...sections].filter(([tag]) => onDemand.has(tag)),
  ];
  const version = onDemand.size > 0 ? FORMAT_VERSION : PLAIN_VERSION;
  const head = new Uint8Array(align(HEADER_SIZE + ordered.length * ENTRY_SIZE));
  let offset = head.length;
  const placed = ordered.map(([tag, data]) => {
    const at = offset;
    offset = align(offset + data.byteLength);
    return { tag, data, offset: at };
  });
  const length = offset;
  const residentEnd = placed.find((p) => onDemand.has(p.tag))?.offset ?? length;
  const view = new DataView(head.buffer);
  for (let i = 0; i < MAGIC.length; i++) head[i] = MAGIC.charCodeAt(i);
  view.setUint32(8, version, true);
  for (const [i, name] of HEADER_FIELDS.entries()) view.setUint32(12 + 4 * i, fields[name], true);
  view.setUint32(60, ordered.length, true);
  view.setBigUint64(64, BigInt(length), true);
  view.setUint32(124, HEADER_SIZE, true);
  placed.forEach(({ tag, data, offset }, i) => {
    const entry = HEADER_SIZE + i * ENTRY_SIZE;
    for (let c = 0; c < 4; c++) head[entry + c] = tag.charCodeAt(c);
    const type = isStreamed(data)
      ? ELEMENT_TYPES.indexOf(data.elementType)
      : ELEMENT_TYPES.findIndex((T) => data instanceof T);
    view.setUint32(entry + 4, type, true);
    view.setBigUint64(entry + 8, BigInt(offset), true);
    view.setBigUint64(entry + 16, BigInt(data.byteLength), true);
    if (version >= 2) view.setUint32(entry + 24, onDemand.has(tag) ? ON_DEMAND : 0, true);
  });
  // CRCs of what follows the head: the resident part, everything, and (version 2) each section.
  let residentCrc = 0;
  let wholeCrc = 0;
  let written = head.length;
  const consume = (chunk: Uint8Array) => {
    wholeCrc = crc32(chunk, wholeCrc);
    if (written < residentEnd) residentCrc = crc32(chunk, residentCrc);
    written += chunk.length;
    return chunk;
  };
  function* parts(): Generator<Uint8Array> {
    yield new Uint8Array(head.length); // the head is written last, once its CRCs are known
    for (const [i, { tag, data, offset }] of placed.entries()) {
      yield consume(new Uint8Array(offset - written));
      let sectionCrc = 0;
      let sectionBytes = 0;
      const chunks: Iterable<Uint8Array> = isStreamed(data)
        ? data.chunks()
        : [new Uint8Array(data.buffer, data.byteOffset, data.byteLength)];
      for (const chunk of chunks) {
        sectionCrc = crc32(chunk, sectionCrc);
        sectionBytes += chunk.length;
        yield consume(chunk);
      }
      if (sectionBytes !== data.byteLength) {
        throw new Error(`Section "${tag}" streamed ${sectionBytes} bytes instead of ${data.byteLength}`);
      }
      if (version >= 2) view.setUint32(HEADER_SIZE + i * ENTRY_SIZE + 28, sectionCrc, true);
    }
    yield consume(new Uint8Array(length - written));
  }
  return {
    byteLength: length,
    parts: parts(),
    head() {
      if (written !== length)
        throw new Error('The head of an index file is known once every part is written');
      if (version >= 2) {
        const crc = crc32Combine(headCrc(head, RESIDENT_CRC_OFFSET), residentCrc, residentEnd - head.length);
        view.setUint32(RESIDENT_CRC_OFFSET, crc, true);
      }
      view.setUint32(
        CRC_OFFSET,
        crc32Combine(headCrc(head, CRC_OFFSET), wholeCrc, length - head.length),
        true,
      );
      return head;
    },
  };
}

function isStreamed(data: Section): data is StreamedSection {
  return !ArrayBuffer.isView(data);
}

/** The whole file of a streamed encoding, in memory. */
function concatenate(file: StreamedFile): Uint8Array {
  const bytes = new Uint8Array(file.byteLength);
  let at = 0;
  for (const part of file.parts) {
    bytes.set(part, at);
    at += part.length;
  }
  bytes.set(file.head(), 0);
  return bytes;
}

/** CRC-32 of a file's head with the CRC fields from `from` to the header's end of CRCs read as zero. */
function headCrc(head: Uint8Array, from: number): number {
  return crc32(
    head.subarray(CRC_OFFSET + 4),
    crc32(new Uint8Array(CRC_OFFSET + 4 - from), crc32(head.subarray(0, from))),
  );
}

/**
 * Writes the CRCs of a whole file held in memory (its CRC fields read as zero) into their fields: after
 * its owner changed the reserved part of the header.
 */
export function stampChecksum(bytes: Uint8Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8, true) === FORMAT_VERSION) {
    const table = readTable(bytes, view, 'index file', true);
    view.setUint32(
      RESIDENT_CRC_OFFSET,
      regionCrc(bytes.subarray(0, table.residentEnd), RESIDENT_CRC_OFFSET),
      true,
    );
  }
  view.setUint32(CRC_OFFSET, regionCrc(bytes, CRC_OFFSET), true);
}

/** CRC-32 of bytes from a file's start, with the CRC fields from `from` up to 124 read as zero. */
function regionCrc(bytes: Uint8Array, from: number): number {
  return crc32(bytes.subarray(CRC_OFFSET + 4), headCrc(bytes.subarray(0, CRC_OFFSET + 4), from));
}

type SectionType<T extends SectionData> = {
  new (buffer: ArrayBuffer, offset: number, length: number): T;
  BYTES_PER_ELEMENT: number;
};

/** A section read a range at a time: from the file on disk, or from the file's bytes in memory. */
export interface OnDemandSection {
  readonly byteLength: number;
  /** True when the bytes are on disk (not held in memory). */
  readonly onDisk: boolean;
  /** Fills `into` with the section's bytes from `offset` (synchronously). */
  read(into: Uint8Array, offset: number): void;
  /** Closes the file it reads from (every on-demand section of that file): for an index letting go of it. */
  close(): void;
}

export interface DecodedIndexFile {
  /** The name used in messages: the path, or 'index file'. */
  name: string;
  fields: HeaderFields;
  /**
   * A view into the file's bytes (no copy). `length`, when given, is the number of elements the
   * header implies; a section of another length means the file is damaged. Sections read on demand
   * are not in memory when the file was opened from disk: see `onDemand`.
   */
  section<T extends SectionData>(tag: string, type: SectionType<T>, length?: number): T;
  /** A section read range by range, `length` elements of `elementBytes` bytes when given. */
  onDemand(tag: string, elementBytes: number, length?: number): OnDemandSection;
  /** Whether the file has a section `tag`. */
  has(tag: string): boolean;
  /** True when sections were left on disk: whoever holds them keeps the file open. */
  readonly leftOnDisk: boolean;
}

interface TableEntry {
  offset: number;
  byteLength: number;
  onDemand: boolean;
  crc: number;
}

/** Checks the frame (magic, length, checksum, version) and reads the header and section table. */
export function decodeIndexFile(input: Uint8Array, name = 'index file'): DecodedIndexFile {
  // Views need aligned offsets; Node hands out small files inside a shared, unaligned pool.
  const bytes = input.byteOffset % ALIGN === 0 ? input : input.slice();
  const { view, expectedLength, version } = checkFrame(bytes, name, bytes.length);
  if (bytes.length < expectedLength) throw truncated(name, expectedLength, bytes.length);
  const stored = view.getUint32(CRC_OFFSET, true);
  const actual = regionCrc(bytes.subarray(0, expectedLength), CRC_OFFSET);
  if (stored !== actual || bytes.length !== expectedLength) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name} is corrupt (checksum ${hex(actual)} does not match the stored ${hex(stored)}); rebuild the index or restore it from a backup`,
    );
  }
  checkVersion(version, name);
  const { entries } = readTable(bytes, view, name, version >= 2);
  return decoded(name, bytes, entries, (tag, entry) => ({
    byteLength: entry.byteLength,
    onDisk: false,
    read(into, offset) {
      checkRange(name, tag, entry, offset, into.length);
      into.set(bytes.subarray(entry.offset + offset, entry.offset + offset + into.length));
    },
    close() {},
  }));
}

/** Options of `readIndexFile`. */
export interface ReadIndexOptions {
  /**
   * Check the CRC of every section read on demand as the file is opened, streaming it through the
   * store (memory stays flat whatever the file's size); false checks only the resident part, for the
   * fastest open. Default true.
   */
  verify?: boolean;
}

/**
 * Opens an index file read in ranges: the resident part (header, table and every section not read on
 * demand) is read and checked; sections read on demand stay on disk and are read from `file` when used.
 * A version-1 file has no such sections and is read whole.
 */
export function readIndexFile(
  file: RangedFile,
  name: string,
  options: ReadIndexOptions = {},
): DecodedIndexFile {
  const size = file.size;
  const start = readRange(file, 0, Math.min(size, HEADER_SIZE));
  const { view, expectedLength, version } = checkFrame(start, name, size);
  // Version 1, and versions past this ris (whose whole-file CRC tells damage from the future): whole.
  if (version !== FORMAT_VERSION) return decodeIndexFile(readRange(file, 0, size), name);
  if (size < expectedLength) throw truncated(name, expectedLength, size);
  const count = view.getUint32(60, true);
  const tableEnd = HEADER_SIZE + count * ENTRY_SIZE;
  if (tableEnd > expectedLength) throw damaged(name, 'its section table');
  const head = readRange(file, 0, tableEnd);
  const { entries, residentEnd } = readTable(head, new DataView(head.buffer), name, true);
  if (residentEnd > expectedLength) throw damaged(name, 'its section table');
  const resident = readRange(file, 0, residentEnd);
  const residentView = new DataView(resident.buffer);
  const stored = residentView.getUint32(RESIDENT_CRC_OFFSET, true);
  const actual = regionCrc(resident, RESIDENT_CRC_OFFSET);
  if (stored !== actual || size !== expectedLength) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name} is corrupt (checksum ${hex(actual)} does not match the stored ${hex(stored)}); rebuild the index or restore it from a backup`,
    );
  }
  for (const [tag, entry] of entries) {
    if (!entry.onDemand) continue;
    if (entry.offset < residentEnd || entry.offset + entry.byteLength > expectedLength) {
      throw damaged(name, `its "${tag}" section`);
    }
    if (options.verify === false) continue;
    const crc = file.crc32 ? file.crc32(entry.offset, entry.byteLength) : streamedCrc(file, entry);
    if (crc !== entry.crc) {
      throw new FileFormatError(
        'CORRUPT_FILE',
        `${name} is corrupt (its "${tag}" section's checksum ${hex(crc)} does not match the stored ${hex(entry.crc)}); rebuild the index or restore it from a backup`,
      );
    }
  }
  return decoded(
    name,
    resident,
    entries,
    (tag, entry) => ({
      byteLength: entry.byteLength,
      onDisk: true,
      read(into, offset) {
        checkRange(name, tag, entry, offset, into.length);
        file.read(into, entry.offset + offset);
      },
      close: () => file.close(),
    }),
    [...entries.values()].some((entry) => entry.onDemand),
  );
}

/** CRC-32 of a section read through `file` a megabyte at a time. */
function streamedCrc(file: RangedFile, entry: TableEntry): number {
  const chunk = new Uint8Array(Math.min(entry.byteLength, 1 << 20));
  let crc = 0;
  for (let done = 0; done < entry.byteLength; done += chunk.length) {
    const part = chunk.subarray(0, Math.min(chunk.length, entry.byteLength - done));
    file.read(part, entry.offset + done);
    crc = crc32(part, crc);
  }
  return crc;
}

function readRange(file: RangedFile, offset: number, length: number): Uint8Array {
  // A fresh buffer is 64-byte aligned on every engine we run on (views need aligned sections).
  const bytes = new Uint8Array(length);
  if (length > 0) file.read(bytes, offset);
  return bytes;
}

function checkRange(name: string, tag: string, entry: TableEntry, offset: number, length: number): void {
  if (offset < 0 || offset + length > entry.byteLength) {
    throw new RangeError(`${name}: bytes ${offset}…${offset + length} are outside its "${tag}" section`);
  }
}

/** Magic, header size, plausible version and length; `size` is the file's actual length. */
function checkFrame(
  bytes: Uint8Array,
  name: string,
  size: number,
): { view: DataView; expectedLength: number; version: number } {
  if (bytes.length < MAGIC.length || String.fromCharCode(...bytes.subarray(0, 8)) !== MAGIC) {
    throw new FileFormatError(
      'NOT_AN_INDEX_FILE',
      `${name} is not a ris index file (it does not start with "${MAGIC}"); pass the path of a file written by index.save()`,
    );
  }
  if (size < HEADER_SIZE) throw truncated(name, HEADER_SIZE, size);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  const expectedLength = view.getBigUint64(64, true);
  if (
    version === 0 ||
    version > MAX_PLAUSIBLE_VERSION ||
    view.getUint32(124, true) !== HEADER_SIZE ||
    expectedLength < BigInt(HEADER_SIZE) ||
    expectedLength > BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name} is corrupt (its header is damaged: format version ${version}, length ${expectedLength}); rebuild the index or restore it from a backup`,
    );
  }
  return { view, expectedLength: Number(expectedLength), version };
}

function checkVersion(version: number, name: string): void {
  if (version > FORMAT_VERSION) {
    throw new FileFormatError(
      'UNSUPPORTED_VERSION',
      `${name} has format version ${version}, newer than this ris reads (${FORMAT_VERSION}); upgrade ris to load it`,
    );
  }
}

/** The section table (v2: with flags and CRCs), and where the resident part ends. */
function readTable(
  bytes: Uint8Array,
  view: DataView,
  name: string,
  withFlags: boolean,
): { entries: Map<string, TableEntry>; residentEnd: number } {
  const count = view.getUint32(60, true);
  if (HEADER_SIZE + count * ENTRY_SIZE > bytes.length) throw damaged(name, 'its section table');
  const entries = new Map<string, TableEntry>();
  let residentEnd = Number(view.getBigUint64(64, true));
  for (let i = 0; i < count; i++) {
    const entry = HEADER_SIZE + i * ENTRY_SIZE;
    const tag = String.fromCharCode(...bytes.subarray(entry, entry + 4));
    const flags = withFlags ? view.getUint32(entry + 24, true) : 0;
    const item = {
      offset: Number(view.getBigUint64(entry + 8, true)),
      byteLength: Number(view.getBigUint64(entry + 16, true)),
      onDemand: (flags & ON_DEMAND) !== 0,
      crc: withFlags ? view.getUint32(entry + 28, true) : 0,
    };
    if (!Number.isSafeInteger(item.offset + item.byteLength) || (flags & ~ON_DEMAND) !== 0) {
      throw damaged(name, `its "${tag}" section`);
    }
    entries.set(tag, item);
    if (item.onDemand) residentEnd = Math.min(residentEnd, item.offset);
  }
  return { entries, residentEnd };
}

function decoded(
  name: string,
  bytes: Uint8Array,
  entries: Map<string, TableEntry>,
  onDemand: (tag: string, entry: TableEntry) => OnDemandSection,
  leftOnDisk = false,
): DecodedIndexFile {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    name,
    leftOnDisk,
    fields: Object.fromEntries(
      HEADER_FIELDS.map((n, i) => [n, view.getUint32(12 + 4 * i, true)]),
    ) as HeaderFields,
    has: (tag) => entries.has(tag),
    section(tag, type, length) {
      const entry = entries.get(tag);
      if (!entry) {
        throw new FileFormatError('CORRUPT_FILE', `${name} lacks its "${tag}" section; rebuild the index`);
      }
      const { offset, byteLength } = entry;
      if (
        offset % type.BYTES_PER_ELEMENT !== 0 ||
        byteLength % type.BYTES_PER_ELEMENT !== 0 ||
        offset + byteLength > bytes.length ||
        (length !== undefined && byteLength !== length * type.BYTES_PER_ELEMENT)
      ) {
        throw damaged(name, `its "${tag}" section`);
      }
      return new type(
        bytes.buffer as ArrayBuffer,
        bytes.byteOffset + offset,
        byteLength / type.BYTES_PER_ELEMENT,
      );
    },
    onDemand(tag, elementBytes, length) {
      const entry = entries.get(tag);
      if (!entry) {
        throw new FileFormatError('CORRUPT_FILE', `${name} lacks its "${tag}" section; rebuild the index`);
      }
      if (
        entry.byteLength % elementBytes !== 0 ||
        (length !== undefined && entry.byteLength !== length * elementBytes)
      ) {
        throw damaged(name, `its "${tag}" section`);
      }
      return onDemand(tag, entry);
    },
  };
}

/** The kind of index a file holds; an unknown code means a newer ris wrote it. */
export function kindOf(file: DecodedIndexFile): IndexKind {
  const code = file.fields.kind;
  for (const [kind, info] of Object.entries(INDEX_KINDS)) if (info.code === code) return kind as IndexKind;
  throw new FileFormatError(
    'UNKNOWN_INDEX_KIND',
    `${file.name} holds an index of kind ${code}, which this ris does not know (it opens ${Object.keys(INDEX_KINDS).join(', ')}); upgrade ris to open it`,
  );
}

/** Decodes a file that must hold an index of `kind`, saying which class opens it when it holds another. */
export function decodeIndex(bytes: Uint8Array, name: string, kind: IndexKind): DecodedIndexFile {
  return requireKind(decodeIndexFile(bytes, name), kind);
}

/** `file` when it holds an index of `kind`; else WRONG_INDEX_KIND, saying which class opens it. */
export function requireKind(file: DecodedIndexFile, kind: IndexKind): DecodedIndexFile {
  const name = file.name;
  const found = kindOf(file);
  if (found !== kind) {
    const info = INDEX_KINDS[found];
    throw new FileFormatError(
      'WRONG_INDEX_KIND',
      `${name} holds ${article(info.title)} index (kind ${found}), not ${article(INDEX_KINDS[kind].title)} one; ` +
        `open it with ${info.opener}.load() or ${info.opener}.fromBytes(), or with loadIndex() / openIndex(), which open any kind`,
    );
  }
  return file;
}

/** The distance type a header names. */
export function distanceTypeOf(file: DecodedIndexFile): DistanceType {
  const type = DISTANCE_TYPES[file.fields.distanceType];
  if (!type) throw damaged(file.name, `its distance type (code ${file.fields.distanceType})`);
  return type;
}

/** A file whose checksum holds but whose contents cannot be what ris wrote. */
export function damaged(name: string, what: string): FileFormatError {
  return new FileFormatError(
    'CORRUPT_FILE',
    `${name} is corrupt (${what} does not fit the rest of the file); rebuild the index or restore it from a backup`,
  );
}

function truncated(name: string, expected: number, actual: number): FileFormatError {
  return new FileFormatError(
    'TRUNCATED_FILE',
    `${name} is truncated (${actual} bytes of ${expected}); it was cut short while copying or writing: save the index again`,
  );
}

function article(title: string): string {
  return /^[AEIOU]/.test(title) ? `an ${title}` : `a ${title}`;
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
