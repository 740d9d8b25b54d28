import type { Readable } from 'node:stream';
import sharp, { type Metadata } from 'sharp';
import { ArgumentError, describe, ImageError } from '../errors.ts';
import type { ModelConfig } from './config.ts';

/** An image as a file path, its bytes, or a stream of its bytes. */
export type ImageInput = string | Buffer | Uint8Array | Readable;

/** A box in the pixels of the image as displayed (after its EXIF orientation is applied). */
export interface CropBox {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface DecodeOptions {
  crop?: CropBox;
  /**
   * Refuse images with more pixels than this (decompression bombs: a small file that decodes to
   * gigabytes). Default 100 million pixels, about a 10,000 × 10,000 photo.
   */
  limitInputPixels?: number;
}

export const DEFAULT_PIXEL_LIMIT = 100_000_000;
/** Formats sharp decodes that are photos; vector formats (SVG, PDF) and others are refused. */
const RASTER_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif']);

/** 8-bit sRGB pixels, row-major, 3 bytes per pixel. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
  /** Size of the source image as displayed (after EXIF orientation, before crop and resize). */
  sourceWidth: number;
  sourceHeight: number;
}

/**
 * Decodes an image and prepares it for the model: EXIF orientation applied, the crop taken, alpha
 * flattened onto white or dropped, converted to 8-bit sRGB (grayscale, CMYK and 16-bit included) and
 * resized, as the config says. Returns the model-sized RGB pixels.
 */
export async function prepareImage(
  input: ImageInput,
  config: ModelConfig,
  options: DecodeOptions = {},
): Promise<RgbImage> {
  const bytes = await readInput(input);
  const limit = options.limitInputPixels ?? DEFAULT_PIXEL_LIMIT;
  const source = sharp(bytes, { limitInputPixels: limit, failOn: 'truncated', pages: 1 });
  let meta: Metadata;
  try {
    // The header alone, without the limit, so an oversized image is refused with its size.
    meta = await sharp(bytes, { limitInputPixels: false, pages: 1 }).metadata();
  } catch (error) {
    throw imageError(error);
  }
  const format = meta.format === 'heif' && meta.compression === 'av1' ? 'avif' : String(meta.format);
  if (!RASTER_FORMATS.has(format)) {
    throw new ImageError(
      'UNSUPPORTED_IMAGE',
      `Images in ${format.toUpperCase()} format are not supported (vector and document formats cannot be searched); use a JPEG, PNG, WebP, GIF, TIFF or AVIF`,
    );
  }
  const rotated = (meta.orientation ?? 1) >= 5;
  const width = rotated ? meta.height! : meta.width!;
  const height = rotated ? meta.width! : meta.height!;
  if (width * height > limit) throw tooLarge(width * height, limit);
  let pipeline = source.rotate();
  let w = width;
  let h = height;
  if (options.crop) {
    checkCrop(options.crop, width, height);
    pipeline = pipeline.extract(options.crop);
    w = options.crop.width;
    h = options.crop.height;
  }
  // 'drop' leaves alpha in for the resize: sharp, like Pillow, resamples premultiplied, then drops it.
  if (config.input.alpha === 'white') pipeline = pipeline.flatten({ background: '#ffffff' });
  pipeline = pipeline.toColourspace('srgb');
  const side = config.input.size;
  const kernel = config.resize.kernel;
  if (config.resize.mode === 'stretch') {
    pipeline = pipeline.resize(side, side, { fit: 'fill', kernel });
  } else {
    // Shorter side to resize.size, then the centre square of the input size.
    const torchvision = config.resize.sizing === 'torchvision';
    const scale = config.resize.size / Math.min(w, h);
    const length = (v: number) =>
      torchvision ? Math.floor((config.resize.size * v) / Math.min(w, h)) : Math.round(v * scale);
    const offset = (excess: number) => (torchvision ? roundHalfEven(excess / 2) : Math.floor(excess / 2));
    const rw = Math.max(side, length(w));
    const rh = Math.max(side, length(h));
    pipeline = pipeline.resize(rw, rh, { fit: 'fill', kernel }).extract({
      left: offset(rw - side),
      top: offset(rh - side),
      width: side,
      height: side,
    });
  }
  try {
    const { data, info } = await pipeline
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.length),
      width: info.width,
      height: info.height,
      sourceWidth: width,
      sourceHeight: height,
    };
  } catch (error) {
    throw imageError(error);
  }
}

