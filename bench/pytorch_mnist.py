#!/usr/bin/env python3
"""PyTorch twin of configs/mnist-alif.toml (and cifar10-alif.toml) for
side-by-side speed and memory figures with `snn bench`, and for training
at a paper row's budget beside ours.

Same network (Table 8 notation), same neuron (u = tau*u*(1-o) + x, hard
reset, learned tau and V_th per layer, ATan surrogate alpha 2), direct
encoding (first conv+BN once), dropout mask shared over T, MSE on the rate,
Adam 1e-3. Random inputs, like `snn bench`:

    bench/run-pytorch.sh --net mnist --batch 16 --mode train

Real training (MNIST or Fashion-MNIST IDX files), the authors' recipe as
configs/paper/table5-mnist-alif.toml has it (RandomAffine(30, (0.15,
0.15), (0.85, 1.11)) with nearest sampling, cosine schedule over all
steps, detached reset), one JSON line per epoch (test accuracy after each)
and a summary line:

    bench/run-pytorch.sh --train data/mnist --epochs 5 --augment --out twin.jsonl
"""
import argparse, json, math, resource, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class SpikeAtan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, alpha):
        ctx.save_for_backward(v)
        ctx.alpha = alpha
        return (v >= 0).to(v.dtype)

    @staticmethod
    def backward(ctx, g):
        (v,) = ctx.saved_tensors
        a = ctx.alpha
        return g * (a / 2) / (1 + (math.pi / 2 * a * v) ** 2), None


class ALIF(nn.Module):
    def __init__(self, tau=0.25, v_th=0.2, detach_reset=False):
        super().__init__()
        self.tau = nn.Parameter(torch.tensor(tau))
        self.v_th = nn.Parameter(torch.tensor(v_th))
        # No gradient through the reset term (Eq. 8, the configs'
        # `detach_reset = true`); the timing runs keep the older attached form.
        self.detach_reset = detach_reset

    def forward(self, x):  # x: [T, B, ...]
        u = torch.zeros_like(x[0])
        o = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            keep = 1 - (o.detach() if self.detach_reset else o)
            u = self.tau * u * keep + x[t]
            o = SpikeAtan.apply(u - self.v_th, 2.0)
            out.append(o)
        return torch.stack(out)


class SeqDropout(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training:
            return x
        mask = torch.bernoulli(torch.full_like(x[0], 1 - self.p)) / (1 - self.p)
        return x * mask


def folded(mod, x):
    T, B = x.shape[:2]
    y = mod(x.flatten(0, 1))
    return y.view(T, B, *y.shape[1:])


class Net(nn.Module):
    def __init__(self, net, T, detach_reset=False):
        super().__init__()
        alif = lambda: ALIF(detach_reset=detach_reset)
        self.T = T
        if net == "mnist":
            chans, blocks, cin, side = 128, [1, 1], 1, 28
        else:
            chans, blocks, cin, side = 256, [3, 3], 3, 32
        self.stem = nn.Sequential(nn.Conv2d(cin, chans, 3, 1, 1, bias=False), nn.BatchNorm2d(chans))
        self.body = nn.ModuleList()
        first = True
        for n in blocks:
            for i in range(n):
                if first:
                    self.body.append(alif())
                    first = False
                else:
                    self.body.append(nn.Sequential(nn.Conv2d(chans, chans, 3, 1, 1, bias=False), nn.BatchNorm2d(chans)))
                    self.body.append(alif())
            self.body.append(nn.MaxPool2d(2, 2))
            side //= 2
        self.head = nn.ModuleList([
            SeqDropout(0.5), nn.Flatten(), nn.Linear(chans * side * side, 2048, bias=False), alif(),
            SeqDropout(0.5), nn.Linear(2048, 100, bias=False), alif()])

    def forward(self, img):
        x = self.stem(img).unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
        for m in list(self.body) + list(self.head):
            if isinstance(m, (ALIF, SeqDropout)):
                x = m(x)
            else:
                x = folded(m, x)
        rate = x.mean(0)  # [B, 100]
        return F.avg_pool1d(rate.unsqueeze(1), 10, 10).squeeze(1)


def load_idx(path):
    import gzip
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8)
    return data.view(*dims)


