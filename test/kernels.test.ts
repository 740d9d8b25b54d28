import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWasmKernels, JsKernels } from '../src/ann/kernels/index.ts';
import { Random } from '../src/ann/random.ts';

const wasm = createWasmKernels();
const js = new JsKernels();
const random = new Random(3);
const matrix = (n: number) => new Float32Array(n).map(() => random.gaussian());

function close(actual: Float32Array, expected: Float32Array, tolerance = 1e-4) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    const scale = Math.max(1, Math.abs(expected[i]!));
    assert.ok(
      Math.abs(actual[i]! - expected[i]!) <= tolerance * scale,
      `element ${i}: ${actual[i]} vs ${expected[i]}`,
    );
  }
}

describe('kernels', () => {
  it('loads the WebAssembly SIMD build on Node', () => {
    assert.ok(wasm, 'WebAssembly SIMD kernels should load on Node 20');
    assert.equal(wasm.name, 'wasm-simd');
  });

  for (const [m, n, d] of [
    [1, 1, 1],
    [7, 5, 13],
    [9, 300, 160],
    [33, 17, 1280],
  ] as const) {
    it(`gemmNT agrees with the TypeScript fallback for ${m}×${d} · (${n}×${d})ᵀ`, () => {
      const a = matrix(m * d);
      const b = matrix(n * d);
      const expected = new Float32Array(m * n);
      const actual = new Float32Array(m * n);
      js.gemmNT({ source: a }, m, { source: b }, n, d, expected);
      wasm!.gemmNT({ source: a }, m, { source: wasm!.resident(b) }, n, d, actual);
      close(actual, expected);
    });
  }

  it('gemmNT honours offsets, strides and an output stride (sub-spaces of a wider matrix)', () => {
    const D = 24;
    const a = matrix(10 * D);
    const b = matrix(6 * 8);
    const expected = new Float32Array(10 * 12).fill(9);
    const actual = new Float32Array(10 * 12).fill(9);
    js.gemmNT({ source: a, offset: 8, stride: D }, 10, { source: b }, 6, 8, expected.subarray(3), 12);
    wasm!.gemmNT({ source: a, offset: 8, stride: D }, 10, { source: b }, 6, 8, actual.subarray(3), 12);
    close(actual, expected);
    assert.equal(actual[0], 9, 'cells outside the rows written stay untouched');
  });

  it('nearest finds the same centroids as the fallback', () => {
    const d = 36;
    const x = matrix(203 * d);
    const c = matrix(19 * d);
    const norms = new Float32Array(19).map((_, j) =>
      c.subarray(j * d, j * d + d).reduce((s, v) => s + v * v, 0),
    );
    const labels = [new Int32Array(203), new Int32Array(203)];
    const values = [new Float32Array(203), new Float32Array(203)];
    js.nearest({ source: x }, 203, { source: c }, 19, d, norms, labels[0]!, values[0]!);
    wasm!.nearest({ source: wasm!.resident(x) }, 203, { source: c }, 19, d, norms, labels[1]!, values[1]!);
    assert.deepEqual(labels[1], labels[0]);
    close(values[1]!, values[0]!);
  });

  it('gives resident memory back for reuse', () => {
    const big = matrix(1 << 16);
    for (let i = 0; i < 50; i++) wasm!.resident(big).dispose();
    const out = new Float32Array(1);
    wasm!.gemmNT({ source: big.subarray(0, 4) }, 1, { source: big.subarray(0, 4) }, 1, 4, out);
    close(out, Float32Array.of(big.subarray(0, 4).reduce((s, v) => s + v * v, 0)));
  });
});

describe('code scanner', () => {
  for (const M of [3, 8, 16]) {
    it(`ranks ${M}-byte codes as the TypeScript fallback does, with and without partition terms`, () => {
      const terms = matrix(5 * M * 256);
      const query = matrix(M * 256);
      for (const n of [1, 100, 300, 2000]) {
        const codes = Uint8Array.from({ length: n * M }, () => random.int(256));
        for (const row of [-1, 0, 4]) {
          const expected = new Float32Array(n);
          const actual = new Float32Array(n);
          const a = js.codeScanner(M, terms);
          a.setQuery(query);
          a.scan(codes, n, row, 1.5, expected);
          const b = wasm!.codeScanner(M, terms);
          b.setQuery(query);
          b.scan(codes, n, row, 1.5, actual);
          b.dispose();
          close(actual, expected);
          // Spot-check the definition itself.
          let s = 1.5;
          for (let m = 0; m < M; m++)
            s += query[m * 256 + codes[m]!]! + (row >= 0 ? terms[(row * M + m) * 256 + codes[m]!]! : 0);
          assert.ok(Math.abs(expected[0]! - s) < 1e-3);
        }
      }
    });
  }
});

describe('nearest on short vectors (the packed kernel)', () => {
  for (const [m, n, d] of [
    [50, 256, 4],
    [33, 7, 8],
    [20, 13, 40],
  ] as const) {
    it(`matches the fallback for ${m} points, ${n} centroids, ${d} dimensions (strided centroids too)`, () => {
      const x = matrix(m * d);
      const wide = matrix(n * (d + 3));
      const norms = new Float32Array(n).map((_, j) => {
        let s = 0;
        for (let t = 0; t < d; t++) s += wide[j * (d + 3) + 1 + t]! ** 2;
        return s;
      });
      const centroids = { source: wide, offset: 1, stride: d + 3 };
      const expected = [new Int32Array(m), new Float32Array(m)] as const;
      const actual = [new Int32Array(m), new Float32Array(m)] as const;
      js.nearest({ source: x }, m, centroids, n, d, norms, ...expected);
      wasm!.nearest({ source: x }, m, centroids, n, d, norms, ...actual);
      assert.deepEqual(actual[0], expected[0]);
      close(actual[1], expected[1]);
    });
  }

  it('breaks ties towards the lowest centroid index', () => {
    const d = 4;
    const centroids = new Float32Array(9 * d).fill(1); // nine identical centroids
    const norms = new Float32Array(9).fill(4);
    const labels = new Int32Array(1);
    wasm!.nearest(
      { source: Float32Array.of(1, 1, 1, 1) },
      1,
      { source: centroids },
      9,
      d,
      norms,
      labels,
      new Float32Array(1),
    );
    assert.equal(labels[0], 0);
  });
});
