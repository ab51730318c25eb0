"""Check an ONNX file written by `ctseg export` with onnx's checker and onnxruntime.

Usage:
    python benches/onnx_check.py MODEL.onnx
    python benches/onnx_check.py MODEL.onnx --input INPUT.npy --logits LOGITS.npy \
        [--tolerance 1e-4] [--expect-labels 117]

Standalone (only the model given) it checks the model and runs it once on a random
input: `onnx.checker.check_model(model, full_check=True)` (structure, types, shape
inference), ctseg's metadata (input size matching the graph input, the HU window
[-200, 300], one label name per output channel, producer "ctseg"), and one
onnxruntime (CPUExecutionProvider) run giving finite logits of the declared shape.

With `--input` and `--logits` (float32 .npy files: ctseg's input `[batch, 1, size,
size]` and its logits for it; `tests/it/export.rs` writes them) it also runs
onnxruntime on that input and fails when max |onnxruntime - ctseg| exceeds
`--tolerance` (absolute, default 1e-4).

When the batch axis is symbolic it runs batch 1 and batch 3 (the slice, its mirror
image and a darker copy) and checks that each slice of the batch-3 run gives what it
gives alone.

Prints one JSON line of results on stdout (`max_abs_diff` among them); a failed check
prints the reason on stderr and exits with status 1. Needs `onnx` and `onnxruntime`
(benches/requirements.txt); run it with `$CTSEG_PYTHON benches/onnx_check.py`.
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort

WINDOW_HU = [-200.0, 300.0]


class CheckFailed(Exception):
    """A check did not pass; the message says which and why."""


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


def dims_of(value_info):
    """Axes of a graph input/output: ints for fixed sizes, strings for symbolic ones."""
    dims = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else d.dim_param)
    return dims


def check_metadata(model, input_dims, output_dims, expect_labels):
    meta = {p.key: p.value for p in model.metadata_props}
    for key in ["ctseg.input_size", "ctseg.window_hu", "ctseg.labels", "ctseg.version"]:
        require(key in meta, f"metadata_props lacks {key} (has {sorted(meta)})")
    require(model.producer_name == "ctseg", f"producer_name is {model.producer_name!r}")
    size = int(meta["ctseg.input_size"])
    require(
        input_dims[2:] == [size, size],
        f"ctseg.input_size {size} but the input is {input_dims}",
    )
    window = json.loads(meta["ctseg.window_hu"])
    require(window == WINDOW_HU, f"ctseg.window_hu is {window}, expected {WINDOW_HU}")
    labels = json.loads(meta["ctseg.labels"])
    require(
        isinstance(labels, list) and all(isinstance(n, str) and n for n in labels),
        "ctseg.labels is not a list of names",
    )
    require(len(set(labels)) == len(labels), "ctseg.labels has repeated names")
    require(
        len(labels) == output_dims[1],
        f"{len(labels)} label names for {output_dims[1]} output channels",
    )
    if expect_labels is not None:
        require(
            len(labels) == expect_labels,
            f"{len(labels)} label names, expected {expect_labels}",
        )
    return size, labels, meta["ctseg.version"]


def run(session, x):
    (out,) = session.run(["logits"], {"image": np.ascontiguousarray(x, dtype=np.float32)})
    require(np.isfinite(out).all(), "onnxruntime gave non-finite logits")
    return out


def check(args):
    model = onnx.load(args.model)
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    require(
        [i.name for i in graph.input] == ["image"],
        f"inputs are {[i.name for i in graph.input]}, expected ['image']",
    )
    require(
        [o.name for o in graph.output] == ["logits"],
        f"outputs are {[o.name for o in graph.output]}, expected ['logits']",
    )
    for v in (graph.input[0], graph.output[0]):
        require(
            v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT,
            f"{v.name} is not float32",
        )
    input_dims = dims_of(graph.input[0])
    output_dims = dims_of(graph.output[0])
    require(len(input_dims) == 4 and input_dims[1] == 1, f"input is {input_dims}, expected NCHW with 1 channel")
    require(
        len(output_dims) == 4 and output_dims[2:] == input_dims[2:] and output_dims[0] == input_dims[0],
        f"output {output_dims} does not match input {input_dims}",
    )
    size, labels, version = check_metadata(model, input_dims, output_dims, args.expect_labels)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    dynamic = isinstance(input_dims[0], str)
    require(not dynamic or input_dims[0] == "batch", f"batch axis is named {input_dims[0]!r}")

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    result = {
        "model": args.model,
        "opset": opset,
        "ir_version": model.ir_version,
        "batch": "dynamic" if dynamic else input_dims[0],
        "input_size": size,
        "labels": len(labels),
        "ctseg_version": version,
        "onnxruntime": ort.__version__,
    }
    if args.input is not None:
        x = np.load(args.input).astype(np.float32)
        reference = np.load(args.logits).astype(np.float32)
    else:
        batch = 1 if dynamic else input_dims[0]
        x = np.random.default_rng(0).random((batch, 1, size, size), dtype=np.float32)
        reference = None
    require(
        list(x.shape[1:]) == [1, size, size] and (dynamic or x.shape[0] == input_dims[0]),
        f"the input is {list(x.shape)}, the model takes {input_dims}",
    )
    out = run(session, x)
    expected_shape = [x.shape[0], output_dims[1], size, size]
    require(list(out.shape) == expected_shape, f"logits are {list(out.shape)}, expected {expected_shape}")
    if reference is not None:
        require(
            reference.shape == out.shape,
            f"ctseg's logits are {list(reference.shape)}, onnxruntime's {list(out.shape)}",
        )
        diff = float(np.abs(out - reference).max())
        result["max_abs_diff"] = diff
        result["max_abs_logit"] = float(np.abs(reference).max())
        require(
            diff <= args.tolerance,
            f"max |onnxruntime - ctseg| = {diff:.3e} > {args.tolerance:.1e}",
        )

    if dynamic:
        one = x[:1]
        three = np.concatenate([one, one[..., ::-1], one * 0.5], axis=0)
        out_one = run(session, one)
        out_three = run(session, three)
        require(out_three.shape[0] == 3, f"batch 3 gave {list(out_three.shape)}")
        consistency = max(
            float(np.abs(out_three[i : i + 1] - run(session, three[i : i + 1])).max())
            for i in range(3)
        )
        consistency = max(consistency, float(np.abs(out_three[:1] - out_one).max()))
        result["batch_3_vs_1_max_abs_diff"] = consistency
        require(
            consistency <= args.tolerance,
            f"batch 3 differs from batch 1 by {consistency:.3e} > {args.tolerance:.1e}",
        )
        if reference is not None:
            diff = float(np.abs(out_one - reference[:1]).max())
            result["max_abs_diff"] = max(result["max_abs_diff"], diff)
            require(diff <= args.tolerance, f"batch 1: max |onnxruntime - ctseg| = {diff:.3e}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="the .onnx file")
    parser.add_argument("--input", help="ctseg's input, float32 .npy [batch, 1, size, size]")
    parser.add_argument("--logits", help="ctseg's logits for --input, float32 .npy")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |difference|")
    parser.add_argument("--expect-labels", type=int, help="number of label names required")
    args = parser.parse_args()
    if (args.input is None) != (args.logits is None):
        parser.error("--input and --logits go together")
    try:
        result = check(args)
    except (CheckFailed, onnx.checker.ValidationError) as e:
        print(f"{args.model}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
