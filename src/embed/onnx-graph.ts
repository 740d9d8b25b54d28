import onnxProto from 'onnx-proto';
import { ModelError } from '../errors.ts';

const { onnx } = onnxProto;
export type ModelProto = onnxProto.onnx.ModelProto;

/** Parses an ONNX model (protobuf) from its bytes. */
export function readModel(bytes: Uint8Array, name = 'model'): ModelProto {
  try {
    return onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new ModelError(
      'INVALID_MODEL',
      `${name} is not a valid ONNX model (${(error as Error).message}); download it again`,
    );
  }
}

export function writeModel(model: ModelProto): Uint8Array {
  return onnx.ModelProto.encode(model).finish();
}

/** Every tensor name the graph produces or holds: inputs, initializers and node outputs. */
export function tensorNames(model: ModelProto): Set<string> {
  const graph = model.graph!;
  const names = new Set<string>();
  for (const input of graph.input ?? []) names.add(input.name!);
  for (const init of graph.initializer ?? []) names.add(init.name!);
  for (const node of graph.node ?? []) for (const out of node.output ?? []) names.add(out);
  return names;
}

/**
 * Makes an internal tensor a graph output, so a classifier yields its features. With `dequantize`, the
 * tensor is quantized (uint8 with a scale and zero point) and a DequantizeLinear node turns it into
 * floats first. Returns the name of the new output.
 */
export function exposeTensor(
  model: ModelProto,
  tensor: string,
  dequantize?: { scale: string; zeroPoint: string },
): string {
  const graph = model.graph!;
  const names = tensorNames(model);
  for (const name of [tensor, dequantize?.scale, dequantize?.zeroPoint]) {
    if (name !== undefined && !names.has(name)) {
      const sample = [...names].filter((n) => !n.includes('_weight') && !n.includes('_bias')).slice(-8);
      throw new ModelError(
        'INVALID_MODEL',
        `The model has no tensor "${name}"; set output.tensor in the model config to one of its tensors (for example ${sample.map((n) => `"${n}"`).join(', ')})`,
      );
    }
  }
  let output = tensor;
  if (dequantize) {
    output = `${tensor}_ris_dequantized`;
    graph.node!.push(
      onnx.NodeProto.create({
        name: `ris_dequantize_${tensor}`,
        opType: 'DequantizeLinear',
        input: [tensor, dequantize.scale, dequantize.zeroPoint],
        output: [output],
      }),
    );
  }
  if (!(graph.output ?? []).some((o) => o.name === output)) {
    graph.output!.push(onnx.ValueInfoProto.create({ name: output }));
  }
  return output;
}
