"""Writes a randomly initialised FID Inception-v3 state dict (torch.save), random
images and their pool3 features computed by the PyTorch reference network, for
the Swift test MetricsInceptionTests to compare against.

usage: python3 reference/inception_check.py OUTDIR [--images N] [--size S] [--legacy]
writes OUTDIR/weights.pth, OUTDIR/images.f32 (N x 3 x S x S in [0, 1]),
OUTDIR/features.f32 (N x 2048).
"""
import argparse, math, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fid_inception import FIDInceptionV3

p = argparse.ArgumentParser()
p.add_argument("outdir")
p.add_argument("--images", type=int, default=2)
p.add_argument("--size", type=int, default=64)
p.add_argument("--legacy", action="store_true", help="torch.save's pre-1.6 format")
a = p.parse_args()
os.makedirs(a.outdir, exist_ok=True)
torch.manual_seed(0)
net = FIDInceptionV3().eval()
with torch.no_grad():
    for m in net.modules():
        # He-normal weights and non-trivial batch-norm statistics keep activations
        # O(1) through the depth, so every layer affects the features.
        if isinstance(m, torch.nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.normal_(0, math.sqrt(2.0 / fan_in))
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), os.path.join(a.outdir, "weights.pth"),
               _use_new_zipfile_serialization=not a.legacy)
    images = torch.rand(a.images, 3, a.size, a.size)
    features = net(images)
images.numpy().tofile(os.path.join(a.outdir, "images.f32"))
features.numpy().tofile(os.path.join(a.outdir, "features.f32"))
print(f"wrote {a.outdir}: features max |f| {features.abs().max().item():.4g}")
