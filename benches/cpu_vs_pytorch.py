"""ctseg against PyTorch on the CPU, side by side in one run: the same U-Net (base 32,
117 classes, 256²), the same thread count, alternating rounds, medians and the ratio.

    python3 benches/cpu_vs_pytorch.py                       # 3 rounds, 2 threads
    python3 benches/cpu_vs_pytorch.py --rounds 5 --threads 4
    python3 benches/cpu_vs_pytorch.py --quick               # a tiny model: the test's run

Each round runs, in turn (the first side alternates between rounds):
  ctseg:   `ctseg bench --backend cpu --batch-size 2 --json` (the trainer's step, and
           inference at batch 1) and `ctseg bench --backend cpu --batch-size 8
           --no-train --json` (inference at batch 8), with RAYON_NUM_THREADS set;
  PyTorch: `benches/pytorch/unet.py` with the same sizes and `torch.set_num_threads`.
A side's figure in a round is the median of its iterations; the table gives the
median over rounds and ctseg/PyTorch (below 1: ctseg is faster). Run it on an idle
machine. The PyTorch side needs torch (the reference venv, `.ci/run` makes it):
`--python` picks the interpreter, default `$CTSEG_PYTHON` or ~/.cache/ctseg-venv.
Exit status 0 when both sides ran, 1 otherwise; `--json FILE` also writes the rounds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (key, label): the rows of the table, from the two sides' JSON reports.
ROWS = [
    ("train_step_s", "training step, batch {train_batch} (s)"),
    ("infer_s_per_slice", "inference per slice, batch {infer_batch} (s)"),
    ("infer_batch1_s", "inference per slice, batch 1 (s)"),
]


def default_python():
    env = os.environ.get("CTSEG_PYTHON")
    if env:
        return env
    return str(Path.home() / ".cache/ctseg-venv/bin/python")


def run_json(cmd, env=None):
    """Run `cmd` and parse the JSON object it prints; raise with its stderr on failure."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        tail = "\n".join(out.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{tail}")
    start = out.stdout.find("{")
    if start < 0:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON:\n{out.stdout[-500:]}")
    return json.loads(out.stdout[start:])


def ctseg_round(args, sizes):
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    common = [
        "bench", "--backend", "cpu", "--json",
        "--iters", str(args.iters), "--warmup", str(args.warmup),
        "--input-size", str(sizes["input"]), "--base-channels", str(sizes["base"]),
        "--classes", str(sizes["classes"]),
    ]
    train = run_json([args.ctseg, *common, "--batch-size", str(args.train_batch)], env)
    infer = run_json([args.ctseg, *common, "--batch-size", str(args.infer_batch), "--no-train"], env)
    return {
        "train_step_s": train["train_step_s"],
        "infer_s_per_slice": infer["infer_batch_s"] / args.infer_batch,
        "infer_batch1_s": infer["infer_batch1_s"],
        "device": train["device"],
    }


def pytorch_round(args, sizes):
    script = str(ROOT / "benches/pytorch/unet.py")
    common = [
        args.python, script, "--threads", str(args.threads),
        "--iters", str(args.iters), "--warmup", str(args.warmup),
        "--input-size", str(sizes["input"]), "--base-channels", str(sizes["base"]),
        "--classes", str(sizes["classes"]),
    ]
    train = run_json([*common, "--batch-size", str(args.train_batch)])
    infer = run_json([*common, "--batch-size", str(args.infer_batch), "--no-train"])
    return {
        "train_step_s": train["train_step_s"],
        "infer_s_per_slice": infer["infer_batch_s"] / args.infer_batch,
        "infer_batch1_s": infer["infer_batch1_s"],
        "device": f"torch {train['torch']}",
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ctseg", default=str(ROOT / "target/release/ctseg"),
                   help="the ctseg binary (default target/release/ctseg)")
    p.add_argument("--python", default=default_python(), help="a python with torch")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=3, help="timed iterations per measurement")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--train-batch", type=int, default=2)
    p.add_argument("--infer-batch", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="a tiny model (base 4, 3 classes, 32²)")
    p.add_argument("--json", help="also write every round's figures to this file")
    args = p.parse_args()
    if args.rounds < 1 or args.iters < 1 or args.threads < 1:
        p.error("--rounds, --iters and --threads must be positive")
    if not Path(args.ctseg).is_file():
        print(f"error: no ctseg binary at {args.ctseg} (cargo build --release, or --ctseg PATH)",
              file=sys.stderr)
        return 1
    sizes = ({"input": 32, "base": 4, "classes": 3} if args.quick
             else {"input": 256, "base": 32, "classes": 117})
    sides = {"ctseg": ctseg_round, "pytorch": pytorch_round}
    rounds = {"ctseg": [], "pytorch": []}
    devices = {}
    for r in range(args.rounds):
        order = ["ctseg", "pytorch"] if r % 2 == 0 else ["pytorch", "ctseg"]
        for side in order:
            try:
                figures = sides[side](args, sizes)
            except (RuntimeError, OSError, KeyError, ValueError) as e:
                print(f"error: {side} round {r + 1}: {e}", file=sys.stderr)
                return 1
            devices[side] = figures.pop("device")
            rounds[side].append(figures)
            print(f"round {r + 1} {side:>7}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in figures.items()), file=sys.stderr)

    model = (f"U-Net base {sizes['base']}, {sizes['classes']} classes, {sizes['input']}², "
             f"{args.threads} threads, {args.rounds} alternating rounds of {args.iters} "
             f"iterations (medians)")
    print(f"ctseg ({devices['ctseg']}) vs PyTorch ({devices['pytorch']}): {model}\n")
    print("| | ctseg | PyTorch | ctseg / PyTorch |")
    print("| --- | --- | --- | --- |")
    summary = {}
    for key, label in ROWS:
        a = statistics.median(f[key] for f in rounds["ctseg"])
        b = statistics.median(f[key] for f in rounds["pytorch"])
        summary[key] = {"ctseg": a, "pytorch": b, "ratio": a / b}
        text = label.format(train_batch=args.train_batch, infer_batch=args.infer_batch)
        print(f"| {text} | {a:.4g} | {b:.4g} | {a / b:.2f} |")
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"model": model, "devices": devices, "rounds": rounds,
                       "medians": summary}, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
