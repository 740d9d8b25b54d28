// The worker side of workerEngine: one onnxruntime session, forward passes on request.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { inputTensor, type ModelInput } from './inference.ts';

let session: ort.InferenceSession | undefined;
/**
 * Test-only: with RIS_TEST_INFERENCE_EXIT=n, the first worker of a process ends its thread on receiving its
 * n-th forward pass, with calls still waiting on it (what a crash looks like from the other side).
 */
const exitOnRun = workerData?.first ? Number(process.env.RIS_TEST_INFERENCE_EXIT ?? 0) : 0;
let runs = 0;
let names: { input: string; output: string } | undefined;

parentPort!.on('message', async (message: { type: string; [key: string]: unknown }) => {
  if (message.type === 'init') {
    try {
      session = await ort.InferenceSession.create(
        message.model as Uint8Array,
        message.options as ort.InferenceSession.SessionOptions,
      );
      names = { input: message.inputName as string, output: message.outputName as string };
      parentPort!.postMessage({ type: 'ready', inputNames: session.inputNames });
    } catch (error) {
      parentPort!.postMessage({
        type: 'error',
        id: -1,
        message: `onnxruntime cannot load the model: ${(error as Error).message}`,
      });
    }
    return;
  }
  if (message.type === 'run' && session && names) {
    const id = message.id as number;
    if (++runs === exitOnRun) process.exit(70);
    try {
      const tensor = inputTensor(message.data as ModelInput, message.dims as number[]);
      const outputs = await session.run({ [names.input]: tensor }, [names.output]);
      const output = outputs[names.output]!;
      const data = (output.data as Float32Array).slice(); // onnxruntime owns its buffer: send a copy
      parentPort!.postMessage({ type: 'result', id, data, dims: [...output.dims] }, [
        data.buffer as ArrayBuffer,
      ]);
    } catch (error) {
      parentPort!.postMessage({ type: 'error', id, message: (error as Error).message });
    }
  }
});
