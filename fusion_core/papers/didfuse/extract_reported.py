"""How reported.csv was made: Tables III, IV and V parsed from the paper text, values kept as printed.

    python fusion_core/papers/didfuse/extract_reported.py ../shared/papers/001_ecde006f96d54dd5.txt

Long form: one row per (table, dataset, method, metric); ``std`` only where the paper prints ± (Table
III); ``note`` keeps the paper's column label and its bold/underline marks. Cross-checked against the
spec's transcription by tests/test_didfuse.py.
"""
from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path

from fusion_core.io import write_text

HERE = Path(__file__).resolve().parent
STRATEGY_IDS = ["ave", "l1", "sal", "ave+cam", "l1+cam", "sal+cam"]  # Table III, left to right
TABLE5_SETS = {"TNO Image Fusion Dataset": "TNO", "FLIR Image Fusion Dataset": "FLIR",
               "NIR Image Fusion Dataset, Country Scene": "NIR-Country",
               "NIR Image Fusion Dataset, Forest Scene": "NIR-Forest", "NIR Image Fusion Dataset, Field Scene": "NIR-Field"}
METRICS = ("EN", "SD", "SF", "VIF", "AG", "SCD")


def _cell(text: str) -> tuple[str, str | None, str]:
    """'<b>7.214 ± 0.068</b>' → ('7.214', '0.068', 'bold')."""
    marks = [m for tag, m in (("<b>", "bold"), ("<u>", "underline")) if tag in text]
    plain = re.sub(r"</?[bu]>", "", text).strip()
    value, _, std = plain.partition("±")
    return value.strip(), (std.strip() or None), "; ".join(marks)


def extract(text: str) -> list[dict]:
    lines = [line.rstrip("\n") for line in text.splitlines()]
    rows: list[dict] = []

    def add(table, dataset, method, metric, cell, label):
        value, std, marks = _cell(cell)
        float(value)  # every cell must be a number
        rows.append(dict(table=table, dataset=dataset, method=method, metric=metric, value=value, std=std or "",
                         note="; ".join(x for x in (label, marks) if x)))

    labels3 = ["Ave w/o CAM", "l1-Att w/o CAM", "Sal-Att w/o CAM", "Ave & CAM", "l1-Att & CAM", "Sal-Att & CAM"]
    scene = None
    in5 = None
    part = None
    for line in lines:
        cells = line.split("\t")
        head = re.sub(r"</?b>", "", cells[0]).strip()
        if line.startswith("Table III"):
            part = "III"
        elif line.startswith("Table IV"):
            part = "IV"
        elif line.startswith("Table V"):
            part = "V"
        if head.startswith("Dataset: NIR Dataset. Scene:"):
            scene = "NIR-" + head.rsplit(":", 1)[1].strip()
        elif head.startswith("Dataset: ") and part == "V":
            in5 = TABLE5_SETS[head[len("Dataset: "):].strip()]
        elif head in METRICS and part == "III":
            for sid, label, cell in zip(STRATEGY_IDS, labels3, cells[1:7]):
                add("III", scene, sid, head, cell, label)
        elif head in METRICS and part == "IV" and scene:
            for k, cell in enumerate(cells[1:11]):
                exp, role = k // 2 + 1, ("ours", "test")[k % 2]
                add("IV", scene, f"exp{exp}_{role}", head, cell, f"Ablation Exp. {exp}, {role.capitalize()}")
        elif head.startswith("Overall # Larger value") and part == "IV":
            for k, cell in enumerate(cells[1:11]):
                exp, role = k // 2 + 1, ("ours", "test")[k % 2]
                add("IV", "NIR-Street+NIR-Urban", f"exp{exp}_{role}", "n_larger", cell,
                    f"Ablation Exp. {exp}, {role.capitalize()}; count of larger values over both scenes")
        elif head == "Metrics" and part == "V":
            methods = [c.strip() for c in cells[1:10]]
        elif head in METRICS and part == "V" and in5:
            for method, cell in zip(methods, cells[1:10]):
                add("V", in5, method, head, cell, "")
    return rows


def main(paper: str) -> Path:
    rows = extract(Path(paper).read_text())
    expected = 2 * 6 * 6 + 2 * 6 * 10 + 10 + 5 * 6 * 9
    if len(rows) != expected:
        raise SystemExit(f"parsed {len(rows)} cells, expected {expected}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["table", "dataset", "method", "metric", "value", "std", "note"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out = HERE / "reported.csv"
    write_text(out, buffer.getvalue())
    return out


if __name__ == "__main__":
    print(main(sys.argv[1] if len(sys.argv) > 1 else "../shared/papers/001_ecde006f96d54dd5.txt"))
