#!/usr/bin/env python3
"""Time nibabel loading the same files as `cargo bench --bench load`, for comparison.

Usage: python3 benches/nibabel_load.py FILE.nii.gz [FILE ...]
Prints the median of 7 loads per file: nibabel.load + np.asanyarray(img.dataobj)
(the scaled voxel array in its stored type — what ctseg's i16 HU volume holds).
"""
import statistics
import sys
import time

import nibabel as nib
import numpy as np


def load(path):
    img = nib.load(path)
    return np.asanyarray(img.dataobj)


for path in sys.argv[1:]:
    times = []
    for _ in range(7):
        t = time.perf_counter()
        a = load(path)
        times.append(time.perf_counter() - t)
    print(f"{path}: shape {a.shape} {a.dtype}: median {statistics.median(times) * 1000:.1f} ms (nibabel {nib.__version__})")
