import type { ImagePlanes } from './planes.ts';

/**
 * An image's planes as one fixed-size record of bytes, little-endian: width, height (uint32), chroma
 * (float32), 4 reserved bytes, then the planes in the order of PLANE_FIELDS. The plane cache stores
 * these records; worker threads receive them (a view into a larger buffer would send the whole buffer).
 */
export const PLANE_FIELDS = ['lightness8', 'lightness16', 'lightness32', 'a16', 'b16'] as const;
const SIZES = { lightness8: 16 * 16, lightness16: 32 * 32, lightness32: 64 * 64, a16: 32 * 32, b16: 32 * 32 };
export const PLANE_RECORD = 16 + PLANE_FIELDS.reduce((sum, field) => sum + SIZES[field], 0);

/** Writes the record of `planes` at `offset` of `bytes`. */
export function writePlaneRecord(planes: ImagePlanes, bytes: Uint8Array, offset: number): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  view.setUint32(offset, planes.width, true);
  view.setUint32(offset + 4, planes.height, true);
  view.setFloat32(offset + 8, planes.chroma, true);
  view.setUint32(offset + 12, 0, true);
  let at = offset + 16;
  for (const field of PLANE_FIELDS) {
    bytes.set(new Uint8Array(planes[field].buffer, planes[field].byteOffset, SIZES[field]), at);
    at += SIZES[field];
  }
}

/** The planes of the record at `offset` of `bytes`, as views into it (nothing copied). */
export function readPlaneRecord(bytes: Uint8Array, offset: number): ImagePlanes {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let at = bytes.byteOffset + offset + 16;
  const plane = <T extends Uint8Array | Int8Array>(
    Type: { new (buffer: ArrayBufferLike, offset: number, length: number): T },
    size: number,
  ) => {
    const made = new Type(bytes.buffer, at, size);
    at += size;
    return made;
  };
  return {
    width: view.getUint32(offset, true),
    height: view.getUint32(offset + 4, true),
    chroma: view.getFloat32(offset + 8, true),
    lightness8: plane(Uint8Array, SIZES.lightness8),
    lightness16: plane(Uint8Array, SIZES.lightness16),
    lightness32: plane(Uint8Array, SIZES.lightness32),
    a16: plane(Int8Array, SIZES.a16),
    b16: plane(Int8Array, SIZES.b16),
  };
}
