"""DICOM Segmentation reference checks with highdicom and pydicom (tests/it of ctseg-core).

  python dicom_seg_check.py read SEG SOURCE_DIR LABELS.nii.gz
      Read SEG (written by ctseg) with highdicom; print JSON with its segments (label,
      codes, colour, algorithm) and how its pixels compare, source instance by source
      instance, with LABELS (a multilabel NIfTI on the series' voxel grid, as
      TotalSegmentator writes it) mapped onto each source slice by world position.

  python dicom_seg_check.py write SOURCE_DIR LABELS.nii.gz CODES.tsv OUT_SEG [--overlap]
      Write LABELS as a binary DICOM Segmentation with highdicom (SNOMED codes from
      CODES.tsv: the shared total_colors.tsv), for ctseg's reader to open. Half of the
      segments get a label that is no structure name, so only their code identifies them.
      With --overlap, one more segment (a structure absent from LABELS) covers the
      largest structure's pixels on the middle slice: segments that overlap.
"""

import json
import os
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
from pydicom.sr.codedict import codes


def source_datasets(folder):
    """The source slices (headers only) sorted along the slice normal."""
    datasets = []
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            ds = pydicom.dcmread(os.path.join(root, name), stop_before_pixels=False)
            if getattr(ds, "Modality", "") == "CT":
                datasets.append(ds)
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda d: float(np.dot(normal, np.array(d.ImagePositionPatient, dtype=float))))
    return datasets


def labels_on_slice(labels, ras_from_voxel, ds):
    """The NIfTI labels at each pixel of source slice ds (rows, cols)."""
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    rows, cols = int(ds.Rows), int(ds.Columns)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    lps = ipp[None, None, :] + c[..., None] * dc * iop[None, None, :3] + r[..., None] * dr * iop[None, None, 3:]
    ras = lps * np.array([-1.0, -1.0, 1.0])
    voxel_from_ras = np.linalg.inv(ras_from_voxel)
    homogeneous = np.concatenate([ras, np.ones((rows, cols, 1))], axis=-1)
    ijk = np.rint(homogeneous @ voxel_from_ras.T)[..., :3].astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(labels.shape)), axis=-1)
    out = np.zeros((rows, cols), dtype=np.int32)
    i, j, k = ijk[..., 0], ijk[..., 1], ijk[..., 2]
    out[inside] = labels[i[inside], j[inside], k[inside]]
    return out


def code_dict(seq):
    if not seq:
        return None
    item = seq[0]
    return {"value": item.CodeValue, "scheme": item.CodingSchemeDesignator, "meaning": item.CodeMeaning}


def read(seg_path, source_dir, labels_path):
    seg = hd.seg.segread(seg_path)
    names = [line.strip() for line in open(os.path.join(os.path.dirname(__file__), "..", "assets", "structure_codes.tsv"))
             if line.strip() and not line.startswith("#") and not line.startswith("label\t")]
    label_of_name = {line.split("\t")[1]: int(line.split("\t")[0]) for line in names}
    segments = []
    label_of_segment = {}
    for number in seg.segment_numbers:
        d = seg.get_segment_description(number)
        type_item = d.SegmentedPropertyTypeCodeSequence[0]
        modifier = code_dict(getattr(type_item, "SegmentedPropertyTypeModifierCodeSequence", None))
        algorithm = None
        if "SegmentationAlgorithmIdentificationSequence" in d:
            a = d.SegmentationAlgorithmIdentificationSequence[0]
            algorithm = {"name": a.AlgorithmName, "version": a.AlgorithmVersion,
                         "family": code_dict(a.AlgorithmFamilyCodeSequence)}
        segments.append({
            "number": int(number),
            "label": d.SegmentLabel,
            "category": code_dict(d.SegmentedPropertyCategoryCodeSequence),
            "type": code_dict(d.SegmentedPropertyTypeCodeSequence),
            "modifier": modifier,
            "cielab": [int(v) for v in d.RecommendedDisplayCIELabValue],
            "algorithm_type": d.SegmentAlgorithmType,
            "algorithm": algorithm,
        })
        label_of_segment[int(number)] = label_of_name.get(d.SegmentLabel, -1)

    datasets = source_datasets(source_dir)
    uids = [str(d.SOPInstanceUID) for d in datasets]
    combined = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids,
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    lut = np.zeros(max(label_of_segment) + 1, dtype=np.int32)
    for number, label in label_of_segment.items():
        lut[number] = label
    seg_labels = lut[combined]

    image = nib.load(labels_path)
    labels = np.asarray(image.dataobj).astype(np.int32)
    mismatches = 0
    compared = 0
    for n, ds in enumerate(datasets):
        expected = labels_on_slice(labels, image.affine, ds)
        mismatches += int(np.count_nonzero(expected != seg_labels[n]))
        compared += expected.size
    print(json.dumps({
        "segments": segments,
        "sop_class": str(seg.SOPClassUID),
        "frame_of_reference": str(seg.FrameOfReferenceUID),
        "study": str(seg.StudyInstanceUID),
        "referenced_series": [str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence],
        "frames": int(seg.NumberOfFrames),
        "compared_voxels": compared,
        "mismatches": mismatches,
        "nonzero": int(np.count_nonzero(seg_labels)),
    }))


