#!/usr/bin/env python3
"""PyTorch reference of pdpipe's Patch Diffusion U-Net (EDM's SongUNet, DDPM++ configuration).

Written for pdpipe from the EDM paper/code's description (not copied): a functional network over a
flat dict of parameters named exactly like pdpipe's `SongUNet.namedParameters()`, so weights exported
by `pdpipe-bench diffusion-export` load one-to-one.

Modes:
  crosscheck DIR   compare pdpipe's loss and gradients (DIR from `pdpipe-bench diffusion-export DIR`)
                   with this implementation in float32 and float64; prints a report, exit 1 on failure.
  bench            time a training step (forward + backward + Adam) and a sampling forward of the
                   benchmark config; prints one JSON line (used by `pdpipe-bench diffusion`).
                   With --profile: the loss-and-gradients pass and the forward split into conv,
                   matmul, GroupNorm, SiLU and the rest, plus Adam (used by `pdpipe-bench step-breakdown`).
Without torch the script prints a notice and exits 0 (skipped).
"""
import argparse
import json
import math
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    print(json.dumps({"skipped": "torch/numpy not importable"}))
    sys.exit(0)


# ----------------------------------------------------------------------------- archive reader

def read_archive(path):
    """pdpipe TensorArchive: 'PDTENSOR', u64 header length, JSON header, pad to 64, float32 LE data."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"PDTENSOR", f"{path}: bad magic"
    (hlen,) = struct.unpack("<Q", data[8:16])
    header = json.loads(data[16:16 + hlen])
    start = 16 + hlen
    start += (64 - start % 64) % 64
    tensors = {}
    for e in header["tensors"]:
        n = int(np.prod(e["shape"])) if e["shape"] else 1
        arr = np.frombuffer(data, dtype="<f4", count=n, offset=start + e["offset"]).reshape(e["shape"])
        tensors[e["name"]] = arr.copy()
    return json.loads(header["metadata"]), tensors


# ----------------------------------------------------------------------------- network

def groups_for(c):
    return max(1, min(32, c // 4))


class Structure:
    """The block list of SongUNet for a config, with the same names pdpipe uses."""

    def __init__(self, cfg):
        self.cfg = cfg
        mc, mults, nb, attn = cfg["modelChannels"], cfg["channelMult"], cfg["numBlocks"], set(cfg["attentionLevels"])
        self.encoder, self.decoder = [], []
        skips, cout = [mc], mc
        for level, mult in enumerate(mults):
            if level > 0:
                self.encoder.append((f"enc.L{level}.down", cout, cout, "down", False))
                skips.append(cout)
            for i in range(nb):
                self.encoder.append((f"enc.L{level}.block{i}", cout, mc * mult, None, level in attn))
                cout = mc * mult
                skips.append(cout)
        for level in reversed(range(len(mults))):
            mult = mults[level]
            if level == len(mults) - 1:
                self.decoder.append((f"dec.L{level}.in0", cout, cout, None, True))
                self.decoder.append((f"dec.L{level}.in1", cout, cout, None, False))
            else:
                self.decoder.append((f"dec.L{level}.up", cout, cout, "up", False))
            for i in range(nb + 1):
                cin = cout + skips.pop()
                cout = mc * mult
                self.decoder.append((f"dec.L{level}.block{i}", cin, cout, None, i == nb and level in attn))
        self.out_channels = cout


def gn(x, P, name):
    c = x.shape[1]
    return F.group_norm(x, groups_for(c), P[name + ".weight"], P[name + ".bias"], eps=1e-6)


def conv(x, P, name, pad):
    return F.conv2d(x, P[name + ".weight"], P.get(name + ".bias"), padding=pad)


def resample(x, mode):
    if mode == "down":  # EDM's [1,1] filter, stride 2 = 2x2 average
        return F.avg_pool2d(x, 2)
    if mode == "up":  # transposed conv with 4 * filter = nearest-neighbour 2x
        return F.interpolate(x, scale_factor=2, mode="nearest")
    return x


def unet_block(x, emb, P, name, cin, cout, mode, attention):
    skip_scale = math.sqrt(0.5)
    h = resample(F.silu(gn(x, P, name + ".norm0")), mode)
    h = conv(h, P, name + ".conv0", 1)
    h = h + F.linear(emb, P[name + ".affine.weight"], P[name + ".affine.bias"])[:, :, None, None]
    h = conv(F.silu(gn(h, P, name + ".norm1")), P, name + ".conv1", 1)
    s = conv(resample(x, mode), P, name + ".skip", 0) if (cin != cout or mode) else x
    x = (h + s) * skip_scale
    if attention:
        n, c, hh, ww = x.shape
        qkv = conv(gn(x, P, name + ".norm2"), P, name + ".attn.qkv", 0)
        q, k, v = qkv.reshape(n, c, 3, hh * ww).unbind(2)  # EDM layout: channel 3c + j
        w = torch.softmax(torch.einsum("ncq,nck->nqk", q, k / math.sqrt(c)), dim=2)
        a = torch.einsum("nqk,nck->ncq", w, v).reshape(n, c, hh, ww)
        x = (conv(a, P, name + ".attn.proj", 0) + x) * skip_scale
    return x


def noise_embedding(c_noise, channels):
    half = channels // 2
    freqs = torch.arange(half, dtype=c_noise.dtype) / (half - 1)
    freqs = (1 / 10000) ** freqs
    x = torch.outer(c_noise, freqs)
    return torch.cat([x.sin(), x.cos()], dim=1)  # EDM swaps the [cos, sin] halves


def unet(x, c_noise, P, st):
    emb = noise_embedding(c_noise, st.cfg["modelChannels"])
    emb = F.silu(F.linear(emb, P["map.layer0.weight"], P["map.layer0.bias"]))
    emb = F.silu(F.linear(emb, P["map.layer1.weight"], P["map.layer1.bias"]))
    h = conv(x, P, "enc.L0.conv", 1)
    skips = [h]
    for name, cin, cout, mode, attn in st.encoder:
        h = unet_block(h, emb, P, name, cin, cout, mode, attn)
        skips.append(h)
    for name, cin, cout, mode, attn in st.decoder:
        if h.shape[1] != cin:
            h = torch.cat([h, skips.pop()], dim=1)
        h = unet_block(h, emb, P, name, cin, cout, mode, attn)
    return conv(F.silu(gn(h, P, "out.norm")), P, "out.conv", 1)


def edm_loss(P, st, clean, noisy, sigmas, coords, sd=0.5):
    s = sigmas[:, None, None, None]
    c_skip = sd ** 2 / (s ** 2 + sd ** 2)
    c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
    c_in = 1 / (s ** 2 + sd ** 2).sqrt()
    c_noise = sigmas.log() / 4
    x_in = torch.cat([c_in * noisy, coords], dim=1) if coords is not None else c_in * noisy
    d = c_skip * noisy + c_out * unet(x_in, c_noise, P, st)
    weight = (s ** 2 + sd ** 2) / (s * sd) ** 2
    return (weight * (d - clean) ** 2).sum(dim=(1, 2, 3)).mean()  # sum per patch, mean over patches


# ----------------------------------------------------------------------------- cross-check

def crosscheck(directory):
    _, batch = read_archive(f"{directory}/batch.pdt")
    meta_b, _ = read_archive(f"{directory}/batch.pdt")
    ok = True
    lines = []
    for case in ["init", "perturbed"]:
        cfg, weights = read_archive(f"{directory}/weights-{case}.pdt")
        ours_meta, ours_grads = read_archive(f"{directory}/grads-{case}.pdt")
        st = Structure(cfg)
        results = {}
        for dtype in [torch.float32, torch.float64]:
            P = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in weights.items()}
            args = [torch.tensor(batch[k], dtype=dtype) for k in ["clean", "noisy"]]
            sig = torch.tensor(meta_b["sigmas"], dtype=dtype)
            coords = torch.tensor(batch["coords"], dtype=dtype) if cfg["coordinates"] else None
            loss = edm_loss(P, st, args[0], args[1], sig, coords)
            loss.backward()
            results[dtype] = (loss.item(), {k: p.grad.double().numpy() for k, p in P.items()})
        missing = set(weights) ^ set(results[torch.float64][1])
        assert not missing, f"parameter names differ: {missing}"
        ref_loss, ref_g = results[torch.float64]
        t32_loss, t32_g = results[torch.float32]
        ours_loss = ours_meta["loss"]

        def rel(a, b):
            return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))

        g_ours = {k: rel(ours_grads[k].astype(np.float64), ref_g[k]) for k in ref_g}
        g_t32 = {k: rel(t32_g[k], ref_g[k]) for k in ref_g}
        # Whole-gradient relative error (all parameters concatenated) and the worst single tensor.
        cat = lambda d: np.concatenate([d[k].ravel().astype(np.float64) for k in sorted(ref_g)])
        whole_ours = rel(cat(ours_grads), cat(ref_g))
        whole_t32 = rel(cat(t32_g), cat(ref_g))
        worst = max(g_ours, key=g_ours.get)
        loss_rel_ours = abs(ours_loss - ref_loss) / abs(ref_loss)
        loss_rel_t32 = abs(t32_loss - ref_loss) / abs(ref_loss)
        passed = loss_rel_ours < 1e-4 and whole_ours < 1e-3 and g_ours[worst] < 1e-2
        ok &= passed
        lines.append(f"### case `{case}` ({sum(v.size for v in weights.values())} parameters, {len(weights)} tensors)\n")
        lines.append("| quantity | pdpipe (fp32) vs torch fp64 | torch fp32 vs torch fp64 |")
        lines.append("|---|---:|---:|")
        lines.append(f"| loss ({ref_loss:.6g}) relative error | {loss_rel_ours:.2e} | {loss_rel_t32:.2e} |")
        lines.append(f"| all gradients, relative L2 error | {whole_ours:.2e} | {whole_t32:.2e} |")
        lines.append(f"| worst single tensor ({worst}) | {g_ours[worst]:.2e} | {g_t32[worst]:.2e} |")
        lines.append(f"| median tensor | {np.median(list(g_ours.values())):.2e} | {np.median(list(g_t32.values())):.2e} |")
        lines.append(f"\nResult: {'PASS' if passed else 'FAIL'} (tolerances: loss 1e-4, all gradients 1e-3, any tensor 1e-2)\n")
    print("\n".join(lines))
    return ok


# ----------------------------------------------------------------------------- benchmark

def autocast(precision):
    """bf16: PyTorch's CPU autocast (bf16 convolutions and matmuls, fp32 weights, optimizer and
    the ops autocast keeps in fp32); fp32: no autocast."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def bench_setup(threads, batch, model_channels, num_blocks, resolution, sample_batch):
    """The benchmark network, optimizer and inputs: (P, st, opt, loss_and_grads, forward)."""
    torch.set_num_threads(threads)
    cfg = {"imageChannels": 3, "coordinates": True, "modelChannels": model_channels, "channelMult": [1, 2, 2],
           "numBlocks": num_blocks, "attentionLevels": [1]}
    st = Structure(cfg)
    g = torch.Generator().manual_seed(0)
    P = {}

    def param(name, shape, fan_in, fan_out, scale=1.0):
        bound = scale * math.sqrt(6 / (fan_in + fan_out))
        P[name] = ((torch.rand(shape, generator=g) * 2 - 1) * bound).requires_grad_()

    def conv_p(name, cin, cout, k, scale=1.0):
        param(name + ".weight", (cout, cin, k, k), cin * k * k, cout * k * k, scale)
        P[name + ".bias"] = torch.zeros(cout, requires_grad=True)

    def lin_p(name, cin, cout):
        param(name + ".weight", (cout, cin), cin, cout)
        P[name + ".bias"] = torch.zeros(cout, requires_grad=True)

    def gn_p(name, c):
        P[name + ".weight"] = torch.ones(c, requires_grad=True)
        P[name + ".bias"] = torch.zeros(c, requires_grad=True)

    mc, emb = model_channels, 4 * model_channels
    lin_p("map.layer0", mc, emb)
    lin_p("map.layer1", emb, emb)
    conv_p("enc.L0.conv", 5, mc, 3)
    for name, cin, cout, mode, attn in st.encoder + st.decoder:
        gn_p(name + ".norm0", cin)
        conv_p(name + ".conv0", cin, cout, 3)
        lin_p(name + ".affine", emb, cout)
        gn_p(name + ".norm1", cout)
        conv_p(name + ".conv1", cout, cout, 3, 1e-5)
        if cin != cout or mode:
            conv_p(name + ".skip", cin, cout, 1)
        if attn:
            gn_p(name + ".norm2", cout)
            conv_p(name + ".attn.qkv", cout, 3 * cout, 1, math.sqrt(0.2))
            conv_p(name + ".attn.proj", cout, cout, 1, 1e-5)
    gn_p("out.norm", st.out_channels)
    conv_p("out.conv", st.out_channels, 3, 3, 1e-5)
    opt = torch.optim.Adam(list(P.values()), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
    clean = torch.rand(batch, 3, resolution, resolution, generator=g) * 2 - 1
    coords = torch.zeros(batch, 2, resolution, resolution)
    sig = torch.exp(torch.randn(batch, generator=g) * 1.2 - 1.2)
    noisy = clean + sig[:, None, None, None] * torch.randn(clean.shape, generator=g)

    def loss_and_grads(precision="fp32"):
        opt.zero_grad(set_to_none=True)
        with autocast(precision):  # the forward under autocast, the backward outside (as PyTorch advises)
            loss = edm_loss(P, st, clean, noisy, sig, coords)
        loss.backward()

    xs = torch.randn(sample_batch, 5, resolution, resolution, generator=g)
    cn = torch.full((sample_batch,), 0.1)

    def fwd():
        with torch.no_grad():
            unet(xs, cn, P, st)

    return P, st, opt, loss_and_grads, fwd


def timed(fn, runs):
    """Median and all wall seconds of `runs` calls of fn after one warm-up call."""
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2], ts


