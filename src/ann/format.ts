import { FileFormatError } from '../errors.ts';
import { crc32 } from './crc32.ts';

/**
 * The index file: a fixed 128-byte header, a table of sections, then the sections, each aligned to
 * 64 bytes so typed arrays can view them in place. Little-endian throughout, written through DataView.
 *
 *   0  magic "RISINDEX"          64  file length (u64)
 *   8  format version (u32)      72  reserved
 *  12  header fields: 12 × u32  120  CRC-32 of the whole file, this field read as zero
 *  60  number of sections       124  header size (128)
 *
 * Section table entry (32 bytes): tag (4 ASCII bytes), element type, offset (u64), byte length (u64).
 */
export const FORMAT_VERSION = 1;
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

export type SectionData = Float32Array | Uint32Array | Uint16Array | Uint8Array;
const ELEMENT_TYPES = [Uint8Array, Uint16Array, Uint32Array, Float32Array] as const;

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
  view.setUint32(CRC_OFFSET, crc32(bytes), true);
  return bytes;
}

export interface DecodedIndexFile {
  fields: HeaderFields;
  /** Views into the file's bytes (no copies); use `section(tag, Type)`. */
  section<T extends SectionData>(
    tag: string,
    type: { new (buffer: ArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number },
  ): T;
  has(tag: string): boolean;
}

export function decodeIndexFile(input: Uint8Array, name = 'index file'): DecodedIndexFile {
  // Views need aligned offsets; Node hands out small files inside a shared, unaligned pool.
  const bytes = input.byteOffset % ALIGN === 0 ? input : input.slice();
  if (bytes.length < 12 || String.fromCharCode(...bytes.subarray(0, 8)) !== MAGIC) {
    throw new FileFormatError(
      'NOT_AN_INDEX_FILE',
      `${name} is not a ris index file (it does not start with "${MAGIC}"); pass the path of a file written by index.save()`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version > FORMAT_VERSION) {
    throw new FileFormatError(
      'UNSUPPORTED_VERSION',
      `${name} has format version ${version}, newer than this ris reads (${FORMAT_VERSION}); upgrade ris to load it`,
    );
  }
  if (bytes.length < HEADER_SIZE) throw truncated(name, HEADER_SIZE, bytes.length);
  const expectedLength = Number(view.getBigUint64(64, true));
  if (bytes.length < expectedLength) throw truncated(name, expectedLength, bytes.length);
  const stored = view.getUint32(CRC_OFFSET, true);
  const copy = bytes.subarray(0, expectedLength);
  const actual = crc32(
    copy.subarray(CRC_OFFSET + 4),
    crc32(new Uint8Array(4), crc32(copy.subarray(0, CRC_OFFSET))),
  );
  if (stored !== actual || bytes.length !== expectedLength) {
    throw new FileFormatError(
      'CORRUPT_FILE',
      `${name} is corrupt (checksum ${hex(actual)} does not match the stored ${hex(stored)}); rebuild the index or restore it from a backup`,
    );
  }
  const fields = Object.fromEntries(
    HEADER_FIELDS.map((n, i) => [n, view.getUint32(12 + 4 * i, true)]),
  ) as HeaderFields;
  const count = view.getUint32(60, true);
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
    fields,
    has: (tag) => entries.has(tag),
    section(tag, type) {
      const entry = entries.get(tag);
      if (!entry) {
        throw new FileFormatError('CORRUPT_FILE', `${name} lacks its "${tag}" section; rebuild the index`);
      }
      return new type(
        bytes.buffer as ArrayBuffer,
        bytes.byteOffset + entry.offset,
        entry.byteLength / type.BYTES_PER_ELEMENT,
      );
    },
  };
}

function truncated(name: string, expected: number, actual: number): FileFormatError {
  return new FileFormatError(
    'TRUNCATED_FILE',
    `${name} is truncated (${actual} bytes of ${expected}); it was cut short while copying or writing: save the index again`,
  );
}

function align(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}
