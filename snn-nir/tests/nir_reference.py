"""The Python `nir` package (1.0.8) as the other side of snn-nir's tests.

    nir_reference.py read FILE      nir.read(FILE) (with its type checks):
                                    each node's type and input / output
                                    shapes, and the metadata, as JSON
    nir_reference.py make DIR IDX   writes DIR/graph.nir with nir.write (a
                                    random network of the node types
                                    docs/nir.md lists) and DIR/reference.json:
                                    100 test images of the IDX file and the
                                    class scores a numpy simulation of NIR's
                                    equations gives them

The simulation steps each neuron by one Euler step of length DT. Weights
are multiples of 1/64, pixels multiples of 1/16, every decay 1/2 (or none: IF) and every
threshold off the values' grid, so that float32 (snn) and float64 (numpy) compute the same values
exactly: any difference in the scores is a difference in the mapping.
"""

import gzip
import json
import sys

import nir
import numpy as np

DT = 1e-4
STEPS = 8
# Thresholds sit off the grid every membrane value lies on (multiples of
# 2^-19), so that no comparison is a tie.
OFF = 2.0**-21


def describe(path):
    g = nir.read(path)
    nodes = {
        name: {
            "type": type(n).__name__,
            "input": [int(v) for v in np.atleast_1d(next(iter(n.input_type.values())))],
            "output": [int(v) for v in np.atleast_1d(next(iter(n.output_type.values())))],
        }
        for name, n in g.nodes.items()
    }
    meta = {k: (v.item() if hasattr(v, "item") else v) for k, v in g.metadata.items()}
    meta = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in meta.items()}
    print(json.dumps({"nodes": nodes, "edges": [list(e) for e in g.edges], "metadata": meta}))


def quantised(rng, shape, scale, step):
    return (np.round(rng.uniform(-scale, scale, shape) / step) * step).astype(np.float32)


def lif(shape, decay, gain, threshold):
    """A NIR LIF whose Euler step at DT is v' = decay v + gain I."""
    tau = DT / (1.0 - decay)
    r = gain / (1.0 - decay)
    full = lambda v: np.full(shape, v, dtype=np.float64)
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(0.0), v_threshold=full(threshold), v_reset=full(0.0))


def network(rng):
    conv1 = nir.Conv2d(input_shape=(28, 28), weight=quantised(rng, (6, 1, 5, 5), 0.5, 1 / 64),
                       stride=1, padding=2, dilation=1, groups=1, bias=quantised(rng, (6,), 0.25, 1 / 16))
    conv2 = nir.Conv2d(input_shape=(14, 14), weight=quantised(rng, (8, 6, 3, 3), 0.5, 1 / 64),
                       stride=1, padding=1, dilation=1, groups=1, bias=quantised(rng, (8,), 0.25, 1 / 16))
    hidden = nir.Affine(weight=quantised(rng, (30, 392), 0.25, 1 / 64), bias=quantised(rng, (30,), 0.5, 1 / 16))
    out = nir.Affine(weight=quantised(rng, (10, 30), 1.0, 1 / 64), bias=quantised(rng, (10,), 0.5, 1 / 16))
    nodes = {
        "input": nir.Input(input_type=np.array([1, 28, 28])),
        "conv1": conv1,
        "lif1": lif((6, 28, 28), 0.5, 1.0, 0.75 + OFF),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "spike1": nir.Threshold(threshold=np.full((6, 14, 14), 0.5)),
        "conv2": conv2,
        # r dt / tau = 0.5: an input gain the importer folds into conv2.
        "lif2": lif((8, 14, 14), 0.5, 0.5, 0.25 + OFF),
        "pool2": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([8, 7, 7])}),
        "hidden": hidden,
        "if1": nir.IF(r=np.full(30, 1.0 / DT), v_threshold=np.full(30, 0.5 + OFF), v_reset=np.zeros(30)),
        "out": out,
        "lif3": lif((10,), 0.5, 1.0, 0.5 + OFF),
        "output": nir.Output(output_type=np.array([10])),
    }
    order = list(nodes)
    edges = list(zip(order[:-1], order[1:]))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"time_steps": STEPS})


def conv(x, node):
    w, b = node.weight.astype(np.float64), node.bias.astype(np.float64)
    s, p = int(np.atleast_1d(node.stride)[0]), int(np.atleast_1d(node.padding)[0])
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    ho, wo = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    y = np.zeros((w.shape[0], ho, wo)) + b[:, None, None]
    for ky in range(k):
        for kx in range(k):
            win = xp[:, ky:ky + s * ho:s, kx:kx + s * wo:s]
            y += np.einsum("oc,chw->ohw", w[:, :, ky, kx], win)
    return y


def pool(x, k, average):
    c, h, w = x.shape
    s = x.reshape(c, h // k, k, w // k, k).sum(axis=(2, 4))
    return s / (k * k) if average else s


def simulate(g, image):
    """Spike counts of the output layer over STEPS, divided by STEPS."""
    order = [e[0] for e in g.edges] + [g.edges[-1][1]]
    state = {}
    total = 0.0
    for _ in range(STEPS):
        x = image
        for name in order:
            n = g.nodes[name]
            if isinstance(n, nir.Conv2d):
                x = conv(x, n)
            elif isinstance(n, (nir.LIF, nir.IF)):
                v = state.get(name, np.zeros_like(x))
                if isinstance(n, nir.LIF):
                    v = v + DT / n.tau * (n.v_leak - v + n.r * x)
                else:
                    v = v + DT * n.r * x
                z = (v > n.v_threshold).astype(np.float64)
                state[name] = np.where(z > 0, n.v_reset, v)
                x = z
            elif isinstance(n, nir.Threshold):
                x = (x > n.threshold).astype(np.float64)
            elif isinstance(n, (nir.SumPool2d, nir.AvgPool2d)):
                x = pool(x, int(n.kernel_size[0]), isinstance(n, nir.AvgPool2d))
            elif isinstance(n, nir.Flatten):
                x = x.reshape(-1)
            elif isinstance(n, nir.Affine):
                x = n.weight.astype(np.float64) @ x + n.bias
        total = total + x
    return total / STEPS


def make(out_dir, idx_gz):
    rng = np.random.default_rng(7)
    g = network(rng)
    nir.write(f"{out_dir}/graph.nir", g)
    with gzip.open(idx_gz, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    images = np.round(raw[: 100 * 784].astype(np.float64) / 255.0 * 16) / 16
    images = images.reshape(100, 1, 28, 28)
    g = nir.read(f"{out_dir}/graph.nir")
    scores = np.stack([simulate(g, im) for im in images])
    with open(f"{out_dir}/reference.json", "w") as f:
        json.dump({"images": images.reshape(-1).tolist(), "scores": scores.reshape(-1).tolist()}, f)


if __name__ == "__main__":
    if sys.argv[1] == "read":
        describe(sys.argv[2])
    elif sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
