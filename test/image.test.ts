import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { parseModelConfig } from '../src/embed/config.ts';
import { prepareImage } from '../src/embed/image.ts';
import { ArgumentError, ImageError } from '../src/index.ts';
import { image, jpeg, pattern, png } from './fixtures/images.ts';

// Resize to exactly 32 × 32 so tests can look at pixels.
const config = parseModelConfig(
  { name: 't', input: { name: 'x', size: 32 }, resize: { mode: 'stretch' }, output: { tensor: 'y' } },
  'test',
);

const meanAbsDiff = (a: Uint8Array, b: Uint8Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
};

async function expectImageError(promise: Promise<unknown>, code: string, message: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ImageError, String(error));
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

describe('image decoding', () => {
  it('decodes JPEG, PNG, WebP, GIF, TIFF and AVIF to the same picture', async () => {
    const reference = await prepareImage(await png(64, 48, 1), config);
    assert.equal(reference.data.length, 32 * 32 * 3);
    const encoded = {
      jpeg: await image(64, 48, 1).jpeg({ quality: 95 }).toBuffer(),
      webp: await image(64, 48, 1).webp({ quality: 95 }).toBuffer(),
      gif: await image(64, 48, 1).gif().toBuffer(),
      tiff: await image(64, 48, 1).tiff().toBuffer(),
      avif: await image(64, 48, 1).avif({ quality: 90 }).toBuffer(),
    };
    for (const [format, bytes] of Object.entries(encoded)) {
      const decoded = await prepareImage(bytes, config);
      assert.ok(
        meanAbsDiff(decoded.data, reference.data) < 6,
        `${format}: ${meanAbsDiff(decoded.data, reference.data)}`,
      );
    }
  });

  it('makes grayscale, CMYK and 16-bit images 8-bit RGB, and flattens alpha onto white', async () => {
    const gray = await prepareImage(await image(40, 40, 2).grayscale().png().toBuffer(), config);
    for (let p = 0; p < 32 * 32; p++)
      assert.ok(gray.data[p * 3] === gray.data[p * 3 + 1] && gray.data[p * 3] === gray.data[p * 3 + 2]);
    const cmyk = await prepareImage(await image(40, 40, 2).toColourspace('cmyk').jpeg().toBuffer(), config);
    const rgb = await prepareImage(await image(40, 40, 2).jpeg().toBuffer(), config);
    // Without an ICC profile CMYK round-trips only approximately.
    assert.ok(meanAbsDiff(cmyk.data, rgb.data) < 25, `cmyk diff ${meanAbsDiff(cmyk.data, rgb.data)}`);
    const sixteen = await prepareImage(
      await image(40, 40, 2).toColourspace('rgb16').png().toBuffer(),
      config,
    );
    const eight = await prepareImage(await png(40, 40, 2), config);
    assert.ok(meanAbsDiff(sixteen.data, eight.data) < 1.5);
    const transparent = await sharp({
      create: { width: 20, height: 20, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const flattened = await prepareImage(transparent, config);
    assert.ok(
      flattened.data.every((v) => v === 255),
      'fully transparent becomes white',
    );
  });

  it('applies the EXIF orientation', async () => {
    // Left half red, right half blue; orientation 6 displays it rotated 90° clockwise: red on top.
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++)
      for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
    const bytes = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toBuffer();
    const out = await prepareImage(bytes, config);
    const top = out.data.subarray(0, 3);
    const bottom = out.data.subarray(31 * 32 * 3, 31 * 32 * 3 + 3);
    assert.ok(top[0]! > 200 && top[2]! < 60, `top ${[...top]}`);
    assert.ok(bottom[2]! > 200 && bottom[0]! < 60, `bottom ${[...bottom]}`);
  });

  it('resizes the shorter side then centre-crops', async () => {
    const crop = parseModelConfig(
      { name: 't', input: { name: 'x', size: 16 }, resize: { size: 20 }, output: { tensor: 'y' } },
      't',
    );
    const source = await png(80, 40, 3);
    const out = await prepareImage(source, crop);
    const expected = await sharp(source)
      .resize(40, 20, { fit: 'fill', kernel: 'linear' })
      .extract({ left: 12, top: 2, width: 16, height: 16 })
      .raw()
      .toBuffer();
    assert.ok(meanAbsDiff(out.data, expected) < 0.5);
  });

  it('refuses empty, truncated, corrupt and non-image input', async () => {
    await expectImageError(prepareImage(Buffer.alloc(0), config), 'EMPTY_IMAGE', /empty \(0 bytes\)/);
    const good = await jpeg(64, 64, 4);
    await expectImageError(
      prepareImage(good.subarray(0, good.length / 2), config),
      'CORRUPT_IMAGE',
      /truncated or corrupt/,
    );
    await expectImageError(
      prepareImage(Buffer.from('hello, not an image at all'), config),
      'UNSUPPORTED_IMAGE',
      /not an image in a format ris reads/,
    );
    const garbage = Buffer.from(good);
    garbage.fill(0x5a, 200, 600);
    await assert.rejects(prepareImage(garbage, config), ImageError);
    await expectImageError(
      prepareImage('/definitely/not/here.jpg', config),
      'IMAGE_NOT_FOUND',
      /There is no image file \/definitely\/not\/here\.jpg; check the path/,
    );
    await expectImageError(prepareImage(import.meta.dirname, config), 'IMAGE_UNREADABLE', /EISDIR/);
    await assert.rejects(
      prepareImage(42 as never, config),
      (e: unknown) => e instanceof ArgumentError && /received number 42/.test(e.message),
    );
  });

  it('refuses SVG and other vector formats', async () => {
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    );
    await expectImageError(prepareImage(svg, config), 'UNSUPPORTED_IMAGE', /SVG format are not supported/);
  });

  it('refuses images over the pixel limit (decompression bombs)', async () => {
    const big = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    await expectImageError(
      prepareImage(big, config, { limitInputPixels: 1_000_000 }),
      'IMAGE_TOO_LARGE',
      /9,000,000 pixels, more than the limit of 1,000,000/,
    );
  });

  it('checks the crop box instead of clamping it', async () => {
    const bytes = await png(50, 40, 5);
    await expectImageError(
      prepareImage(bytes, config, { crop: { left: 30, top: 0, width: 30, height: 10 } }),
      'CROP_OUT_OF_BOUNDS',
      /Crop box 30×10 at \(30, 0\) does not fit inside the 50×40 image/,
    );
    await expectImageError(
      prepareImage(bytes, config, { crop: { left: 0, top: 0, width: 0, height: 10 } }),
      'CROP_OUT_OF_BOUNDS',
      /non-empty/,
    );
    await assert.rejects(
      prepareImage(bytes, config, { crop: { left: 1.5, top: 0, width: 10, height: 10 } }),
      (e: unknown) =>
        e instanceof ArgumentError &&
        /crop.left to be a non-negative integer but received number 1.5/.test(e.message),
    );
    const cropped = await prepareImage(bytes, config, { crop: { left: 10, top: 10, width: 20, height: 20 } });
    const manual = await prepareImage(
      await sharp(pattern(50, 40, 5), { raw: { width: 50, height: 40, channels: 3 } })
        .extract({ left: 10, top: 10, width: 20, height: 20 })
        .png()
        .toBuffer(),
      config,
    );
    assert.ok(meanAbsDiff(cropped.data, manual.data) < 0.5);
  });
});
