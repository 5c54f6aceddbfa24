#!/usr/bin/env python3
"""Writes fuzz/seeds/<target>/: real files of each format, cut small.

    python3 fuzz/make_seeds.py [SNN]      (SNN: an snn binary, default target/release/snn)

config       the shipped configs (quickstart, a paper row, the FSVAE, the ANN VAE)
idx          the first 3 images and labels of the committed MNIST subset, plain and gzipped
safetensors  a checkpoint `snn train` writes (a one-layer classifier, 1 epoch) and the
             hand-made tiny one of tests/fixtures/seeds
npz          the FSVAE authors' MNIST FAD statistics (data/fsvae-fad)
cifar        two real CIFAR-10 test records (from the PNG fixtures, label in the name)
image        real PNGs (CIFAR-10 fixtures)

Standard library only (a PNG decoder for 8-bit RGB is below). The seeds
are committed; rerun this only to change them.
"""

import gzip
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fuzz" / "seeds"


def put(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def png_rgb(path):
    """The pixels of an 8-bit RGB, non-interlaced PNG, rows of R G B bytes."""
    data = path.read_bytes()
    pos, idat, (w, h) = 8, b"", (0, 0)
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0), path
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), w * 3, [], bytearray(w * 3)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - 3] if x >= 3 else 0
            b, c = prev[x], prev[x - 3] if x >= 3 else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows


def main():
    snn = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "target" / "release" / "snn")
    shutil.rmtree(OUT, ignore_errors=True)
    for cfg in ["configs/quickstart.toml", "configs/paper/table5-mnist-alif.toml",
                "configs/fsvae-mnist-taid.toml", "configs/annvae-mnist.toml"]:
        put("config", Path(cfg).name, (ROOT / cfg).read_bytes())

    subset = ROOT / "data" / "mnist-subset"
    images = gzip.decompress((subset / "train-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((subset / "train-labels-idx1-ubyte.gz").read_bytes())
    three = images[:4] + struct.pack(">III", 3, 28, 28) + images[16:16 + 3 * 784]
    three_labels = labels[:4] + struct.pack(">I", 3) + labels[8:11]
    put("idx", "images-3.idx", three)
    put("idx", "images-3.idx.gz", gzip.compress(three, mtime=0))
    put("idx", "labels-3.idx", three_labels)
    put("idx", "labels-3.idx.gz", gzip.compress(three_labels, mtime=0))

    put("safetensors", "tiny.safetensors",
        (ROOT / "tests" / "fixtures" / "seeds" / "safetensors" / "tiny.safetensors").read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run([snn, "train", "--config", str(ROOT / "configs" / "quickstart.toml"), "--quiet",
                        "--out", str(run), "--set", "model.layers=\"FC10-ALIF\"", "--set", "train.epochs=1",
                        "--set", "data.train_limit=32", "--set", "data.test_limit=16"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        put("safetensors", "trained.safetensors", (run / "best.safetensors").read_bytes())

    put("npz", "mnist_test_64.npz", (ROOT / "data" / "fsvae-fad" / "mnist_test_64.npz").read_bytes())

    records = b""
    pngs = sorted((ROOT / "tests" / "fixtures" / "cifar10").glob("*.png"))[:2]
    for png in pngs:
        w, h, rows = png_rgb(png)
        label = int(png.stem.split("_")[-1])
        planes = b"".join(bytes(r[x * 3 + ch] for r in rows for x in range(w)) for ch in range(3))
        records += bytes([label]) + planes
        put("image", png.name, png.read_bytes())
    put("cifar", "two-records.bin", records)


if __name__ == "__main__":
    main()
