import { base64ToBytes } from './base64.ts';
import { JsKernels } from './js.ts';
import type { Kernels, ResidentMatrix } from './types.ts';
import { WasmKernels } from './wasm.ts';
import { kernelsWasmBase64 } from './wasm-bytes.generated.ts';

export { JsKernels } from './js.ts';
export { JsGraph } from './js-graph.ts';
export type {
  CodeScanner,
  GraphKernel,
  GraphShape,
  GraphStorage,
  GraphTrace,
  Kernels,
  Operand,
  ResidentMatrix,
} from './types.ts';

let active: Kernels | undefined;

/** The WebAssembly SIMD kernels, or undefined where the platform lacks WebAssembly SIMD. */
export function createWasmKernels(): Kernels | undefined {
  try {
    const bytes = base64ToBytes(kernelsWasmBase64);
    if (typeof WebAssembly === 'undefined' || !WebAssembly.validate(bytes)) return undefined;
    return new WasmKernels(new WebAssembly.Module(bytes));
  } catch {
    return undefined;
  }
}

/** The kernels in use: WebAssembly SIMD where available, else plain TypeScript. */
export function kernels(): Kernels {
  active ??= createWasmKernels() ?? new JsKernels();
  return active;
}

/** Chooses the kernels explicitly ('js' forces the TypeScript fallback); returns the name now in use. */
export function useKernels(kind: 'wasm-simd' | 'js'): Kernels['name'] {
  active = kind === 'js' ? new JsKernels() : (createWasmKernels() ?? new JsKernels());
  return active.name;
}

/**
 * `cached` when the kernels `K` made it, else a new resident copy of `data` on `K` (the stale one given
 * back): a matrix kept across calls must follow `useKernels`, or every call would copy it in again.
 */
export function residentOn(
  K: Kernels,
  cached: ResidentMatrix | undefined,
  data: Float32Array,
): ResidentMatrix {
  if (cached?.owner === K) return cached;
  cached?.dispose();
  return K.resident(data);
}
