"""Drive `ctseg serve` with MONAI Label's own Python client (PyPI `monailabel`,
`monailabel.client.MONAILabelClient`), as 3D Slicer's and OHIF's plug-ins do.

    python benches/serve_client.py --url http://127.0.0.1:8000 --ct ct.nii.gz \
        [--label label.nii.gz] [--reference labels.nii.gz] [--token TOKEN] [--tmp DIR]

Checks: /info/ lists the 117 labels and a 2-D model; the CT uploads; inference on it
returns a label volume with the CT's geometry (and, with --reference, the same labels
voxel for voxel as `ctseg predict`); with --label: the label saves, training on it
finishes, next sample moves on; with --token: a wrong token is refused with 401.
Prints "all checks passed" at the end; any failure raises.
"""

import argparse
import json
import sys
import time

import nibabel as nib
import numpy as np
from monailabel.client import MONAILabelClient
from monailabel.client.client import MONAILabelClientException


def client_for(url, token):
    c = MONAILabelClient(url)
    if token:
        c.update_auth({"token_type": "Bearer", "access_token": token})
    return c


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--ct", required=True)
    p.add_argument("--label")
    p.add_argument("--reference")
    p.add_argument("--token")
    p.add_argument("--tmp")
    args = p.parse_args()
    c = client_for(args.url, args.token)
    if args.tmp:
        c._tmpdir = args.tmp

    info = c.info()
    assert len(info["labels"]) == 117, info["labels"]
    model = next(iter(info["models"]))
    assert info["models"][model]["dimension"] == 2
    print(f"info: {info['name']} {info['version']}, model {model}, {len(info['labels'])} labels")

    up = c.upload_image(args.ct, image_id="case1")
    assert up["image"] == "case1", up
    c.upload_image(args.ct, image_id="case2")

    t = time.time()
    image_out, params = c.infer(model, "case1", {})
    print(f"infer: {image_out} in {time.time() - t:.2f} s; present {len(params['present'])} structures, latencies {params['latencies']}")
    ct = nib.load(args.ct)
    seg = nib.load(image_out)
    assert seg.shape == ct.shape, (seg.shape, ct.shape)
    assert np.allclose(seg.affine, ct.affine, atol=1e-4), (seg.affine, ct.affine)
    assert params["label_names"]["liver"] == 5
    if args.reference:
        ref = np.asarray(nib.load(args.reference).dataobj)
        got = np.asarray(seg.dataobj)
        assert ref.any(), "empty reference"
        assert np.array_equal(ref, got), f"{int((ref != got).sum())} voxels differ from ctseg predict"
        print("infer: equal to ctseg predict voxel for voxel")

    if args.label:
        saved = c.save_label("case1", args.label, tag="final")
        assert saved["image"] == "case1", saved
        ds = c.datastore()
        assert "final" in ds["objects"]["case1"]["labels"], ds
        nxt = c.next_sample("first", {})
        assert nxt["id"] == "case2", nxt
        started = c.train_start(model, {"max_steps": 2, "batch_size": 2})
        print(f"train: started {json.dumps(started)}")
        deadline = time.time() + 600
        while c.train_status(check_if_running=True):
            assert time.time() < deadline, "training did not finish"
            time.sleep(0.5)
        status = c.train_status()
        assert status["status"] == "DONE", status
        print(f"train: {status['status']} after {status['step']} steps, loss {status['loss']}")
        image_out, params = c.infer(model, "case2", {})
        assert nib.load(image_out).shape == ct.shape

    if args.token:
        bad = client_for(args.url, "not-the-token")
        try:
            bad.info()
        except MONAILabelClientException as e:
            assert "401" in e.msg, e.msg
            print(f"wrong token: {e.msg}")
        else:
            raise AssertionError("a wrong token was accepted")

    print("all checks passed")


if __name__ == "__main__":
    sys.exit(main())
