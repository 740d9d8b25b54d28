import { FileFormatError } from '../errors.ts';
import { crc32 } from './crc32.ts';
import { DISTANCE_TYPES, type DistanceType } from './metric.ts';

/**
 * The index file: a fixed 128-byte header, a table of sections, then the sections, each aligned to
 * 64 bytes so typed arrays can view them in place. Little-endian throughout, written through DataView.
 *
 *   0  magic "RISINDEX"          64  file length (u64)
 *   8  format version (u32)      72  reserved for the file's owner (src/ann neither writes nor reads it;
 *  12  header fields: 12 × u32       collections stamp their data generation there), covered by the CRC
 *  60  number of sections       120  CRC-32 of the whole file, this field read as zero
 *                               124  header size (128)
 *
 * Section table entry (32 bytes): tag (4 ASCII bytes), element type, offset (u64), byte length (u64).
 *
 * The frame (magic, version, file length, CRC and where they sit) is the same in every version, so a file
 * of a newer version can be verified before ris says "upgrade": a version that fails its checksum, or
 * one far past any ris release, is a damaged file instead.
 */
export const FORMAT_VERSION = 1;
/** Versions above this are damage, not the future: ris bumps the version once per format change. */
const MAX_PLAUSIBLE_VERSION = 255;
const MAGIC = 'RISINDEX';
const HEADER_SIZE = 128;
const ENTRY_SIZE = 32;
const ALIGN = 64;
const CRC_OFFSET = 120;

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
} as const;
export type IndexKind = keyof typeof INDEX_KINDS;

export type SectionData = Float32Array | Uint32Array | Uint16Array | Uint8Array;
const ELEMENT_TYPES = [Uint8Array, Uint16Array, Uint32Array, Float32Array] as const;

/** The header fields every kind writes; the others default to 0. */
export type IndexHeader = Pick<HeaderFields, 'dimension' | 'count' | 'nextId'> &
  Partial<Omit<HeaderFields, 'kind' | 'distanceType'>> & { distanceType: DistanceType };

/** The file of an index of `kind`: its header (unset fields 0) and its sections, in the given order. */
export function encodeIndex(
  kind: IndexKind,
  header: IndexHeader,
  sections: ReadonlyMap<string, SectionData>,
): Uint8Array {
  const fields = Object.fromEntries(HEADER_FIELDS.map((name) => [name, 0])) as HeaderFields;
  Object.assign(fields, header, {
    kind: INDEX_KINDS[kind].code,
    innerDimension: header.innerDimension ?? header.dimension,
    distanceType: DISTANCE_TYPES.indexOf(header.distanceType),
  });
  return encodeIndexFile(fields, sections);
}

export function encodeIndexFile(
  fields: HeaderFields,
  sections: ReadonlyMap<string, SectionData>,
): Uint8Array {
  let offset = align(HEADER_SIZE + sections.size * ENTRY_SIZE);
  const placed: { tag: string; data: SectionData; offset: number }[] = [];
  for (const [tag, data] of sections) {
    placed.push({ tag, data, offset });
    offset = align(offset + data.byteLength);
  }
  const bytes = new Uint8Array(offset);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < MAGIC.length; i++) bytes[i] = MAGIC.charCodeAt(i);
  view.setUint32(8, FORMAT_VERSION, true);
  for (const [i, name] of HEADER_FIELDS.entries()) view.setUint32(12 + 4 * i, fields[name], true);
  view.setUint32(60, sections.size, true);
  view.setBigUint64(64, BigInt(bytes.length), true);
  view.setUint32(124, HEADER_SIZE, true);
  placed.forEach(({ tag, data, offset }, i) => {
    const entry = HEADER_SIZE + i * ENTRY_SIZE;
    for (let c = 0; c < 4; c++) bytes[entry + c] = tag.charCodeAt(c);
    view.setUint32(
      entry + 4,
      ELEMENT_TYPES.findIndex((T) => data instanceof T),
      true,
    );
    view.setBigUint64(entry + 8, BigInt(offset), true);
    view.setBigUint64(entry + 16, BigInt(data.byteLength), true);
    // Typed arrays are platform-endian; every platform we run on is little-endian.
    bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
  });
  stampChecksum(bytes);
  return bytes;
}

/** Writes the CRC of a whole file (its CRC field read as zero) into that field. */
export function stampChecksum(bytes: Uint8Array): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(CRC_OFFSET, checksum(bytes), true);
}

function checksum(bytes: Uint8Array): number {
  return crc32(
    bytes.subarray(CRC_OFFSET + 4),
    crc32(new Uint8Array(4), crc32(bytes.subarray(0, CRC_OFFSET))),
  );
}

type SectionType<T extends SectionData> = {
  new (buffer: ArrayBuffer, offset: number, length: number): T;
  BYTES_PER_ELEMENT: number;
};

export interface DecodedIndexFile {
  /** The name used in messages: the path, or 'index file'. */
  name: string;
  fields: HeaderFields;
  /**
   * A view into the file's bytes (no copy). `length`, when given, is the number of elements the
   * header implies; a section of another length means the file is damaged.
   */
  section<T extends SectionData>(tag: string, type: SectionType<T>, length?: number): T;
}

/** Checks the frame (magic, length, checksum, version) and reads the header and section table. */
export function decodeIndexFile(input: Uint8Array, name = 'index file'): DecodedIndexFile {
  // Views need aligned offsets; Node hands out small files inside a shared, unaligned pool.
  const bytes = input.byteOffset % ALIGN === 0 ? input : input.slice();
  if (bytes.length < MAGIC.length || String.fromCharCode(...bytes.subarray(0, 8)) !== MAGIC) {
    throw new FileFormatError(
      'NOT_AN_INDEX_FILE',
      `${name} is not a ris index file (it does not start with "${MAGIC}"); pass the path of a file written by index.save()`,
    );
  }
  if (bytes.length < HEADER_SIZE) throw truncated(name, HEADER_SIZE, bytes.length);
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
  if (bytes.length < Number(expectedLength)) throw truncated(name, Number(expectedLength), bytes.length);
  const stored = view.getUint32(CRC_OFFSET, true);
  const actual = checksum(bytes.subarray(0, Number(expectedLength)));
  if (stored !== actual || bytes.length !== Number(expectedLength)) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name} is corrupt (checksum ${hex(actual)} does not match the stored ${hex(stored)}); rebuild the index or restore it from a backup`,
    );
  }
  if (version > FORMAT_VERSION) {
    throw new FileFormatError(
      'UNSUPPORTED_VERSION',
      `${name} has format version ${version}, newer than this ris reads (${FORMAT_VERSION}); upgrade ris to load it`,
    );
  }
  const fields = Object.fromEntries(
    HEADER_FIELDS.map((n, i) => [n, view.getUint32(12 + 4 * i, true)]),
  ) as HeaderFields;
  const count = view.getUint32(60, true);
  if (HEADER_SIZE + count * ENTRY_SIZE > bytes.length) throw damaged(name, 'its section table');
  const entries = new Map<string, { offset: number; byteLength: number }>();
  for (let i = 0; i < count; i++) {
    const entry = HEADER_SIZE + i * ENTRY_SIZE;
    const tag = String.fromCharCode(...bytes.subarray(entry, entry + 4));
    entries.set(tag, {
      offset: Number(view.getBigUint64(entry + 8, true)),
      byteLength: Number(view.getBigUint64(entry + 16, true)),
    });
  }
  return {
    name,
    fields,
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
  const file = decodeIndexFile(bytes, name);
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
