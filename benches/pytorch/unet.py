"""The ctseg U-Net in PyTorch, parameter for parameter (same names as ctseg's
safetensors export), and a CPU throughput benchmark to compare with `ctseg bench`.

    python3 benches/pytorch/unet.py --threads 2 --batch-size 2 --iters 5
    python3 benches/pytorch/unet.py --export weights.safetensors   # loadable by ctseg

Not part of the product: a reference to measure against and to prove weight
interoperability (see crates/ctseg-ml/tests/it/pytorch_interop.rs).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(o)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class UNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=117, base=32, depth=4):
        super().__init__()
        widths = [base << i for i in range(depth)]
        self.encoders = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.encoders.append(DoubleConv(c, w))
            c = w
        self.bottleneck = DoubleConv(c, base << depth)
        c = base << depth
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for w in reversed(widths):
            self.ups.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.decoders.append(DoubleConv(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, num_classes, 1)
        nn.init.constant_(self.head.bias, math.log(0.01 / 0.99))

    def forward(self, x):
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([skip, up(x)], dim=1))
        return self.head(x)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--base-channels", type=int, default=32)
    p.add_argument("--classes", type=int, default=117)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-train", action="store_true", help="measure only inference")
    p.add_argument("--export", help="write the (seeded) weights as safetensors and exit")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = UNet(1, args.classes, args.base_channels)
    if args.export:
        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
        save_file(state, args.export)
        return
    b, s = args.batch_size, args.input_size
    x = torch.rand(b, 1, s, s)
    y = (torch.rand(b, args.classes, s, s) < 0.01).float()
    result = {
        "torch": torch.__version__, "threads": args.threads, "batch_size": b, "input_size": s,
    }
    if not args.no_train:
        # ctseg's training step (crates/ctseg-ml/src/train/step.rs): forward, BCE, the
        # loss read back, backward, global clipping at 1.0, Adam with L2 decay 1e-5.
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8, weight_decay=1e-5)
        train_times = []
        model.train()
        for i in range(args.warmup + args.iters):
            t = time.perf_counter()
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(x), y)
            loss.item()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if i >= args.warmup:
                train_times.append(time.perf_counter() - t)
        tr = statistics.median(train_times)
        result.update({"train_step_s": tr, "train_s_per_slice": tr / b, "train_slices_per_s": b / tr})
    model.eval()

    def infer(inputs):
        times = []
        with torch.no_grad():
            for i in range(args.warmup + args.iters):
                t = time.perf_counter()
                logits = model(inputs)
                labels = torch.where(logits.max(1).values > 0, logits.argmax(1) + 1, 0)
                labels.numpy()
                if i >= args.warmup:
                    times.append(time.perf_counter() - t)
        return statistics.median(times)

    inf = infer(x)
    inf1 = inf if b == 1 else infer(x[:1])
    result.update({
        "infer_batch_s": inf, "infer_s_per_slice": inf / b, "infer_slices_per_s": b / inf,
        "infer_batch1_s": inf1,
    })
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
