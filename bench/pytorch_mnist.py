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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="mnist", choices=["mnist", "cifar10"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--mode", default="train", choices=["train", "infer"])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
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
