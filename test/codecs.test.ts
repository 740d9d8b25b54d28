import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from '../src/ann/crc32.ts';
import { float16Table, toFloat16Bits } from '../src/ann/float16.ts';

const ascii = (text: string) => new TextEncoder().encode(text);

describe('CRC-32 (IEEE), known answers', () => {
  it('"123456789" is 0xCBF43926 and the empty input 0', () => {
    assert.equal(crc32(ascii('123456789')), 0xcbf43926);
    assert.equal(crc32(new Uint8Array(0)), 0);
  });

  it('agrees with zlib on other lengths (every tail of the four-byte slicing)', () => {
    assert.equal(crc32(ascii('The quick brown fox jumps over the lazy dog')), 0x414fa339);
    assert.equal(crc32(ascii('a')), 0xe8b7be43);
    assert.equal(crc32(ascii('abc')), 0x352441c2);
    assert.equal(crc32(ascii('message digest')), 0x20159d7f);
    assert.equal(crc32(new Uint8Array(32)), 0x190a55ad);
    assert.equal(crc32(new Uint8Array(32).fill(0xff)), 0xff6cab0b);
  });

  it('continues an earlier call: crc32(b, crc32(a)) = crc32(a + b)', () => {
    const whole = ascii('123456789');
    for (let cut = 0; cut <= whole.length; cut++) {
      assert.equal(crc32(whole.subarray(cut), crc32(whole.subarray(0, cut))), 0xcbf43926, `cut at ${cut}`);
    }
  });
});

describe('float16 (IEEE 754 half precision), known answers', () => {
  const cases: [string, number, number][] = [
    ['1', 1, 0x3c00],
    ['-2', -2, 0xc000],
    ['1/3 (rounds down)', 1 / 3, 0x3555],
    ['the largest finite, 65504', 65504, 0x7bff],
    ['65519 (rounds down to 65504)', 65519, 0x7bff],
    ['65520 (halfway to 65536: overflows to Infinity)', 65520, 0x7c00],
    ['1e6 (beyond the range)', 1e6, 0x7c00],
    ['-1e6', -1e6, 0xfc00],
    ['the smallest normal, 6.103515625e-05', 6.103515625e-5, 0x0400],
    ['the largest subnormal', 1023 * 2 ** -24, 0x03ff],
    ['the smallest subnormal, 5.960464477539063e-08', 5.9604644775390625e-8, 0x0001],
    ['half the smallest subnormal (a tie: to even, 0)', 2 ** -25, 0x0000],
    ['0.75 of the smallest subnormal (rounds up)', 0.75 * 2 ** -24, 0x0001],
    ['1.5 × the smallest subnormal (a tie: to even, 2)', 1.5 * 2 ** -24, 0x0002],
    ['2.5 × the smallest subnormal (a tie: to even, 2)', 2.5 * 2 ** -24, 0x0002],
    ['1 + 2⁻¹¹ (a tie: to even, 1)', 1 + 2 ** -11, 0x3c00],
    ['1 + 3·2⁻¹¹ (a tie: to even, 1 + 2⁻⁹)', 1 + 3 * 2 ** -11, 0x3c02],
    ['1 + 2⁻¹¹ + 2⁻²⁰ (just past the tie: up)', 1 + 2 ** -11 + 2 ** -20, 0x3c01],
    ['2047.9 (rounds up into the next exponent: 2048)', 2047.9, 0x6800],
    ['0', 0, 0x0000],
    ['-0', -0, 0x8000],
    ['Infinity', Number.POSITIVE_INFINITY, 0x7c00],
    ['-Infinity', Number.NEGATIVE_INFINITY, 0xfc00],
  ];
  for (const [name, value, bits] of cases) {
    it(`encodes ${name} as 0x${bits.toString(16).padStart(4, '0')}`, () => {
      assert.equal(toFloat16Bits(value), bits);
    });
  }

  it('encodes NaN as a NaN (all exponent bits, a non-zero mantissa)', () => {
    const bits = toFloat16Bits(Number.NaN);
    assert.equal(bits & 0x7c00, 0x7c00);
    assert.notEqual(bits & 0x03ff, 0);
  });

  it('decodes the boundary values', () => {
    assert.equal(float16Table[0x7bff], 65504);
    assert.equal(float16Table[0xfbff], -65504);
    assert.equal(float16Table[0x0400], 6.103515625e-5);
    assert.equal(float16Table[0x0001], 5.9604644775390625e-8);
    assert.equal(float16Table[0x03ff], 1023 * 2 ** -24);
    assert.equal(float16Table[0x3c00], 1);
    assert.equal(float16Table[0x3555], 0.333251953125);
    assert.ok(Object.is(float16Table[0x0000], 0));
    assert.ok(Object.is(float16Table[0x8000], -0));
    assert.equal(float16Table[0x7c00], Number.POSITIVE_INFINITY);
    assert.equal(float16Table[0xfc00], Number.NEGATIVE_INFINITY);
    assert.ok(Number.isNaN(float16Table[0x7e00]!));
    assert.ok(Number.isNaN(float16Table[0xfc01]!));
  });

  it('round-trips every one of the 63,490 non-NaN half values exactly', () => {
    let checked = 0;
    for (let h = 0; h < 65536; h++) {
      const value = float16Table[h]!;
      if (Number.isNaN(value)) continue;
      assert.equal(toFloat16Bits(value), h, `0x${h.toString(16)} (${value})`);
      checked++;
    }
    assert.equal(checked, 65536 - 2 * 1023);
  });
});
