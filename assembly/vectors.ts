// Distances between f32 and f16 rows, shared by the kernels of assembly/kernels.ts and assembly/rabitq.ts.

@inline export function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

@inline export function l2F32(q: usize, x: usize, d: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let k = 0;
  for (; k + 16 <= d; k += 16) {
    const o = <usize>k << 2;
    const t0 = f32x4.sub(v128.load(q + o), v128.load(x + o));
    const t1 = f32x4.sub(v128.load(q + o, 16), v128.load(x + o, 16));
    const t2 = f32x4.sub(v128.load(q + o, 32), v128.load(x + o, 32));
    const t3 = f32x4.sub(v128.load(q + o, 48), v128.load(x + o, 48));
    a0 = f32x4.add(a0, f32x4.mul(t0, t0));
    a1 = f32x4.add(a1, f32x4.mul(t1, t1));
    a2 = f32x4.add(a2, f32x4.mul(t2, t2));
    a3 = f32x4.add(a3, f32x4.mul(t3, t3));
  }
  for (; k + 4 <= d; k += 4) {
    const o = <usize>k << 2;
    const t = f32x4.sub(v128.load(q + o), v128.load(x + o));
    a0 = f32x4.add(a0, f32x4.mul(t, t));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; k < d; k++) {
    const o = <usize>k << 2;
    const t = load<f32>(q + o) - load<f32>(x + o);
    s += t * t;
  }
  return s;
}

@inline export function dotF32(q: usize, x: usize, d: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let k = 0;
  for (; k + 16 <= d; k += 16) {
    const o = <usize>k << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(q + o), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(q + o, 16), v128.load(x + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(q + o, 32), v128.load(x + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(q + o, 48), v128.load(x + o, 48)));
  }
  for (; k + 4 <= d; k += 4) {
    const o = <usize>k << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(q + o), v128.load(x + o)));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; k < d; k++) {
    const o = <usize>k << 2;
    s += load<f32>(q + o) * load<f32>(x + o);
  }
  return s;
}

/** Four f16 (bits at p) as f32x4: magnitude shifted into f32 position, rescaled by 2^112, sign put back. */
@inline export function f16x4(p: usize): v128 {
  const h = v128.load16x4_u(p);
  const sign = i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16);
  const magnitude = i32x4.shl(v128.and(h, i32x4.splat(0x7fff)), 13);
  return v128.or(f32x4.mul(magnitude, f32x4.splat(5.192296858534828e33)), sign);
}

@inline export function f16Scalar(bits: u32): f32 {
  const magnitude = reinterpret<f32>((bits & 0x7fff) << 13) * <f32>5.192296858534828e33;
  return reinterpret<f32>(reinterpret<u32>(magnitude) | ((bits & 0x8000) << 16));
}

@inline export function l2F16(q: usize, x: usize, d: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= d; k += 8) {
    const t0 = f32x4.sub(v128.load(q + (<usize>k << 2)), f16x4(x + (<usize>k << 1)));
    const t1 = f32x4.sub(v128.load(q + (<usize>k << 2), 16), f16x4(x + (<usize>k << 1) + 8));
    a0 = f32x4.add(a0, f32x4.mul(t0, t0));
    a1 = f32x4.add(a1, f32x4.mul(t1, t1));
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; k < d; k++) {
    const t = load<f32>(q + (<usize>k << 2)) - f16Scalar(load<u16>(x + (<usize>k << 1)));
    s += t * t;
  }
  return s;
}

@inline export function dotF16(q: usize, x: usize, d: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let k = 0;
  for (; k + 8 <= d; k += 8) {
    a0 = f32x4.add(a0, f32x4.mul(v128.load(q + (<usize>k << 2)), f16x4(x + (<usize>k << 1))));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(q + (<usize>k << 2), 16), f16x4(x + (<usize>k << 1) + 8)));
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; k < d; k++) s += load<f32>(q + (<usize>k << 2)) * f16Scalar(load<u16>(x + (<usize>k << 1)));
  return s;
}