def random_affine(x, gen, rotate=30.0, translate=0.15, scale=(0.85, 1.11)):
    """torchvision's RandomAffine per image (angle uniform in +-rotate,
    whole-pixel shifts up to translate * side, scale uniform), nearest
    sampling, zero fill; `x` is [B, C, H, W]."""
    b, _, h, w = x.shape
    u = lambda lo, hi: torch.rand(b, generator=gen) * (hi - lo) + lo
    angle = u(-rotate, rotate) * math.pi / 180
    tx = torch.round(u(-translate * w, translate * w)) * 2 / w
    ty = torch.round(u(-translate * h, translate * h)) * 2 / h
    s = u(*scale)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    # Output -> input coordinates: the inverse of (rotate and scale, then shift).
    theta = torch.stack([
        torch.stack([cos, sin, -(cos * tx + sin * ty)], 1),
        torch.stack([-sin, cos, -(-sin * tx + cos * ty)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def train(root, batch, epochs, augment, seed, out):
    """Trains on the IDX files in `root` with the authors' recipe; one JSON
    line per epoch (to stdout and `out`), then a summary."""
    import os
    find = lambda n: os.path.join(root, n) if os.path.exists(os.path.join(root, n)) else os.path.join(root, n + ".gz")
    xtr = load_idx(find("train-images-idx3-ubyte")).float().div(255).unsqueeze(1)
    ytr = load_idx(find("train-labels-idx1-ubyte")).long()
    xte = load_idx(find("t10k-images-idx3-ubyte")).float().div(255).unsqueeze(1)
    yte = load_idx(find("t10k-labels-idx1-ubyte")).long()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = Net("mnist", 8, detach_reset=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = (len(xtr) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps * epochs)
    sink = open(out, "w") if out else None
    best, total_s = 0.0, 0.0
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(xtr), generator=gen)
        t0 = time.perf_counter()
        net.train()
        loss_sum = 0.0
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            x = random_affine(xtr[idx], gen) if augment else xtr[idx]
            loss = F.mse_loss(net(x), F.one_hot(ytr[idx], 10).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
        train_s = time.perf_counter() - t0
        net.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 64):
                correct += (net(xte[i:i + 64]).argmax(1) == yte[i:i + 64]).sum().item()
        seconds = time.perf_counter() - t0
        total_s += seconds
        acc = correct / len(xte)
        best = max(best, acc)
        line = json.dumps({"epoch": epoch, "train_loss": loss_sum / len(xtr), "test_accuracy": acc,
                           "seconds": seconds, "images_per_second": len(xtr) / train_s,
                           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        print(line, flush=True)
        if sink:
            sink.write(line + "\n")
            sink.flush()
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "epochs": epochs, "batch": batch,
                      "augment": augment, "best_test_accuracy": best, "seconds": total_s,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="mnist", choices=["mnist", "cifar10"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--train", metavar="DATA_DIR", help="train on real IDX data instead of timing steps")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--augment", action="store_true", help="the authors' RandomAffine")
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--out", help="also write the per-epoch lines here")
    a = ap.parse_args()
    if a.train:
        return train(a.train, a.batch, a.epochs, a.augment, a.seed, a.out)
    torch.manual_seed(0)
    net = Net(a.net, 8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    shape = (a.batch, 1, 28, 28) if a.net == "mnist" else (a.batch, 3, 32, 32)
    times = []
    for i in range(a.warmup + a.steps):
        x = torch.rand(shape)
        y = F.one_hot(torch.arange(a.batch) % 10, 10).float()
        t0 = time.perf_counter()
        if a.mode == "train":
            net.train()
            loss = F.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            net.eval()
            with torch.no_grad():
                net(x)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}", "net": a.net, "mode": a.mode, "batch": a.batch,
        "threads": torch.get_num_threads(), "median_s": med, "min_s": min(times), "max_s": max(times),
        "images_per_second": a.batch / med,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
