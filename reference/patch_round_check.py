#!/usr/bin/env python3
"""Checks pdpipe's Patch Diffusion training rounds against the official code's conventions.

Input: DIR from `pdpipe-bench patch-round-export DIR` (one round at each patch size, drawn by the
trainer's own round drawing, with pdpipe's patches, coordinates, loss and gradients).
Rebuilt here, independently, as the official Patch Diffusion code does it (its `pachify` and loss):
  - batch multiplier: a round of patch size s holds B * m(s) patches, m = 4, 2, 1 for R/4, R/2, R
    (the official batch_mul_dict ratio);
  - crop: patch k = image[:, i:i+s, j:j+s] with the top-left (i, j) uniform in [0, R - s], (0, 0) at s = R;
  - coordinates: channel 0 is x = (j + column) / (R - 1) * 2 - 1, channel 1 is y = (i + row) / (R - 1) * 2 - 1,
    concatenated AFTER c_in * x_noisy at the network input;
  - loss: lambda(sigma) (D - y)^2 summed over all elements, divided by B * batch_mul.
The network is reference/unet_reference.py's PyTorch implementation in float64.
Prints a Markdown report; exit 1 on a mismatch. Without torch: prints a notice and exits 0.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import numpy as np
    import torch
except ImportError:  # pragma: no cover
    print(json.dumps({"skipped": "torch/numpy not importable"}))
    sys.exit(0)
from unet_reference import Structure, read_archive, unet  # noqa: E402


def pachify(images, rows, columns, s, resolution):
    """The official crop and coordinate planes for given top-left corners (i = rows, j = columns)."""
    n = images.shape[0]
    i, j = torch.tensor(rows), torch.tensor(columns)
    r_idx = torch.arange(s)[None, :] + i[:, None]
    c_idx = torch.arange(s)[None, :] + j[:, None]
    patches = images.permute(1, 0, 2, 3)[:, torch.arange(n)[:, None, None], r_idx[:, torch.arange(s)[:, None]], c_idx[:, None]]
    patches = patches.permute(1, 0, 2, 3)
    x_pos = torch.arange(s).unsqueeze(0).repeat(s, 1)[None, None].repeat(n, 1, 1, 1) + j.view(-1, 1, 1, 1)
    y_pos = torch.arange(s).unsqueeze(1).repeat(1, s)[None, None].repeat(n, 1, 1, 1) + i.view(-1, 1, 1, 1)
    x_pos = (x_pos / (resolution - 1) - 0.5) * 2.0
    y_pos = (y_pos / (resolution - 1) - 0.5) * 2.0
    return patches, torch.cat((x_pos, y_pos), dim=1)


def official_loss(P, st, clean, noisy, sigmas, coords, batch, batch_mul, sd=0.5):
    s = sigmas[:, None, None, None]
    c_skip, c_out = sd ** 2 / (s ** 2 + sd ** 2), s * sd / (s ** 2 + sd ** 2).sqrt()
    c_in, c_noise = 1 / (s ** 2 + sd ** 2).sqrt(), sigmas.log() / 4
    x_in = torch.cat((c_in * noisy, coords), dim=1)  # coordinates after the scaled image channels
    d = c_skip * noisy + c_out * unet(x_in, c_noise, P, st)
    weight = (s ** 2 + sd ** 2) / (s * sd) ** 2
    return (weight * (d - clean) ** 2).sum() / (batch * batch_mul)


def main(directory):
    meta, t = read_archive(os.path.join(directory, "rounds.pdt"))
    R, B = meta["resolution"], meta["batch"]
    st = Structure(meta["network"])
    weights = {k[len("weight."):]: v for k, v in t.items() if k.startswith("weight.")}
    images = torch.tensor(t["images"], dtype=torch.float64).permute(0, 3, 1, 2) / 127.5 - 1  # NHWC uint8 -> NCHW [-1, 1]
    batch_mul = {R // 4: 4, R // 2: 2, R: 1}
    ok, lines = True, []
    lines.append("| patch size | patches (B x m) | offsets in range | crop | coordinates | loss (ours / official fp64) | all gradients rel. L2 | worst tensor |")
    lines.append("|---:|---:|---|---|---|---:|---:|---:|")
    for rnd in sorted(meta["rounds"], key=lambda r: r["size"]):
        s = rnd["size"]
        n = len(rnd["indices"])
        count_ok = n == B * batch_mul[s]
        in_range = all(0 <= v <= R - s for v in rnd["rows"] + rnd["columns"]) and (s < R or set(rnd["rows"] + rnd["columns"]) == {0})
        src = images[torch.tensor(rnd["indices"])]
        patches, coords = pachify(src, rnd["rows"], rnd["columns"], s, R)
        crop_err = float((patches - torch.tensor(t[f"s{s}.patches"], dtype=torch.float64)).abs().max())
        coord_err = float((coords - torch.tensor(t[f"s{s}.coords"], dtype=torch.float64)).abs().max())
        P = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in weights.items()}
        noisy = torch.tensor(t[f"s{s}.noisy"], dtype=torch.float64)
        sig = torch.tensor(rnd["sigmas"], dtype=torch.float64)
        loss = official_loss(P, st, patches, noisy, sig, coords, B, batch_mul[s])
        loss.backward()
        rel = lambda a, b: float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))
        ours = {k: t[f"s{s}.grad.{k}"].astype(np.float64) for k in weights}
        ref = {k: P[k].grad.numpy() for k in weights}
        cat = lambda d: np.concatenate([d[k].ravel() for k in sorted(d)])
        whole = rel(cat(ours), cat(ref))
        worst = max(weights, key=lambda k: rel(ours[k], ref[k]))
        loss_rel = abs(rnd["loss"] - loss.item()) / abs(loss.item())
        passed = count_ok and in_range and crop_err < 1e-6 and coord_err < 1e-6 and loss_rel < 1e-4 and whole < 1e-3
        ok &= passed
        lines.append(f"| {s} | {n} ({B} x {batch_mul[s]}){'' if count_ok else ' WRONG'} | {'yes' if in_range else 'NO'} | "
                     f"max err {crop_err:.1e} | max err {coord_err:.1e} | {rnd['loss']:.6g} / {loss.item():.6g} ({loss_rel:.1e}) | "
                     f"{whole:.2e} | {rel(ours[worst], ref[worst]):.2e} |")
    # Offsets: every value in [0, R - s] about equally often (chi-square against uniform).
    lines.append("\n| patch size | offsets drawn | values | chi-square (dof) | 99.9 % critical value |")
    lines.append("|---:|---:|---|---:|---:|")
    critical = {4: 18.47, 8: 26.12, 12: 32.91}  # chi-square 0.999 quantiles
    for s_text, flat in sorted(meta["offsets"].items(), key=lambda kv: int(kv[0])):
        s = int(s_text)
        values = np.array(flat)
        k = R - s + 1
        counts = np.bincount(values, minlength=k)
        expected = len(values) / k
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        crit = critical.get(k - 1, float("nan"))
        passed = len(counts) == k and chi2 < crit
        ok &= passed
        lines.append(f"| {s} | {len(values) // 2} x (row, column) | 0..{values.max()} | {chi2:.1f} ({k - 1}) | {crit} |")
    lines.append(f"\nResult: {'PASS' if ok else 'FAIL'}")
    print("\n".join(lines))
    return ok


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: patch_round_check.py DIR")
    sys.exit(0 if main(sys.argv[1]) else 1)
