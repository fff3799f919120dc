#!/usr/bin/env python3
"""PyTorch CPU fp32 reference timings for `pdpipe-bench engine`.

Times forward+backward of (1) the reference residual block (EDM DDPM++ UNetBlock without
attention: GroupNorm-SiLU-Conv3x3-(emb add)-GroupNorm-SiLU-Dropout-Conv3x3 + skip, times
sqrt(0.5)) and (2) each conv shape passed in --convs, with the same shapes as the Swift side.
Prints one JSON object. Exits with status 3 if torch is not importable (the bench skips it).
"""
import argparse, json, sys, time

try:
    import torch
except ImportError:
    sys.exit(3)


def median_ms(fn, runs, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


class Block(torch.nn.Module):
    def __init__(self, c, emb, dropout):
        super().__init__()
        self.norm0 = torch.nn.GroupNorm(32, c, eps=1e-6)
        self.conv0 = torch.nn.Conv2d(c, c, 3, padding=1)
        self.affine = torch.nn.Linear(emb, c)
        self.norm1 = torch.nn.GroupNorm(32, c, eps=1e-6)
        self.dropout = torch.nn.Dropout(dropout)
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, emb):
        h = self.conv0(torch.nn.functional.silu(self.norm0(x)))
        h = h + self.affine(emb).unsqueeze(2).unsqueeze(3)
        h = torch.nn.functional.silu(self.norm1(h))
        h = self.conv1(self.dropout(h))
        return (h + x) * (0.5 ** 0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--emb", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--convs", default="[]", help='JSON list of [cin, cout, kernel, resolution]')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}

    blk = Block(a.channels, a.emb, a.dropout)
    x = torch.randn(a.batch, a.channels, a.resolution, a.resolution, requires_grad=True)
    emb = torch.randn(a.batch, a.emb, requires_grad=True)
    g = torch.randn(a.batch, a.channels, a.resolution, a.resolution)

    def block_step():
        blk.zero_grad(set_to_none=False)
        x.grad = None
        emb.grad = None
        blk(x, emb).backward(g)

    out["block_ms"] = median_ms(block_step, a.runs)
    out["block_forward_ms"] = median_ms(lambda: blk(x, emb), a.runs)

    convs = {}
    for cin, cout, k, r in json.loads(a.convs):
        conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2)
        xi = torch.randn(a.batch, cin, r, r, requires_grad=True)
        gi = torch.randn(a.batch, cout, r, r)

        def step():
            conv.zero_grad(set_to_none=False)
            xi.grad = None
            conv(xi).backward(gi)

        convs[f"{cin}-{cout}-{k}-{r}"] = median_ms(step, a.runs)
    out["conv_ms"] = convs
    print(json.dumps(out))


if __name__ == "__main__":
    main()
