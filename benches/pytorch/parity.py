"""Training parity, PyTorch side: train the same U-Net from ctseg's initial weights on
ctseg's fixed batches with the same loss, Adam, L2 decay and gradient clipping, and
write the loss of every step and the final weights.

    python3 benches/pytorch/parity.py --dir DIR --loss ce-dice --lr 1e-3 [--threads 2]

DIR holds init.safetensors (ctseg's weights, PyTorch names, model config in the
metadata), batches.json and batches.f32 (written by ctseg_ml::parity). Writes
DIR/torch_losses.json and DIR/torch_final.safetensors. Run by benches/parity.rs and
crates/ctseg-ml/tests/it/pytorch_parity.rs.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from unet import UNet  # noqa: E402

DICE_SMOOTH = 1.0


def one_hot(labels, classes):
    """[b, s, s] label values -> [b, classes, s, s] (0 = background, dropped)."""
    values = torch.arange(1, classes + 1, dtype=labels.dtype).reshape(1, classes, 1, 1)
    return (labels.unsqueeze(1) == values).float()


def soft_dice(p, t):
    """Batch soft Dice loss over the classes present in target or prediction."""
    c = p.shape[1]
    p = p.transpose(0, 1).reshape(c, -1)
    t = t.transpose(0, 1).reshape(c, -1)
    t_sum = t.sum(1)
    present = ((t_sum > 0) | (p.max(1).values > 0.5)).float()
    dice = (2 * (p * t).sum(1) + DICE_SMOOTH) / (p.sum(1) + t_sum + DICE_SMOOTH)
    return -((dice - 1) * present).sum() / present.sum().clamp_min(1.0)


def loss_fn(kind, logits, targets):
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets)
    if kind == "dice":
        return soft_dice(torch.sigmoid(logits), targets)
    if kind == "bce-dice":
        return F.binary_cross_entropy_with_logits(logits, targets) + soft_dice(torch.sigmoid(logits), targets)
    if kind == "ce-dice":
        b, _, h, w = logits.shape
        full = torch.cat([torch.zeros(b, 1, h, w), logits], 1)
        log_p = F.log_softmax(full, 1)
        background = 1 - targets.sum(1, keepdim=True)
        ce = -(torch.cat([background, targets], 1) * log_p).sum(1).mean()
        return ce + soft_dice(log_p[:, 1:].exp(), targets)
    raise SystemExit(f"unknown loss {kind}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--loss", default="ce-dice")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)

    init = os.path.join(args.dir, "init.safetensors")
    with safe_open(init, "pt") as f:
        config = json.loads(f.metadata()["ctseg.model_config"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    model = UNet(config["in_channels"], config["num_classes"], config["base_channels"], config["depth"])
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")

    header = json.load(open(os.path.join(args.dir, "batches.json")))
    steps, b, s = header["steps"], header["batch_size"], header["size"]
    data = np.fromfile(os.path.join(args.dir, "batches.f32"), dtype="<f4")
    images = torch.from_numpy(data[: steps * b * s * s].copy()).reshape(steps, b, 1, s, s)
    labels = torch.from_numpy(data[steps * b * s * s:].copy()).reshape(steps, b, s, s)

    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(args.beta1, args.beta2),
                           eps=args.eps, weight_decay=args.weight_decay)
    model.train()
    losses = []
    for i in range(steps):
        opt.zero_grad()
        loss = loss_fn(args.loss, model(images[i]), one_hot(labels[i], config["num_classes"]))
        losses.append(loss.item())
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
    json.dump({"torch": torch.__version__, "losses": losses}, open(os.path.join(args.dir, "torch_losses.json"), "w"))
    out = {k: v.contiguous() for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    save_file(out, os.path.join(args.dir, "torch_final.safetensors"),
              metadata={"ctseg.model_config": json.dumps(config), "format": "ctseg-unet"})


if __name__ == "__main__":
    main()
