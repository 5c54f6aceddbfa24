#!/usr/bin/env python3
"""PyTorch twin of configs/mnist-alif.toml (and cifar10-alif.toml) for
side-by-side speed and memory figures with `snn bench`.

Same network (Table 8 notation), same neuron (u = tau*u*(1-o) + x, hard
reset, learned tau and V_th per layer, ATan surrogate alpha 2), direct
encoding (first conv+BN once), dropout mask shared over T, MSE on the rate,
Adam 1e-3. Random inputs, like `snn bench`.

    bench/run-pytorch.sh --net mnist --batch 16 --mode train
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
    def __init__(self, tau=0.25, v_th=0.2):
        super().__init__()
        self.tau = nn.Parameter(torch.tensor(tau))
        self.v_th = nn.Parameter(torch.tensor(v_th))

    def forward(self, x):  # x: [T, B, ...]
        u = torch.zeros_like(x[0])
        o = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            u = self.tau * u * (1 - o) + x[t]
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
    def __init__(self, net, T):
        super().__init__()
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
                    self.body.append(ALIF())
                    first = False
                else:
                    self.body.append(nn.Sequential(nn.Conv2d(chans, chans, 3, 1, 1, bias=False), nn.BatchNorm2d(chans)))
                    self.body.append(ALIF())
            self.body.append(nn.MaxPool2d(2, 2))
            side //= 2
        self.head = nn.ModuleList([
            SeqDropout(0.5), nn.Flatten(), nn.Linear(chans * side * side, 2048, bias=False), ALIF(),
            SeqDropout(0.5), nn.Linear(2048, 100, bias=False), ALIF()])

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


def one_epoch(root, batch, seed):
    """Trains one epoch of MNIST with the snn-rs recipe and reports test accuracy."""
    import os
    find = lambda n: os.path.join(root, n) if os.path.exists(os.path.join(root, n)) else os.path.join(root, n + ".gz")
    xtr = load_idx(find("train-images-idx3-ubyte")).float().div(255).unsqueeze(1)
    ytr = load_idx(find("train-labels-idx1-ubyte")).long()
    xte = load_idx(find("t10k-images-idx3-ubyte")).float().div(255).unsqueeze(1)
    yte = load_idx(find("t10k-labels-idx1-ubyte")).long()
    torch.manual_seed(seed)
    net = Net("mnist", 8)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = (len(xtr) + batch - 1) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    perm = torch.randperm(len(xtr))
    t0 = time.perf_counter()
    net.train()
    for i in range(steps):
        idx = perm[i * batch:(i + 1) * batch]
        loss = F.mse_loss(net(xtr[idx]), F.one_hot(ytr[idx], 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    train_s = time.perf_counter() - t0
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(xte), 64):
            correct += (net(xte[i:i + 64]).argmax(1) == yte[i:i + 64]).sum().item()
    print(json.dumps({"framework": f"pytorch {torch.__version__}", "epochs": 1, "batch": batch,
                      "train_seconds": train_s, "images_per_second": len(xtr) / train_s,
                      "test_accuracy": correct / len(xte),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="mnist", choices=["mnist", "cifar10"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--epoch", metavar="MNIST_DIR", help="train one real epoch instead of timing steps")
    a = ap.parse_args()
    if a.epoch:
        return one_epoch(a.epoch, a.batch, 2023)
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
