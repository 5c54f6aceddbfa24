"""What the NIR benches share: an exported NIR file as an snnTorch network
(snnTorch 1.0's `import_from_nir`), and the MNIST-style test images it reads."""

import gzip

import nir
import numpy as np
from snntorch.import_nir import import_from_nir


def idx(path, offset):
    """An IDX file's payload, plain or gzipped."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load(nir_file, images_idx):
    """(network in eval mode, time steps, images as [N, C, H, W] floats in [0, 1])."""
    graph = nir.read(nir_file)
    steps = int(graph.metadata["time_steps"])
    shape = [int(v) for v in graph.nodes["input"].input_type["input"]]
    net = import_from_nir(graph).eval()
    images = idx(images_idx, 16).reshape(-1, *shape).astype(np.float32) / 255.0
    return net, steps, images
