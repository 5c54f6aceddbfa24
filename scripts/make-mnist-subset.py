#!/usr/bin/env python3
"""Cuts the committed MNIST subset (data/mnist-subset/) from the real MNIST
IDX files: the first N training and first M test images, written as gzipped
IDX with the original headers' layout. Run once by a maintainer:

    python3 scripts/make-mnist-subset.py DIR_WITH_FULL_MNIST 3000 1000
"""
import gzip, struct, sys, os

src, n_train, n_test = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = os.path.join(os.path.dirname(__file__), "..", "data", "mnist-subset")
os.makedirs(out, exist_ok=True)

def cut(images, labels, n, prefix):
    with open(os.path.join(src, images), "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        assert magic == 0x803 and count >= n
        data = f.read(n * rows * cols)
    with open(os.path.join(src, labels), "rb") as f:
        magic, count = struct.unpack(">II", f.read(8))
        assert magic == 0x801 and count >= n
        lab = f.read(n)
    with gzip.GzipFile(os.path.join(out, prefix + "-images-idx3-ubyte.gz"), "wb", mtime=0) as g:
        g.write(struct.pack(">IIII", 0x803, n, rows, cols) + data)
    with gzip.GzipFile(os.path.join(out, prefix + "-labels-idx1-ubyte.gz"), "wb", mtime=0) as g:
        g.write(struct.pack(">II", 0x801, n) + lab)

cut("train-images-idx3-ubyte", "train-labels-idx1-ubyte", n_train, "train")
cut("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", n_test, "t10k")
