import { JsKernels } from './js.ts';
import type { Kernels } from './types.ts';
import { WasmKernels } from './wasm.ts';
import { kernelsWasmBase64 } from './wasm-bytes.generated.ts';

export { JsKernels } from './js.ts';
export type { CodeScanner, Kernels, Operand, ResidentMatrix } from './types.ts';

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

function base64ToBytes(base64: string): Uint8Array<ArrayBuffer> {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
