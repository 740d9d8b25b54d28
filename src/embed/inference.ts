import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ModelError } from '../errors.ts';

/** Runs the network: in this thread, or in a worker so the event loop stays free while it computes. */
export interface InferenceEngine {
  readonly inputNames: readonly string[];
  /**
   * One forward pass: float32 pixels, or int64 token ids. `input` is handed over (its buffer may be
   * transferred and unusable afterwards).
   */
  run(input: ModelInput, dims: number[]): Promise<{ data: Float32Array; dims: number[] }>;
  release(): Promise<void>;
}

export type ModelInput = Float32Array | BigInt64Array;

/** The tensor onnxruntime gets for an input. */
export function inputTensor(input: ModelInput, dims: number[]): ort.Tensor {
  return input instanceof BigInt64Array
    ? new ort.Tensor('int64', input, dims)
    : new ort.Tensor('float32', input, dims);
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
      let outputs: ort.InferenceSession.OnnxValueMapType;
      try {
        outputs = await session.run({ [init.inputName]: inputTensor(input, dims) }, [init.outputName]);
      } catch (error) {
        throw new ModelError(
          'INFERENCE_FAILED',
          `onnxruntime failed to run the model: ${(error as Error).message}`,
        );
      }
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

interface Pending {
  resolve: (r: { data: Float32Array; dims: number[] }) => void;
  reject: (e: Error) => void;
}

/** One worker thread holding one onnxruntime session. */
class InferenceWorker {
  readonly inputNames: Promise<string[]>;
  /** Set once the thread is gone (crashed, killed or terminated): no call can be answered any more. */
  stopped: ModelError | undefined;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;

  constructor(init: EngineInit, model: Uint8Array, first = false) {
    const entry = new URL(
      `./inference-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`,
      import.meta.url,
    ).href;
    this.worker = new Worker(new URL('../node/ts-worker.mjs', import.meta.url), {
      workerData: { entry, first },
      // onnxruntime runs on this thread, and can recurse deeper than Node's default 4 MB worker stack
      // (43,000 frames in one batch sequence of mobilenetv2-int8): the whole process died of SIGSEGV.
      // The stack is reserved, not used: only what the recursion touches is backed by memory.
      resourceLimits: { stackSizeMb: 64 },
    });
    this.inputNames = new Promise<string[]>((resolve, reject) => {
      this.worker.on('message', (reply: Reply) => {
        if (reply.type === 'ready') return resolve(reply.inputNames);
        if (reply.type === 'error' && reply.id < 0) {
          reject(new ModelError('INVALID_MODEL', reply.message));
          void this.worker.terminate(); // nothing more to do for a worker without a session
          return;
        }
        const waiting = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (reply.type === 'result') waiting?.resolve({ data: reply.data, dims: reply.dims });
        else
          waiting?.reject(
            new ModelError('INFERENCE_FAILED', `onnxruntime failed to run the model: ${reply.message}`),
          );
        this.settle();
      });
      // A crash (an uncaught error, an abort in native code) or a kill: fail everything that waits.
      const stop = (why: string) => {
        if (this.stopped) return;
        this.stopped = new ModelError(
          'INFERENCE_FAILED',
          `The inference worker stopped (${why}) before answering; try again: the next call starts a new one`,
        );
        reject(this.stopped);
        for (const p of this.pending.values()) p.reject(this.stopped);
        this.pending.clear();
        for (const resolve of this.idleWaiters.splice(0)) resolve();
      };
      this.worker.on('error', (error) => stop(error.message));
      this.worker.on('exit', (code) => stop(`exit code ${code}`));
    });
    this.worker.postMessage(
      { type: 'init', model, options: init.options, inputName: init.inputName, outputName: init.outputName },
      [model.buffer as ArrayBuffer],
    );
  }

  run(input: ModelInput, dims: number[]): Promise<{ data: Float32Array; dims: number[] }> {
    if (this.stopped) return Promise.reject(this.stopped);
    const id = this.nextId++;
    this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // Views into a shared pool (Buffer) cannot be transferred; copy those, hand over the rest.
      const owned =
        input.byteOffset === 0 && input.byteLength === input.buffer.byteLength ? input : input.slice();
      this.worker.postMessage({ type: 'run', id, data: owned, dims }, [owned.buffer as ArrayBuffer]);
    });
  }

  /** Idle, the worker must not keep the process alive (an embedder nobody closed); busy, it must. */
  settle(): void {
    if (this.pending.size === 0) {
      this.worker.unref();
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  private readonly idleWaiters: (() => void)[] = [];

  /** Resolves once no forward pass is in flight (stopping a thread inside onnxruntime aborts the process). */
  idle(): Promise<void> {
    if (this.pending.size === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The worker's thread id, for tests that stop it from outside. */
  get threadId(): number {
    return this.worker.threadId;
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

/**
 * The session lives in a worker thread: a forward pass no longer blocks this thread's event loop (a
 * server keeps answering, decoding keeps feeding), and tensors cross by transfer, not by copy. When the
 * worker dies, the calls waiting on it fail with INFERENCE_FAILED and the next call starts a new worker
 * (from `reload`, which gives the model's bytes again).
 */
export async function workerEngine(
  init: EngineInit & { reload: () => Promise<Uint8Array> },
): Promise<InferenceEngine & { readonly worker: { threadId: number; terminate(): Promise<number> } }> {
  let current = new InferenceWorker(init, init.model.slice(), true);
  const inputNames = await current.inputNames;
  current.settle();
  let restarting: Promise<InferenceWorker> | undefined;
  let released = false;
  const healthy = async (): Promise<InferenceWorker> => {
    if (!current.stopped) return current;
    if (released) throw new ModelError('INFERENCE_FAILED', 'The embedder was closed; create a new one');
    restarting ??= init.reload().then(async (model) => {
      const next = new InferenceWorker(init, model);
      await next.inputNames;
      next.settle();
      current = next;
      restarting = undefined;
      return next;
    });
    return restarting.catch((error) => {
      restarting = undefined;
      throw error;
    });
  };
  return {
    inputNames,
    get worker() {
      return current;
    },
    run(input, dims) {
      // A healthy worker gets the call at once (in this tick); a dead one is replaced first.
      const ask = (worker: InferenceWorker) => worker.run(input, dims).finally(() => worker.settle());
      return current.stopped ? healthy().then(ask) : ask(current);
    },
    async release() {
      released = true;
      await current.idle();
      await current.terminate();
    },
  };
}
