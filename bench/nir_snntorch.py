"""A classifier exported by `snn export` run in snnTorch through NIR.

    bench/run-pytorch.sh nir_snntorch.py NET.nir --images IDX[.gz] \
        --labels IDX[.gz] --predictions SNN_PREDICTIONS.txt [--limit N]

Reads NET.nir with Python `nir`, builds the network with snnTorch's
`import_from_nir` (snnTorch 1.0: it knows Affine, Linear, Conv2d, Flatten,
AvgPool2d, IF, LIF, so export with `--pool avg-lif`), feeds each test image
(pixels / 255, C x H x W, unbatched as snnTorch's importer runs) at every
one of the graph's `time_steps`, its hidden state reset between images,
and takes the class whose output neurons fired most (ties to the lowest
index, as `snn`; the vote layer's float32 sums are rounded first). Prints the agreement with `snn eval --predictions` and
both accuracies, and one JSON line with the figures.
"""

import argparse
import json
import time

import nir
import numpy as np
import snntorch
import snntorch.utils
import torch
from nir_snntorch_net import idx, load


def main():
    p = argparse.ArgumentParser()
    p.add_argument("nir_file")
    p.add_argument("--images", required=True)
    p.add_argument("--labels", required=True)
    p.add_argument("--predictions", required=True, help="snn eval --predictions output")
    p.add_argument("--limit", type=int, default=0)
    a = p.parse_args()

    net, steps, images = load(a.nir_file, a.images)
    labels = idx(a.labels, 8)
    ours = np.loadtxt(a.predictions, dtype=np.int64)
    n = len(ours) if a.limit == 0 else min(a.limit, len(ours))

    torch.set_grad_enabled(False)
    theirs = np.zeros(n, dtype=np.int64)
    t0 = time.time()
    for i in range(n):
        snntorch.utils.reset(net)
        x = torch.from_numpy(images[i])
        # The GraphModule returns (output, state); the neurons keep their own
        # hidden state (init_hidden), which reset() clears.
        counts = sum(net(x)[0] for _ in range(steps))
        # The vote layer (Linear of 1/k) sums spikes x 0.1 in float32, whose
        # last bit depends on which neurons fired: equal spike counts can
        # come out 2.8 and 2.8000002. Rounded, a tie is a tie, and goes to
        # the lowest class as in snn.
        theirs[i] = int(np.argmax(np.round(counts.double().numpy(), 4)))
    seconds = time.time() - t0

    same = int((theirs == ours[:n]).sum())
    result = {
        "nir_file": a.nir_file,
        "images": n,
        "time_steps": steps,
        "agree": same,
        "agreement": same / n,
        "snntorch_accuracy": float((theirs == labels[:n]).mean()),
        "snn_accuracy": float((ours[:n] == labels[:n]).mean()),
        "disagreeing_images": [int(i) for i in np.nonzero(theirs != ours[:n])[0][:20]],
        "seconds": round(seconds, 1),
        "snntorch": snntorch.__version__,
        "torch": torch.__version__,
        "nir": nir.version,
    }
    print(f"snnTorch {snntorch.__version__} on {n} images, T = {steps}: same class as snn on "
          f"{same} ({100 * same / n:.2f}%); accuracy snnTorch {100 * result['snntorch_accuracy']:.2f}%, "
          f"snn {100 * result['snn_accuracy']:.2f}% ({seconds:.0f} s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
