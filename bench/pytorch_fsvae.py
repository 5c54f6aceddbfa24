#!/usr/bin/env python3
"""PyTorch twin of configs/fsvae-mnist-taid.toml (the fully spiking VAE of
Kamata et al. with the paper's TAID output decoder) for side-by-side speed
and memory figures with `snn bench`.

Written from the FSVAE paper and the structure of its public code; the
network is the one `snn-models/src/vae/fsvae.rs` builds:

- LIF `u = tau * u * (1 - o) + x`, `o = u > V_th` (tau 0.25, V_th 0.2,
  fixed), rectangular surrogate of width 1 centred on the membrane `u`,
  gradient through the reset;
- tdBN: batch norm over time, batch and space per channel, the normalised
  value scaled by `alpha * V_th` (alpha 2 in the posterior and prior);
- encoder: four stride-2 3x3 convolutions (32, 64, 128, 256), each tdBN +
  LIF, the first run once on the static image (direct encoding), then a
  linear layer to the latent (128) with tdBN + LIF;
- posterior q(z_t | x_<=t, z_<t) and prior p(z_t | z_<t): three linear
  layers each (2C, 4C, C*k), tdBN + LIF; z_t is one of the k spikes of each
  latent picked at random;
- decoder: linear to a 2x2x256 map (tdBN + LIF), stride-2 transposed
  convolutions 256 -> 128 -> 64 -> 32 -> 32 (tdBN + LIF), a stride-1 one to
  the image channels, TAID (per-channel H, W means, full T x T mixing,
  sigmoid weights, sum over T), tanh;
- loss: MSE + FSVAE's "mmd" (squared difference of the PSP-filtered spike
  probabilities, tau_s 2); AdamW lr 1e-3, weight decay 1e-3.

Time is folded into the batch, time-major (`[T * B, ...]`), so every layer
is one batched call, as in snn-rs.

The autoregressive passes without gradients (posterior sampling, scheduled
sampling of the prior, the prior when generating) run by default as snn-rs
runs them: one time step at a time with the neuron state carried and batch
norm on its running statistics, O(T) layer work. `--prefix-rerun` runs them
as the FSVAE code does instead: the whole prefix `z_<=t` again at every
step with batch statistics of that prefix, O(T^2).

    bench/run-pytorch.sh pytorch_fsvae.py --batch 64 --mode train
"""
import argparse, json, math, random, resource, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F

TAU, V_TH, WINDOW = 0.25, 0.2, 1.0