def write(source_dir, labels_path, codes_tsv, out_path, overlap=False):
    table = {}
    for line in open(codes_tsv):
        if line.startswith("#") or line.startswith("label\t") or not line.strip():
            continue
        f = line.rstrip("\n").split("\t")
        table[int(f[0])] = {"name": f[1], "rgb": [int(v) for v in f[2:5]], "code": f[5], "meaning": f[6],
                            "modifier": f[7] if len(f) > 7 else ""}
    datasets = source_datasets(source_dir)
    image = nib.load(labels_path)
    labels = np.asarray(image.dataobj).astype(np.int32)
    stack = np.stack([labels_on_slice(labels, image.affine, ds) for ds in datasets])
    present = [int(v) for v in np.unique(stack) if v != 0]
    numbers = np.zeros(max(present) + 1, dtype=np.uint8)
    descriptions = []
    for n, label in enumerate(present, start=1):
        numbers[label] = n
        entry = table[label]
        # Every other segment is known by its code alone (not the cysts, whose code
        # two structures share).
        by_code = n % 2 == 0 and entry["code"] != "367643001"
        description = hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=f"segment {n}" if by_code else entry["name"],
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=hd.sr.CodedConcept(entry["code"], "SCT", entry["meaning"]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            display_color=hd.color.CIELabColor.from_rgb(*entry["rgb"]),
        )
        if entry["modifier"]:
            modifier = {"Right": ("24028007", "Right"), "Left": ("7771000", "Left")}[entry["modifier"]]
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept(modifier[0], "SCT", modifier[1])
            ]
        descriptions.append(description)
    extra = {}
    if overlap:
        counts = {label: int(np.count_nonzero(stack == label)) for label in present}
        big = max(counts, key=counts.get)
        label = next(l for l in sorted(table) if l not in present and table[l]["code"] != "367643001")
        middle = len(datasets) // 2
        mask = np.zeros(stack.shape, dtype=bool)
        mask[middle] = stack[middle] == big
        entry = table[label]
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=len(descriptions) + 1,
            segment_label=entry["name"],
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=hd.sr.CodedConcept(entry["code"], "SCT", entry["meaning"]),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        ))
        extra = {"extra_label": label, "extra_voxels": int(np.count_nonzero(mask)), "covered_label": big}
        pixel_array = np.stack([stack == l for l in present] + [mask], axis=-1)
    else:
        pixel_array = numbers[stack]
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="highdicom",
        manufacturer_model_name="dicom_seg_check.py",
        software_versions=hd.__version__,
        device_serial_number="1",
    )
    seg.save_as(out_path)
    print(json.dumps({"segments": len(descriptions), "frames": int(seg.NumberOfFrames), **extra}))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "read":
        read(*sys.argv[2:])
    elif len(sys.argv) in (6, 7) and sys.argv[1] == "write":
        write(*sys.argv[2:6], overlap=sys.argv[6:] == ["--overlap"])
    else:
        sys.exit(__doc__)
