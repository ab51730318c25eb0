#!/usr/bin/env python3
"""Reference surface metrics from DeepMind's surface-distance package, for checking
`ctseg_core::metrics::surface` (crates/ctseg-core/tests/it/surface_reference.rs).

Usage: surface_reference.py GT.nii.gz PRED.nii.gz TOLERANCE_MM

Prints one JSON object {"<label>": {"nsd": x, "hd95": y}, ...} for every non-zero
label in either file: surface_distance.compute_surface_dice_at_tolerance at
TOLERANCE_MM and compute_robust_hausdorff(..., 95), on the voxel spacing of GT's
header (nibabel's zooms). Values surface-distance returns as inf or nan (a label
missing from one file) are printed as null. The seconds spent in surface-distance
(not loading) go to stderr. Needs the packages of benches/requirements.txt.
"""
import json
import math
import sys
import time
import warnings

import nibabel as nib
import numpy as np

# surface-distance 0.1 calls scipy.ndimage.filters/morphology (deprecated aliases).
warnings.simplefilter("ignore", DeprecationWarning)
import surface_distance  # noqa: E402


def finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    gt_path, pred_path, tolerance = sys.argv[1], sys.argv[2], float(sys.argv[3])
    gt_img, pred_img = nib.load(gt_path), nib.load(pred_path)
    gt = np.asanyarray(gt_img.dataobj)
    pred = np.asanyarray(pred_img.dataobj)
    if gt.shape != pred.shape:
        sys.exit(f"{gt_path} {gt.shape} and {pred_path} {pred.shape} differ in shape")
    spacing_mm = [float(z) for z in gt_img.header.get_zooms()[:3]]
    labels = sorted((set(np.unique(gt).tolist()) | set(np.unique(pred).tolist())) - {0})
    out = {}
    seconds = 0.0
    for label in labels:
        start = time.perf_counter()
        d = surface_distance.compute_surface_distances(gt == label, pred == label, spacing_mm)
        nsd = surface_distance.compute_surface_dice_at_tolerance(d, tolerance)
        hd95 = surface_distance.compute_robust_hausdorff(d, 95)
        seconds += time.perf_counter() - start
        out[str(int(label))] = {"nsd": finite_or_none(nsd), "hd95": finite_or_none(hd95)}
    print(json.dumps(out))
    print(
        f"surface-distance: {len(labels)} labels in {seconds:.3f} s, spacing {spacing_mm} mm",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
