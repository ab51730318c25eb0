#!/usr/bin/env python3
"""Generate assets/structures.json from ../shared/data/structures (the facts).

Usage: python3 scripts/gen_structures.py [SHARED_STRUCTURES_DIR]
The names, order and colours come from the shared files; only the anatomical group
of each structure is decided here (see GROUP_RULES).
"""
import csv
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/data/structures"

# First matching rule wins: (group, predicate on the structure name).
GROUP_RULES = [
    ("Lungs & airways", lambda n: n.startswith("lung_") or n == "trachea"),
    ("Vertebrae & spine", lambda n: n.startswith("vertebrae_") or n in ("sacrum", "spinal_cord")),
    ("Ribs", lambda n: n.startswith("rib_") or n in ("sternum", "costal_cartilages")),
    ("Cardiac & vessels", lambda n: n in {
        "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk", "atrial_appendage_left",
        "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
    } or n.startswith(("subclavian_artery", "common_carotid", "brachiocephalic_vein", "iliac_"))),
    ("Muscles", lambda n: n.startswith(("gluteus_", "autochthon_", "iliopsoas_"))),
    ("Other bones", lambda n: n.startswith(("humerus_", "scapula_", "clavicula_", "femur_", "hip_"))
        or n == "skull"),
    ("Organs", lambda n: True),
]


def group_of(name: str) -> str:
    return next(g for g, rule in GROUP_RULES if rule(name))


def main() -> None:
    names = (SRC / "total_classes.txt").read_text().split()
    rows = [r for r in csv.reader((SRC / "total_colors.tsv").open(), delimiter="\t")
            if r and not r[0].startswith("#") and r[0] != "label"]
    colors = {r[1]: [int(r[2]), int(r[3]), int(r[4])] for r in rows}
    labels = {r[1]: int(r[0]) for r in rows}
    out = []
    for i, name in enumerate(names, start=1):
        assert labels[name] == i, f"label order differs for {name}"
        out.append({"label": i, "name": name, "color": colors[name], "group": group_of(name)})
    assert len(out) == 117
    text = json.dumps(out, indent=1) + "\n"
    (ROOT / "assets/structures.json").write_text(text)
    print(f"wrote {len(out)} structures to assets/structures.json")


if __name__ == "__main__":
    main()
