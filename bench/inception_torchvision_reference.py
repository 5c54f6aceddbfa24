#!/usr/bin/env python3
"""Reference outputs of Inception-v3 in torchvision's layout, for the Rust
state-dict loader, and of PIL's bicubic resize (clean-fid's protocol).

No pretrained weights are reachable offline, so every parameter is set by a
formula the Rust test regenerates: the parameter at position j of the
sorted state-dict names, element i (row-major), is

    base + amp * sin(0.7 * i + 1.3 * j + 0.1)       (float64, then float32)

with (base, amp) per kind of tensor, listed in the fixture beside each
name and shape. Two networks are run on the first two test images of the
committed MNIST subset (grey replicated to RGB, F.interpolate bilinear to
299 on 0..255 values):

- "torchvision": torchvision.models.inception_v3, transform_input=True, fed
  ImageNet-normalised p / 255 (what its pretrained weights expect); logits
  = the model's output (fc with bias).
- "fid2015": the same modules with the FID graph's pooling (mean pools that
  skip the padding; Mixed_7c pools by maximum) and a 1008-way fc, fed
  2 p / 255 - 1 (pytorch-fid's FIDInceptionV3); logits = features . W^T
  without the bias (the original IS code).

Writes tests/fixtures/inception/torchvision-reference.json. Needs torch,
torchvision and pillow (pip install into any venv):

    python bench/inception_torchvision_reference.py
"""

import json
import math

import numpy as np
import PIL
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision.models import inception as tv

from inception_reference import mnist_test_images  # this folder

COUNT = 2


def kind(name, shape):
    """(base, amp) of each kind of tensor."""
    if name.endswith("conv.weight"):
        fan_in = shape[1] * shape[2] * shape[3]
        return 0.0, math.sqrt(2.0 / fan_in)
    if name.endswith("bn.weight"):
        return 1.0, 0.1
    if name.endswith("bn.running_var"):
        return 1.25, 0.25
    if name == "fc.weight":
        return 0.0, math.sqrt(6.0 / shape[1])
    if name.endswith("bn.bias"):
        # Most pre-activations positive: few ReLU kinks near zero, so the
        # output is not hypersensitive to float rounding.
        return 1.0, 0.1
    return 0.0, 0.1  # bn.running_mean, fc.bias


def set_weights(model):
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    params = []
    for j, name in enumerate(sorted(sd)):
        shape = list(sd[name].shape)
        base, amp = kind(name, shape)
        i = torch.arange(sd[name].numel(), dtype=torch.float64)
        vals = base + amp * torch.sin(0.7 * i + 1.3 * j + 0.1)
        sd[name].copy_(vals.to(torch.float32).reshape(shape))
        params.append([name, shape, base, amp])
    return params


# The FID graph's blocks: torchvision's, with its pooling.
class FidA(tv.InceptionA):
    def _forward(self, x):
        out = super()._forward(x)
        out[3] = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        return out


class FidC(tv.InceptionC):
    def _forward(self, x):
        out = super()._forward(x)
        out[3] = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        return out


class FidE(tv.InceptionE):
    def __init__(self, *a, pool_max=False, **k):
        super().__init__(*a, **k)
        self.pool_max = pool_max

    def _forward(self, x):
        out = super()._forward(x)
        if self.pool_max:
            pooled = F.max_pool2d(x, 3, 1, 1)
        else:
            pooled = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        out[3] = self.branch_pool(pooled)
        return out


def fid_graph():
    m = tv.inception_v3(weights=None, aux_logits=False, init_weights=False,
                        num_classes=1008, transform_input=False)
    m.Mixed_5b, m.Mixed_5c, m.Mixed_5d = FidA(192, 32), FidA(256, 64), FidA(288, 64)
    m.Mixed_6b, m.Mixed_6c = FidC(768, 128), FidC(768, 160)
    m.Mixed_6d, m.Mixed_6e = FidC(768, 160), FidC(768, 192)
    m.Mixed_7b, m.Mixed_7c = FidE(1280), FidE(2048, pool_max=True)
    return m


def run(model, x, unbiased):
    model.eval()
    feats = {}
    model.avgpool.register_forward_hook(lambda mod, i, o: feats.update(f=o.flatten(1)))
    with torch.no_grad():
        logits = model(x)
    f = feats["f"]
    if unbiased:
        logits = f @ model.fc.weight.T
    return f, logits


def rounded(t):
    return [[float(f"{v:.7g}") for v in row] for row in t.tolist()]


def main():
    images, h, w = mnist_test_images(COUNT)
    p = torch.tensor(images, dtype=torch.float32).reshape(COUNT, 1, h, w).repeat(1, 3, 1, 1)
    p = F.interpolate(p, size=(299, 299), mode="bilinear", align_corners=False)
    out = {"about": f"torch {torch.__version__}, torchvision {torchvision.__version__}, "
                    f"first {COUNT} test images of data/mnist-subset, bilinear resize"}
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    m = tv.inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=True)
    params = set_weights(m)
    f, logits = run(m, (p / 255.0 - mean) / std, unbiased=False)
    out["torchvision"] = {"params": params, "features": rounded(f), "logits": rounded(logits)}
    m = fid_graph()
    params = set_weights(m)
    f, logits = run(m, 2.0 * p / 255.0 - 1.0, unbiased=True)
    out["fid2015"] = {"params": params, "features": rounded(f), "logits": rounded(logits)}
    # clean-fid's resize: each channel as a PIL float image, bicubic, clipped.
    img = np.array(images[0], dtype=np.float32).reshape(h, w)
    big = np.asarray(Image.fromarray(img, mode="F").resize((299, 299), Image.BICUBIC)).clip(0, 255)
    out["pil_bicubic"] = {"pillow": PIL.__version__,
                          "every_97th": [float(v) for v in big.reshape(-1)[::97]],
                          "sum": float(big.astype(np.float64).sum())}
    path = "tests/fixtures/inception/torchvision-reference.json"
    with open(path, "w") as fh:
        json.dump(out, fh)
    print(path, {k: len(v["params"]) for k, v in out.items() if isinstance(v, dict) and "params" in v})
    print("feature scale", f.abs().mean().item(), "logit scale", logits.abs().mean().item())


if __name__ == "__main__":
    main()
