import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';

/** Runs the network: in this thread, or in a worker so the event loop stays free while it computes. */
export interface InferenceEngine {
  readonly inputNames: readonly string[];
  /** One forward pass; `input` is handed over (its buffer may be transferred and unusable afterwards). */
  run(input: Float32Array, dims: number[]): Promise<{ data: Float32Array; dims: number[] }>;
  release(): Promise<void>;
}

export interface EngineInit {
  model: Uint8Array;
  options: ort.InferenceSession.SessionOptions;
  inputName: string;
  outputName: string;
}

/** onnxruntime-node runs a session synchronously on the calling thread (behind a setImmediate). */
export async function inProcessEngine(init: EngineInit): Promise<InferenceEngine> {
  const session = await ort.InferenceSession.create(init.model, init.options);
  return {
    inputNames: session.inputNames,
    async run(input, dims) {
      const outputs = await session.run({ [init.inputName]: new ort.Tensor('float32', input, dims) }, [
        init.outputName,
      ]);
      const output = outputs[init.outputName]!;
      return { data: output.data as Float32Array, dims: [...output.dims] };
    },
    release: () => session.release(),
  };
}

type Reply =
  | { type: 'ready'; inputNames: string[] }
  | { type: 'result'; id: number; data: Float32Array; dims: number[] }
  | { type: 'error'; id: number; message: string };

/**
 * The session lives in a worker thread: a forward pass no longer blocks this thread's event loop (a
 * server keeps answering, decoding keeps feeding), and tensors cross by transfer, not by copy.
 */
export async function workerEngine(init: EngineInit): Promise<InferenceEngine> {
  const entry = new URL(
    `./inference-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`,
    import.meta.url,
  ).href;
  const worker = new Worker(new URL('../node/ts-worker.mjs', import.meta.url), { workerData: { entry } });
  const pending = new Map<
    number,
    { resolve: (r: { data: Float32Array; dims: number[] }) => void; reject: (e: Error) => void }
  >();
  let nextId = 0;
  let failure: Error | undefined;
  const ready = new Promise<string[]>((resolve, reject) => {
    worker.on('message', (reply: Reply) => {
      if (reply.type === 'ready') resolve(reply.inputNames);
      else {
        const waiting = pending.get(reply.id);
        pending.delete(reply.id);
        if (reply.type === 'result') waiting?.resolve({ data: reply.data, dims: reply.dims });
        else {
          const error = new ModelError('INVALID_MODEL', reply.message);
          if (reply.id < 0) reject(error);
          waiting?.reject(error);
        }
      }
    });
    worker.on('error', (error) => {
      failure = error;
      reject(error);
      for (const p of pending.values()) p.reject(error);
      pending.clear();
    });
  });
  const model = init.model.slice(); // a copy the worker can own
  worker.postMessage(
    { type: 'init', model, options: init.options, inputName: init.inputName, outputName: init.outputName },
    [model.buffer],
  );
  const inputNames = await ready;
  // Idle, the worker must not keep the process alive (an embedder nobody closed); busy, it must.
  const settle = () => {
    if (pending.size === 0) worker.unref();
  };
  settle();
  return {
    inputNames,
    run(input, dims) {
      if (failure) return Promise.reject(failure);
      const id = nextId++;
      worker.ref();
      return new Promise((resolve, reject) => {
        pending.set(id, {
          resolve: (result) => {
            resolve(result);
            settle();
          },
          reject: (error) => {
            reject(error);
            settle();
          },
        });
        // Views into a shared pool (Buffer) cannot be transferred; copy those, hand over the rest.
        const owned =
          input.byteOffset === 0 && input.byteLength === input.buffer.byteLength ? input : input.slice();
        worker.postMessage({ type: 'run', id, data: owned, dims }, [owned.buffer as ArrayBuffer]);
      });
    },
    async release() {
      await worker.terminate();
    },
  };
}