def bench(threads, batch, runs, model_channels, num_blocks, resolution, sample_batch, precision="fp32"):
    P, st, opt, loss_and_grads, fwd = bench_setup(threads, batch, model_channels, num_blocks, resolution, sample_batch)

    def step():
        loss_and_grads(precision)
        opt.step()

    def forward():
        with autocast(precision):
            fwd()

    step_s, step_all = timed(step, runs)
    fwd_s, fwd_all = timed(forward, runs)
    print(json.dumps({"torch": torch.__version__, "threads": threads, "precision": precision,
                      "step_ms": step_s * 1e3, "step_runs_ms": [t * 1e3 for t in step_all],
                      "forward_ms": fwd_s * 1e3, "forward_runs_ms": [t * 1e3 for t in fwd_all],
                      "parameters": sum(p.numel() for p in P.values())}))


def op_category(name):
    """The breakdown's category of a profiler op (forward ops and their autograd nodes alike)."""
    n = name.lower().replace("aten::", "").replace("_", "")
    if "conv" in n:
        return "conv"
    if "groupnorm" in n:
        return "GroupNorm"
    if "silu" in n:
        return "SiLU"
    if n.removesuffix("backward0") in ("mm", "bmm", "addmm", "baddbmm", "matmul", "linear"):
        return "matmul"
    return "rest"


