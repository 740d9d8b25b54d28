"""PyTorch side of `npm run bench:embed`.

  torch_resnet50.py export OUT.onnx      random-weight torchvision ResNet50, pooled 2048-d output 'features'
  torch_resnet50.py time BATCH THREADS N  images per second of the forward pass on CPU, printed as JSON

A random-weight network costs what a trained one does, so it stands in for the ONNX zoo model, which
cannot be downloaded here. Run with Debian's python3-torch and python3-torchvision.
"""
import json
import sys
import time

import torch
import torchvision


def model():
    net = torchvision.models.resnet50(weights=None)
    net.fc = torch.nn.Identity()  # the 2048-d pooled features, as the reference app used
    return net.eval()


if sys.argv[1] == "export":
    torch.onnx.export(
        model(), torch.randn(1, 3, 224, 224), sys.argv[2], input_names=["input"], output_names=["features"],
        dynamic_axes={"input": {0: "N"}, "features": {0: "N"}}, opset_version=13,
    )
else:
    batch, threads, n = (int(v) for v in sys.argv[2:5])
    torch.set_num_threads(threads)
    net = model()
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        net(x)  # warm-up
        start = time.perf_counter()
        done = 0
        while done < n:
            net(x)
            done += batch
        seconds = time.perf_counter() - start
    print(json.dumps({"imagesPerSecond": done / seconds, "threads": threads, "batch": batch}))
