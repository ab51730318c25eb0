"""Seconds per layer of the U-Net's 3×3 convolutions in PyTorch at batch 2 (forward,
input gradient, weight gradient; the best of 5), beside ctseg's CPU kernels
(`cargo run --release -p ctseg-cpu-conv --example layers`).

    python3 benches/pytorch/conv_layers.py --threads 2
"""
import argparse
import time

import torch
import torch.nn.functional as F

LAYERS = [(1, 32, 256), (32, 32, 256), (64, 32, 256), (32, 64, 128), (64, 64, 128),
          (128, 128, 64), (256, 256, 32), (512, 512, 16)]


def best(f):
    times = []
    for _ in range(5):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| layer | forward s | input grad s | weight grad s |")
    print("| --- | --- | --- | --- |")
    sums = [0.0, 0.0, 0.0]
    for ci, co, s in LAYERS:
        x = torch.full((2, ci, s, s), 0.5)
        w = torch.full((co, ci, 3, 3), 0.01)
        dy = torch.full((2, co, s, s), 0.1)
        f = best(lambda: F.conv2d(x, w, padding=1))
        dx = best(lambda: torch.nn.grad.conv2d_input(x.shape, w, dy, padding=1))
        dw = best(lambda: torch.nn.grad.conv2d_weight(x, w.shape, dy, padding=1))
        for i, v in enumerate((f, dx, dw)):
            sums[i] += v
        print(f"| {ci}→{co} @{s}² | {f:.4f} | {dx:.4f} | {dw:.4f} |")
    print(f"| sum | {sums[0]:.4f} | {sums[1]:.4f} | {sums[2]:.4f} |")


if __name__ == "__main__":
    main()
