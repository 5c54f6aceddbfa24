"""`snn eval --ops` cross-checked with NeuroBench's operation counter.

    bench/run-pytorch.sh nir_ops_neurobench.py NET.nir --images IDX[.gz] \
        --ops SNN_EVAL.json [--limit N]

Runs the network of NET.nir (from `snn export --pool avg-lif`) in snnTorch
(`import_from_nir`, as bench/nir_snntorch.py) on the first N test images
and counts each Conv2d / Linear call's operations with NeuroBench's own
`single_layer_MACs` (the function behind its SynapticOperations metric:
dense = every tap with a real input, padding excluded; effective = taps
whose input is non-zero, ACs where the input is binary, MACs otherwise;
bias not counted). SNN_EVAL.json is `snn eval --ops --json` on the same
images. Prints both per layer, per image, with their ratio.

Two differences are structural, not counting errors, and the table says
so: snnTorch recomputes the first convolution at every time step where
snn computes it once (direct encoding: the same image each step), so its
figure is divided by T before comparing; and snnTorch counts the voting
layer (a Linear of 1/k) as synapses, snn does not.
"""

import argparse
import json

import snntorch.utils
import torch
from neurobench.metrics.utils.layers.macs import single_layer_MACs
from nir_snntorch_net import load

# snnTorch's module names (from NIR's) -> snn's layer names.
NAMES = {"conv2d": "conv1", "conv2d_1": "conv2", "affine": "fc1", "affine_1": "fc2", "linear": "vote"}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("nir_file")
    p.add_argument("--images", required=True)
    p.add_argument("--ops", required=True, help="snn eval --ops --json output")
    p.add_argument("--limit", type=int, default=1000)
    a = p.parse_args()

    net, steps, images = load(a.nir_file, a.images)
    n = min(a.limit, len(images))

    counts = {}
    # NeuroBench counts by running a binary copy of the layer, hooks
    # included: the copy's call must not count itself.
    busy = []

    def hook(name):
        def record(layer, inputs, _output):
            if busy:
                return
            busy.append(True)
            eff, spiking = single_layer_MACs(inputs[0], layer)
            dense, _ = single_layer_MACs(inputs[0], layer, total=True)
            busy.clear()
            c = counts.setdefault(name, {"dense": 0, "acs": 0, "macs": 0, "calls": 0})
            c["dense"] += dense
            c["acs" if spiking else "macs"] += eff
            c["calls"] += 1
        return record

    for name, module in net.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.register_forward_hook(hook(name))
    torch.set_grad_enabled(False)
    for i in range(n):
        snntorch.utils.reset(net)
        x = torch.from_numpy(images[i])
        for _ in range(steps):
            net(x)

    ours = {l["layer"]: l for l in json.load(open(a.ops))["ops"]["layers"]}
    rows = []
    print(f"per image, {n} images, T = {steps}")
    print(f"{'layer':<20}{'kind':<6}{'NeuroBench':>14}{'snn':>14}{'ratio':>9}")
    for name, c in counts.items():
        layer = NAMES.get(name, name)
        passes = c["calls"] / n
        mine = ours.get(layer)
        # The first convolution: snnTorch runs it every step, snn once.
        per = steps if mine is not None and mine["passes"] == 1 else 1
        for kind, theirs, key in [("dense", c["dense"], "dense"),
                                  ("ACs", c["acs"], "effective_acs"),
                                  ("MACs", c["macs"], "effective_macs")]:
            theirs = theirs / n / per
            value = mine[key] if mine else float("nan")
            ratio = value / theirs if theirs else float("nan")
            if theirs == 0 and (not mine or value == 0):
                continue
            rows.append({"layer": layer, "kind": kind, "neurobench": theirs, "snn": value,
                         "ratio": ratio, "snntorch_passes": passes, "divided_by": per})
            label = f"{layer} ({name})"
            print(f"{label:<20}{kind:<6}{theirs:>14.1f}{value:>14.1f}{ratio:>9.4f}"
                  + ("  (snnTorch / T)" if per > 1 else "") + ("  (not a synapse in snn)" if not mine else ""))
    print(json.dumps({"images": n, "time_steps": steps, "rows": rows}))


if __name__ == "__main__":
    main()
