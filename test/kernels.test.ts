import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readRow, writeRows } from '../src/ann/hnsw-storage.ts';
import { createWasmKernels, JsKernels, residentOn } from '../src/ann/kernels/index.ts';
import type { GraphKernel, GraphShape } from '../src/ann/kernels/types.ts';
import type { WasmKernels } from '../src/ann/kernels/wasm.ts';
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

  it('gives resident memory back for reuse (memory and allocator top stay flat over many cycles)', () => {
    const kernels = createWasmKernels() as WasmKernels;
    const sizes = [1 << 16, 3 << 14, 1 << 12, 5 << 15];
    const cycle = () => {
      // Interleaved lifetimes, so blocks are given back out of order and must merge again.
      const held = sizes.map((n) => kernels.resident(matrix(n)));
      held[1]!.dispose();
      held[3]!.dispose();
      held[0]!.dispose();
      held[2]!.dispose();
      const scanner = kernels.codeScanner(8, matrix(3 * 8 * 256));
      scanner.setQuery(matrix(8 * 256));
      scanner.scan(new Uint8Array(2000 * 8), 2000, 1, 0, new Float32Array(2000));
      scanner.dispose();
    };
    const start = kernels.memoryStats();
    cycle();
    const warm = kernels.memoryStats();
    assert.equal(warm.top, start.top, 'every block of one cycle is given back');
    for (let i = 0; i < 50; i++) cycle();
    const end = kernels.memoryStats();
    assert.equal(end.top, start.top);
    assert.equal(
      end.memoryBytes,
      warm.memoryBytes,
      `memory grew from ${warm.memoryBytes} to ${end.memoryBytes} bytes`,
    );
    // Disposing twice gives nothing back twice.
    const once = kernels.resident(matrix(1024));
    once.dispose();
    once.dispose();
    assert.equal(kernels.memoryStats().top, start.top);
  });

  it("uses another instance's resident matrix correctly (copies it in instead of reading foreign memory)", () => {
    const a = createWasmKernels()!;
    const b = createWasmKernels()!;
    const d = 40;
    const x = matrix(30 * d);
    const y = matrix(7 * d);
    // Fill b's memory where a's resident lives with something else, so reading it there would be wrong.
    const decoy = b.resident(matrix(30 * d));
    const resident = a.resident(x);
    const expected = new Float32Array(7 * 30);
    const actual = new Float32Array(7 * 30);
    js.gemmNT({ source: y }, 7, { source: x }, 30, d, expected);
    b.gemmNT({ source: y }, 7, { source: resident }, 30, d, actual);
    close(actual, expected);
    assert.equal(resident.owner, a);
    assert.equal(residentOn(b, resident, x).owner, b, 'residentOn re-makes it on the kernels in use');
    decoy.dispose();
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

describe('HNSW graph kernels', () => {
  const n = 600;
  const levelOf = (node: number) => (node % 61 === 0 ? 2 : node % 13 === 0 ? 1 : 0);

  /** A graph on `kernels` holding `data`'s rows, nodes linked by inserting them in order. */
  function buildGraph(
    kernels: ReturnType<typeof createWasmKernels> & object,
    shape: GraphShape,
    data: Float32Array,
    insert = true,
  ): { graph: GraphKernel; entry: number; maxLevel: number } {
    const m = shape.m;
    let upperWords = 0;
    const offsets: number[] = [];
    for (let v = 0; v < n; v++) {
      offsets.push(upperWords);
      upperWords += levelOf(v) * (m + 1);
    }
    const graph = kernels.graph(shape, n, upperWords);
    writeRows(graph, shape.storage, 0, 0, data, n, shape.dimension);
    graph.upperOffset().set(offsets);
    let entry = 0;
    let maxLevel = levelOf(0);
    if (!insert) return { graph, entry, maxLevel };
    for (let v = 1; v < n; v++) {
      graph.insert(v, levelOf(v), entry, maxLevel, 40, false);
      if (levelOf(v) > maxLevel) {
        entry = v;
        maxLevel = levelOf(v);
      }
    }
    return { graph, entry, maxLevel };
  }

  /** Copies one graph's memory into another of the same shape. */
  function copyInto(from: GraphKernel, to: GraphKernel): void {
    to.blocks().set(from.blocks().subarray(0, to.blocks().length));
    to.terms().set(from.terms().subarray(0, to.terms().length));
    to.quantizer().set(from.quantizer());
    to.upperOffset().set(from.upperOffset().subarray(0, to.upperOffset().length));
    to.upper().set(from.upper().subarray(0, to.upper().length));
    to.deleted().set(from.deleted().subarray(0, to.deleted().length));
  }

  for (const storage of ['float32', 'float16', 'int8'] as const) {
    for (const dot of [false, true]) {
      const metric = dot ? 'dot' : 'l2';
      it(`${storage} ${metric}: distances, searches, traces and repairs agree with the TypeScript kernel`, () => {
        // Its own generator, so a test's data does not depend on how far the others got.
        const own = new Random(11);
        const matrix = (length: number) => new Float32Array(length).map(() => own.gaussian());
        const dimension = 37; // a tail after the 16-wide SIMD steps
        const shape: GraphShape = { dimension, storage, dot, m: 6 };
        const data = matrix(n * dimension);
        const reference = buildGraph(js, shape, data);
        const actual = buildGraph(wasm!, shape, data, false);
        copyInto(reference.graph, actual.graph);
        const { entry, maxLevel } = reference;
        for (let qi = 0; qi < 20; qi++) {
          const query = matrix(dimension);
          for (const node of [0, 1, 17, 599]) {
            const expected = reference.graph.distance(query, node);
            const got = actual.graph.distance(query, node);
            assert.ok(
              Math.abs(got - expected) <= 1e-4 * (1 + Math.abs(expected)),
              `node ${node}: ${got} vs ${expected}`,
            );
          }
          reference.graph.startTrace(10_000);
          actual.graph.startTrace(10_000);
          const foundJs = reference.graph.search(query, 12, entry, maxLevel, false);
          const foundWasm = actual.graph.search(query, 12, entry, maxLevel, false);
          const traceJs = reference.graph.endTrace();
          const traceWasm = actual.graph.endTrace();
          assert.equal(foundWasm, foundJs);
          assert.deepEqual(actual.graph.resultNodes(foundWasm), reference.graph.resultNodes(foundJs));
          close(actual.graph.resultDistances(foundWasm), reference.graph.resultDistances(foundJs));
          assert.equal(traceWasm.count, traceJs.count);
          assert.deepEqual(traceWasm.kinds, traceJs.kinds);
          assert.deepEqual(traceWasm.to, traceJs.to);
          assert.deepEqual(traceWasm.from, traceJs.from);
          close(traceWasm.distances, traceJs.distances);
        }
        // Tombstones: searches skip them, and repairs replace the links to them the same way.
        for (const g of [reference.graph, actual.graph]) for (let v = 5; v < n; v += 7) g.deleted()[v] = 1;
        const query = matrix(dimension);
        const found = reference.graph.search(query, 12, entry, maxLevel, true);
        assert.deepEqual(
          actual.graph.resultNodes(actual.graph.search(query, 12, entry, maxLevel, true)),
          reference.graph.resultNodes(found),
        );
        for (const v of reference.graph.resultNodes(found)) assert.notEqual(v % 7, 5 % 7);
        for (const v of [1, 2, 3, 13]) {
          assert.equal(actual.graph.repair(v, 0, 40), reference.graph.repair(v, 0, 40));
        }
        assert.deepEqual(
          actual.graph.words(),
          reference.graph.words().subarray(0, actual.graph.words().length),
        );
      });
    }
  }

  for (const dimension of [1280, 4096]) {
    it(`int8 l2 in ${dimension} dimensions: distances of the dequantized rows, every code 255 included (no 32-bit sum overflows)`, () => {
      // Rows 0 and 1 set every range (codes 0 and 255): row 1 prepared as an insertion's query has every
      // weight at the largest the kernels allow, and against itself every product is the largest.
      const own = new Random(5);
      const rows = 40;
      const data = new Float32Array(rows * dimension).map(() => own.gaussian());
      data.fill(-3, 0, dimension).fill(3, dimension, 2 * dimension);
      const shape: GraphShape = { dimension, storage: 'int8', dot: false, m: 4 };
      const near = data.slice(5 * dimension, 6 * dimension).map((v) => v + 0.01 * own.gaussian());
      const queries = [new Float32Array(dimension).fill(-50), near, matrix(dimension)];
      for (const [name, kernels] of [
        ['wasm', wasm!],
        ['js', js],
      ] as const) {
        const graph = kernels.graph(shape, rows, 1);
        writeRows(graph, 'int8', 0, 0, data, rows, dimension);
        const lo = graph.quantizer().subarray(0, dimension);
        const decoded = Array.from({ length: rows }, (_, node) => readRow(graph, 'int8', node, dimension));
        // What the kernels' sums cancel down to a distance (‖q − lo‖² + ‖x̂ − lo‖²): the errors scale with it.
        const size = (v: Float32Array) => v.reduce((sum, x, j) => sum + (x - lo[j]!) ** 2, 0);
        const l2 = (a: Float32Array, b: Float32Array) => a.reduce((sum, x, j) => sum + (x - b[j]!) ** 2, 0);
        for (const query of queries) {
          for (let node = 0; node < rows; node++) {
            const exact = l2(query, decoded[node]!);
            const got = graph.distance(query, node);
            // A user's query keeps f32 weights: float32 rounding only.
            const bound = 1e-6 * (size(query) + size(decoded[node]!));
            assert.ok(Math.abs(got - exact) <= bound, `${name} node ${node}: ${got} vs ${exact}`);
          }
        }
        // A row prepared as a query keeps its weights w_j = scale_j² c_j as i16: each within half a unit,
        // a unit at most 1/8,192 of the largest weight there can be (up to 4,096 dimensions).
        const scale = graph.quantizer().subarray(dimension);
        const unit = (255 * scale.reduce((most, s) => Math.max(most, s * s), 0)) / 8192;
        for (const from of [1, 0, 2, 5, 39]) {
          for (let to = 0; to < rows; to++) {
            const exact = l2(decoded[from]!, decoded[to]!);
            const got = graph.nodeDistance(from, to);
            const codes = decoded[to]!.reduce((sum, x, j) => sum + (x - lo[j]!) / scale[j]!, 0);
            const bound = unit * codes + 1e-6 * (size(decoded[from]!) + size(decoded[to]!));
            assert.ok(Math.abs(got - exact) <= bound, `${name} ${from} → ${to}: ${got} vs ${exact}`);
          }
        }
        graph.dispose();
      }
    });
  }

  it('int8 codes are round((x − lo) / scale), ties up, where x · (1 / scale) falls on the other side of a tie', () => {
    // Ranges 0…12,495 make every scale 49: x = 49k + 24.5 is a tie (k + 1 exactly), and x · (1/49) falls
    // below it for 154 of the 255 k.
    const dimension = 64;
    const rows = 12;
    const data = new Float32Array(rows * dimension);
    data.fill(12495, dimension, 2 * dimension);
    for (let i = 2; i < rows; i++)
      for (let j = 0; j < dimension; j++) data[i * dimension + j] = 49 * ((i * dimension + j) % 255) + 24.5;
    const graph = js.graph({ dimension, storage: 'int8', dot: false, m: 4 }, rows, 1);
    writeRows(graph, 'int8', 0, 0, data, rows, dimension);
    const codes = graph.blocks();
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < dimension; j++) {
        const expected = Math.round(data[i * dimension + j]! / 49);
        assert.equal(codes[i * graph.blockBytes + j], expected, `row ${i}, dimension ${j}`);
      }
  });

  it('refuses a graph beyond 4 GiB of WebAssembly memory, saying what to do', () => {
    const shape: GraphShape = { dimension: 4096, storage: 'float32', dot: false, m: 16 };
    assert.throws(
      () => wasm!.graph(shape, 300_000, 1),
      /Expected an HNSW graph to fit in 4 GiB of WebAssembly memory but 300000 vectors of 4096 dimensions as float32 need 4\.\d GiB; use storage: 'int8'/,
    );
  });

  it('inserting builds the same graph as the TypeScript kernel (float32 l2)', () => {
    const shape: GraphShape = { dimension: 16, storage: 'float32', dot: false, m: 6 };
    const data = matrix(n * 16);
    const a = buildGraph(js, shape, data).graph;
    const b = buildGraph(wasm!, shape, data).graph;
    // Rounding (float64 sums rounded once against float32 sums) may flip a near tie: nearly all lists agree.
    let same = 0;
    const stride = a.blockBytes / 4;
    const link = a.linkOffset / 4;
    for (let v = 0; v < n; v++) {
      const at = v * stride + link;
      const list = (words: Uint32Array) => Array.from(words.subarray(at, at + 1 + words[at]!));
      if (JSON.stringify(list(a.words())) === JSON.stringify(list(b.words()))) same++;
    }
    assert.ok(same >= n * 0.98, `${same} of ${n} level-0 link lists agree`);
  });
});