/** Writes one prepared image into the input tensor at `offset` (one image's worth), scaled and normalised. */
export function fillTensor(image: RgbImage, config: ModelConfig, out: Float32Array, offset: number): void {
  const { scale, mean, std, layout, channelOrder } = config.input;
  const pixels = image.width * image.height;
  const src = image.data;
  // Source channel c goes to tensor channel c (rgb) or 2 − c (bgr); value · a + b = (value · scale − mean) / std.
  const to = channelOrder === 'rgb' ? [0, 1, 2] : [2, 1, 0];
  const a0 = scale / std[to[0]!]!;
  const a1 = scale / std[to[1]!]!;
  const a2 = scale / std[to[2]!]!;
  const b0 = -mean[to[0]!]! / std[to[0]!]!;
  const b1 = -mean[to[1]!]! / std[to[1]!]!;
  const b2 = -mean[to[2]!]! / std[to[2]!]!;
  if (layout === 'nchw') {
    // One pass over the pixels, three planes written (the hot loop of preprocessing).
    const o0 = offset + to[0]! * pixels;
    const o1 = offset + to[1]! * pixels;
    const o2 = offset + to[2]! * pixels;
    for (let p = 0, q = 0; p < pixels; p++, q += 3) {
      out[o0 + p] = src[q]! * a0 + b0;
      out[o1 + p] = src[q + 1]! * a1 + b1;
      out[o2 + p] = src[q + 2]! * a2 + b2;
    }
  } else {
    for (let p = 0, q = 0; p < pixels; p++, q += 3) {
      const o = offset + q;
      out[o + to[0]!] = src[q]! * a0 + b0;
      out[o + to[1]!] = src[q + 1]! * a1 + b1;
      out[o + to[2]!] = src[q + 2]! * a2 + b2;
    }
  }
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(v: number): number {
  const floor = Math.floor(v);
  const fraction = v - floor;
  if (fraction !== 0.5) return Math.round(v);
  return floor % 2 === 0 ? floor : floor + 1;
}

function checkCrop(crop: CropBox, width: number, height: number): void {
  for (const key of ['left', 'top', 'width', 'height'] as const) {
    const v = crop[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new ArgumentError(
        'INVALID_ARGUMENT',
        `Expected crop.${key} to be a non-negative integer but received ${describe(v)}`,
      );
    }
  }
  if (
    crop.width === 0 ||
    crop.height === 0 ||
    crop.left + crop.width > width ||
    crop.top + crop.height > height
  ) {
    throw new ImageError(
      'CROP_OUT_OF_BOUNDS',
      `Crop box ${crop.width}×${crop.height} at (${crop.left}, ${crop.top}) does not fit inside the ${width}×${height} image; ` +
        'give a non-empty box within the image',
    );
  }
}

async function readInput(input: ImageInput): Promise<Buffer> {
  let bytes: Buffer;
  if (typeof input === 'string') {
    const { readFile } = await import('node:fs/promises');
    try {
      bytes = await readFile(input);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR')
        throw new ImageError('IMAGE_NOT_FOUND', `There is no image file ${input}; check the path`);
      throw new ImageError(
        'IMAGE_UNREADABLE',
        `Cannot read the image file ${input} (${code ?? (error as Error).message}); check that it is a readable file`,
      );
    }
  } else if (input instanceof Uint8Array) {
    bytes = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  } else if (input && typeof (input as Readable).pipe === 'function') {
    const chunks: Buffer[] = [];
    for await (const chunk of input as Readable) chunks.push(Buffer.from(chunk as Uint8Array));
    bytes = Buffer.concat(chunks);
  } else {
    throw new ArgumentError(
      'INVALID_ARGUMENT',
      `Expected an image as a file path, a Buffer or a readable stream but received ${describe(input)}`,
    );
  }
  if (bytes.length === 0)
    throw new ImageError(
      'EMPTY_IMAGE',
      'The image is empty (0 bytes); pass the bytes of a JPEG, PNG, WebP, GIF, TIFF or AVIF file',
    );
  return bytes;
}

function tooLarge(pixels: number, limit: number): ImageError {
  return new ImageError(
    'IMAGE_TOO_LARGE',
    `The image has ${pixels.toLocaleString('en')} pixels, more than the limit of ${limit.toLocaleString('en')}; resize it first or raise limitInputPixels`,
  );
}

/** Turns sharp's failures into ImageErrors with a message that says what to do. */
function imageError(error: unknown): ImageError {
  const message = error instanceof Error ? error.message : String(error);
  if (/unsupported image format/i.test(message)) {
    return new ImageError(
      'UNSUPPORTED_IMAGE',
      'The data is not an image in a format ris reads (JPEG, PNG, WebP, GIF, TIFF or AVIF)',
    );
  }
  return new ImageError(
    'CORRUPT_IMAGE',
    `The image is truncated or corrupt and cannot be decoded (${message.split('\n')[0]}); re-export or re-download it`,
  );
}
