"""Random-weight CLIP ViT-B/32 towers of the real shapes, exported to ONNX for bench/clip.ts.

Speed does not depend on the weights, and no weights can be downloaded here, so this builds OpenAI's
architecture (clip/model.py: ViT-B/32 image tower, 12-layer causal text transformer, QuickGELU) with
random weights in plain PyTorch and exports it as Xenova/clip-vit-base-patch32 lays it out:
  vision_model.onnx          pixel_values float32 [N, 3, 224, 224] -> image_embeds [N, 512]
  text_model.onnx            input_ids int64 [N, L] -> text_embeds [N, 512]
  text_model_quantized.onnx  the same with int8 weights (dynamic quantization, see quantize())

Debian has no onnxruntime for Python, so quantize() rewrites the graph as onnxruntime's
quantize_dynamic does: each MatMul by a constant matrix becomes DynamicQuantizeLinear (activations to
uint8 at run time) + MatMulInteger against int8 weights + a rescale, and the token embedding table is
stored as int8 and dequantized after the Gather.

usage: /usr/bin/python3 bench/clip_export.py OUT_DIR
"""
import math
import pathlib
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

torch.manual_seed(0)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention written out (as Hugging Face's CLIPAttention), optionally causal."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(width, width) for _ in range(4))

    def forward(self, x, mask):
        n, length, width = x.shape
        head = width // self.heads

        def split(t):
            return t.reshape(n, length, self.heads, head).transpose(1, 2)

        q, k, v = split(self.q(x) * head**-0.5), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-1, -2)
        if mask is not None:
            scores = scores + mask
        y = torch.softmax(scores, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), QuickGELU(), nn.Linear(4 * width, width))

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Vision(nn.Module):
    def __init__(self, width=768, layers=12, heads=12, patch=32, size=224, out=512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn((size // patch) ** 2 + 1, width) * width**-0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.proj = nn.Parameter(torch.randn(width, out) * width**-0.5)

    def forward(self, pixel_values):
        x = self.conv1(pixel_values).flatten(2).transpose(1, 2)  # [N, 49, width]
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = self.ln_pre(torch.cat([cls, x], dim=1) + self.positional_embedding)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x[:, 0, :]) @ self.proj


class Text(nn.Module):
    def __init__(self, vocab=49408, context=77, width=512, layers=12, heads=8, out=512):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.positional_embedding = nn.Parameter(torch.randn(context, width) * 0.01)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.randn(width, out) * width**-0.5)

    def forward(self, input_ids):
        length = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.positional_embedding[:length]
        positions = torch.arange(length)
        # Causal: position i sees positions <= i (a large negative number, not -inf, exports cleanly).
        mask = (positions[None, :] > positions[:, None]).float() * -1e9
        for block in self.blocks:
            x = block(x, mask)
        x = self.ln_final(x)
        # The vector is read at the end token, the largest id (as OpenAI's argmax).
        eot = input_ids.argmax(dim=-1)
        return x[torch.arange(x.shape[0]), eot] @ self.text_projection


def export(model, example, path, input_name, output_name, dynamic):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: dynamic, output_name: {0: "batch_size"}},
            opset_version=14,
            do_constant_folding=True,
        )


def int8(tensor, base):
    """A float initializer as symmetric int8 (one scale for the tensor, zero point 0), as three initializers."""
    values = numpy_helper.to_array(tensor).astype(np.float32)
    scale = max(float(np.abs(values).max()), 1e-8) / 127.0
    return [
        numpy_helper.from_array(np.clip(np.round(values / scale), -127, 127).astype(np.int8), f"{base}_q"),
        numpy_helper.from_array(np.array(scale, dtype=np.float32), f"{base}_scale"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), f"{base}_zero"),
    ]


def quantize(src, dst):
    """onnxruntime's dynamic quantization, by hand: int8 weights, uint8 activations quantized per call."""
    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, new_inits = [], []
    for node in graph.node:
        weight = inits.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if weight is not None and len(weight.dims) == 2:
            base = node.output[0]
            new_inits += int8(weight, f"{base}_W")
            nodes += [
                helper.make_node("DynamicQuantizeLinear", [node.input[0]], [f"{base}_Aq", f"{base}_Ascale", f"{base}_Azero"]),
                helper.make_node("MatMulInteger", [f"{base}_Aq", f"{base}_W_q", f"{base}_Azero", f"{base}_W_zero"], [f"{base}_int"]),
                helper.make_node("Cast", [f"{base}_int"], [f"{base}_float"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{base}_Ascale", f"{base}_W_scale"], [f"{base}_scale"]),
                helper.make_node("Mul", [f"{base}_float", f"{base}_scale"], [base]),
            ]
            continue
        table = inits.get(node.input[0]) if node.op_type == "Gather" else None
        if table is not None and len(table.dims) == 2 and table.dims[0] > 1000:
            base = node.output[0]
            new_inits += int8(table, f"{base}_T")
            gather = helper.make_node("Gather", [f"{base}_T_q", node.input[1]], [f"{base}_rows"], axis=0)
            dequantize = helper.make_node("DequantizeLinear", [f"{base}_rows", f"{base}_T_scale", f"{base}_T_zero"], [base])
            nodes += [gather, dequantize]
            continue
        nodes.append(node)
    used = {name for n in nodes for name in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    export(Vision(), torch.randn(1, 3, 224, 224), out / "vision_model.onnx", "pixel_values", "image_embeds", {0: "batch_size"})
    export(
        Text(),
        torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407]]),
        out / "text_model.onnx",
        "input_ids",
        "text_embeds",
        {0: "batch_size", 1: "sequence_length"},
    )
    quantize(out / "text_model.onnx", out / "text_model_quantized.onnx")
    for name in ["vision_model.onnx", "text_model.onnx", "text_model_quantized.onnx"]:
        print(f"{name} {(out / name).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