def breakdown(fn, runs):
    """Wall ms of fn (median, unprofiled) split by the categories' shares of profiled self time
    (the profiler's own overhead falls mostly on small ops, so shares, not its times, are used)."""
    total, _ = timed(fn, runs)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            fn()
    parts = {"conv": 0.0, "matmul": 0.0, "GroupNorm": 0.0, "SiLU": 0.0, "rest": 0.0}
    for e in prof.key_averages():
        parts[op_category(e.key)] += e.self_cpu_time_total
    whole = sum(parts.values()) or 1.0
    return {"total_ms": total * 1e3, "parts_ms": {k: total * 1e3 * v / whole for k, v in parts.items()}}


def profile(threads, batch, runs, model_channels, num_blocks, resolution, sample_batch, precision="fp32"):
    P, st, opt, loss_and_grads, fwd = bench_setup(threads, batch, model_channels, num_blocks, resolution, sample_batch)

    def forward():
        with autocast(precision):
            fwd()

    step = breakdown(lambda: loss_and_grads(precision), runs)
    loss_and_grads(precision)
    step["optimizer_ms"] = timed(opt.step, runs)[0] * 1e3
    print(json.dumps({"torch": torch.__version__, "threads": threads, "precision": precision, "loss_and_grads": step,
                      "forward": breakdown(forward, runs)}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("crosscheck")
    c.add_argument("directory")
    b = sub.add_parser("bench")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--sample-batch", type=int, default=64)
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--model-channels", type=int, default=64)
    b.add_argument("--resolution", type=int, default=32)
    b.add_argument("--num-blocks", type=int, default=2)
    b.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="bf16: the step and forward under torch.autocast(cpu, bfloat16)")
    b.add_argument("--profile", action="store_true",
                   help="split the step and the forward into conv, matmul, GroupNorm, SiLU and the rest (torch.profiler)")
    a = ap.parse_args()
    if a.mode == "crosscheck":
        sys.exit(0 if crosscheck(a.directory) else 1)
    if a.profile:
        profile(a.threads, a.batch, a.runs, a.model_channels, a.num_blocks, a.resolution, a.sample_batch, a.precision)
    else:
        bench(a.threads, a.batch, a.runs, a.model_channels, a.num_blocks, a.resolution, a.sample_batch, a.precision)