class SpikeRect(torch.autograd.Function):
    """Heaviside of `u - V_th`; gradient 1/width inside |u| < width/2."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u > V_TH).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * (u.abs() < WINDOW / 2).to(g.dtype) / WINDOW


def lif(x):
    """x: [T, M] currents -> [T, M] spikes, state from zero."""
    u = torch.zeros_like(x[0])
    o = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        u = TAU * u * (1 - o) + x[t]
        o = SpikeRect.apply(u)
        out.append(o)
    return torch.stack(out)


class TdBN(nn.BatchNorm2d):
    """tdBN on `[N, C]` or `[N, C, H, W]` with N = T * B."""

    def __init__(self, channels, alpha=1.0):
        super().__init__(channels)
        self.scale = alpha * V_TH

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight * self.scale,
                            self.bias, self.training, self.momentum, self.eps)


class Block(nn.Module):
    """Weight layer, tdBN and LIF (or only the weight layer when `plain`)."""

    def __init__(self, layer, channels, alpha=1.0, plain=False):
        super().__init__()
        self.layer = layer
        self.bn = None if plain else TdBN(channels, alpha)

    def current(self, x):
        y = self.layer(x)
        return y if self.bn is None else self.bn(y)

    def forward(self, x, steps, static=False):
        """x: [T * B, ...], or [B, ...] repeated over the steps when `static`
        (direct encoding: the weight layer and tdBN run once)."""
        y = self.current(x)
        if self.bn is None:
            return y
        if static:
            seq = y.reshape(1, -1).expand(steps, -1)
            return lif(seq).reshape(steps * y.shape[0], *y.shape[1:])
        return lif(y.reshape(steps, -1)).reshape(y.shape)


def stack(sizes, alpha):
    return nn.ModuleList(Block(nn.Linear(a, b), b, alpha) for a, b in zip(sizes, sizes[1:]))


class Stepper:
    """Runs a stack of spiking linear blocks one step at a time without
    gradients: running statistics in batch norm, LIF state carried."""

    def __init__(self, blocks):
        self.blocks = blocks
        self.state = [None] * len(blocks)

    def step(self, x):
        for i, b in enumerate(self.blocks):
            was = b.training
            b.eval()
            c = b.current(x)
            b.train(was)
            u, o = self.state[i] if self.state[i] is not None else (torch.zeros_like(c), torch.zeros_like(c))
            u = TAU * u * (1 - o) + c
            o = (u > V_TH).to(c.dtype)
            self.state[i] = (u, o)
            x = o
        return x


def run_stack(blocks, x, steps):
    for b in blocks:
        x = b(x, steps)
    return x


def pick(q, k, idx):
    """q: [R, C * k], idx: [R, C] in 0..k -> [R, C]."""
    r, ck = q.shape
    return q.reshape(r, ck // k, k).gather(2, idx.unsqueeze(-1)).squeeze(-1)


class Fsvae(nn.Module):
    def __init__(self, steps=16, latent=128, k=20, channels=(32, 64, 128, 256), image_channels=1,
                 prefix_rerun=False):
        super().__init__()
        self.T, self.C, self.k, self.prefix_rerun = steps, latent, k, prefix_rerun
        self.channels = list(channels)
        enc, cin = [], image_channels
        for c in channels:
            enc.append(Block(nn.Conv2d(cin, c, 3, 2, 1), c))
            cin = c
        enc.append(Block(nn.Sequential(nn.Flatten(), nn.Linear(cin * 4, latent)), latent))
        self.encoder = nn.ModuleList(enc)
        self.posterior = stack([2 * latent, 2 * latent, 4 * latent, k * latent], 2.0)
        self.prior = stack([latent, 2 * latent, 4 * latent, k * latent], 2.0)
        rev = list(reversed(channels))
        dec = [Block(nn.Linear(latent, rev[0] * 4), rev[0] * 4)]
        for a, b in zip(rev, rev[1:]):
            dec.append(Block(nn.ConvTranspose2d(a, b, 3, 2, 1, 1), b))
        dec.append(Block(nn.ConvTranspose2d(rev[-1], rev[-1], 3, 2, 1, 1), rev[-1]))
        dec.append(Block(nn.ConvTranspose2d(rev[-1], image_channels, 3, 1, 1), image_channels, plain=True))
        self.decoder = nn.ModuleList(dec)
        # TAID: full T x T mixing, torch's default init of a T-input layer.
        bound = 1 / math.sqrt(steps)
        self.taid = nn.Parameter(torch.empty(steps, steps).uniform_(-bound, bound))
        self.p = 0.1

    def picks(self, rows):
        return torch.randint(0, self.k, (rows, self.C))

    # --- the autoregressive passes without gradients -------------------
    def prefix_last(self, blocks, seq):
        """The FSVAE code's way: the stack on the whole prefix `seq`
        ([t, B, F]), batch statistics of the prefix; its last step."""
        t, b, f = seq.shape
        return run_stack(blocks, seq.reshape(t * b, f), t).reshape(t, b, -1)[-1]

    @torch.no_grad()
    def posterior_inputs(self, enc):
        """z[t-1] for every t ([T, B, C], zeros at t = 0), and the picks."""
        T, B = self.T, enc.shape[0] // self.T
        enc = enc.reshape(T, B, self.C)
        z_prev = torch.zeros(T, B, self.C)
        picks = self.picks(T * B).reshape(T, B, self.C)
        stepper = Stepper(self.posterior)
        for t in range(T - 1):
            if self.prefix_rerun:
                q_t = self.prefix_last(self.posterior, torch.cat([enc[:t + 1], z_prev[:t + 1]], 2))
            else:
                q_t = stepper.step(torch.cat([enc[t], z_prev[t]], 1))
            z_prev[t + 1] = pick(q_t, self.k, picks[t])
        return z_prev, picks

    @torch.no_grad()
    def scheduled_inputs(self, p_in):
        """Scheduled sampling of the prior's inputs p_in ([T, B, C])."""
        stepper = Stepper(self.prior)
        for t in range(self.T - 1):
            if self.prefix_rerun:
                if t >= 5 and random.random() < self.p:
                    out = self.prefix_last(self.prior, p_in[:t + 1])
                else:
                    continue
            else:
                out = stepper.step(p_in[t])
                if not (t >= 5 and random.random() < self.p):
                    continue
            prob = out.reshape(out.shape[0], self.C, self.k).mean(-1)
            p_in[t + 1] = (prob + 1e-3 * torch.randn_like(prob) > 0.5).float()
        return p_in

    # --- the model -----------------------------------------------------
    def encode(self, x):
        T = self.T
        y = self.encoder[0](x, T, static=True)
        for b in self.encoder[1:]:
            y = b(y, T)
        enc = y  # [T * B, C]
        z_prev, picks = self.posterior_inputs(enc.detach())
        B = x.shape[0]
        q = run_stack(self.posterior, torch.cat([enc, z_prev.reshape(T * B, self.C)], 1), T)
        z = pick(q, self.k, picks.reshape(T * B, self.C))
        p_in = torch.zeros(T, B, self.C)
        p_in[1:] = z.detach().reshape(T, B, self.C)[:-1]
        if self.training:
            p_in = self.scheduled_inputs(p_in)
        p = run_stack(self.prior, p_in.reshape(T * B, self.C), T)
        return q, p, z

    def decode(self, z):
        T = self.T
        rows = z.shape[0]
        y = self.decoder[0](z, T).reshape(rows, self.channels[-1], 2, 2)
        for b in self.decoder[1:]:
            y = b(y, T)
        s = y.reshape(T, rows // T, *y.shape[1:])  # [T, B, C, H, W]
        x = s.mean((3, 4))  # [T, B, C]
        w = torch.sigmoid(torch.einsum("ts,sbc->tbc", self.taid, x))
        return torch.tanh((w[..., None, None] * s).sum(0))

    def loss(self, x):
        q, p, z = self.encode(x)
        recon = F.mse_loss(self.decode(z), x)
        T = self.T
        prob = lambda s: s.reshape(T, -1, self.k).mean(-1)  # [T, B * C]
        d = prob(q) - prob(p)
        syn, acc = torch.zeros_like(d[0]), []
        for t in range(T):  # PSP filter, tau_s = 2
            syn = syn + (d[t] - syn) / 2.0
            acc.append(syn)
        return recon + torch.stack(acc).square().mean()

    @torch.no_grad()
    def sample(self, count):
        T = self.T
        z = torch.zeros(T + 1, count, self.C)
        picks = self.picks(T * count).reshape(T, count, self.C)
        stepper = Stepper(self.prior)
        for t in range(T):
            if self.prefix_rerun:
                out = self.prefix_last(self.prior, z[:t + 1])
            else:
                out = stepper.step(z[t])
            z[t + 1] = pick(out, self.k, picks[t])
        return self.decode(z[1:].reshape(T * count, self.C))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mode", default="train", choices=["train", "sample"])
    ap.add_argument("--time-steps", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--prefix-rerun", action="store_true",
                    help="autoregressive passes as the FSVAE code runs them (O(T^2))")
    a = ap.parse_args()
    torch.manual_seed(0)
    random.seed(0)
    net = Fsvae(steps=a.time_steps, prefix_rerun=a.prefix_rerun)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-3)
    times = []
    for i in range(a.warmup + a.steps):
        x = torch.rand(a.batch, 1, 32, 32)
        t0 = time.perf_counter()
        if a.mode == "train":
            net.train()
            loss = net.loss(x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            net.eval()
            net.sample(a.batch)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}", "net": "fsvae-mnist-taid", "mode": a.mode,
        "batch": a.batch, "time_steps": a.time_steps, "prefix_rerun": a.prefix_rerun,
        "parameters": sum(p.numel() for p in net.parameters()),
        "threads": torch.get_num_threads(), "median_s": med, "min_s": min(times),
        "max_s": max(times), "images_per_second": a.batch / med,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
