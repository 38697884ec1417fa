"""SAVF Fig. 11 rating tool (``papers/savf/mos.py``): the shuffled, anonymised sheet; the static page in a real headless
Chromium (Playwright), which must write a CSV download of exactly the choices made; reading and aggregating the
raters' files the paper's way. Every score here is generated inside the test and thrown away with ``tmp_path``."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from fusion_core import data
from fusion_core.fuse import fuse_pairs
from fusion_core.papers.savf import mos

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (apt-get install chromium); Playwright's own browser is not used
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
METHODS = ("average", "dwt", "lp")  # cheap classical methods: the sheet needs real fused images, not good ones


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    """A sheet of two real tno42 scenes × three methods (fused now, 128² crops keep the page small)."""
    root = tmp_path_factory.mktemp("mos")
    pairs = [p for p in data.list_pairs("tno42") if p.stem in ("08", "13")]
    assert len(pairs) == 2
    fused = {}
    for pair in pairs:
        images = data.load_pair(pair)
        ir, vis = root / "ir" / f"{pair.stem}.png", root / "vis" / f"{pair.stem}.png"
        data.write_image(ir, images.ir[..., :128, :128]), data.write_image(vis, images.vis[..., :128, :128])
    cropped = data.pairs_from_dirs(root / "ir", root / "vis", dataset="tno42")
    for method in METHODS:
        fuse_pairs(method, cropped, root / "fused" / method, progress=False)
        fused[method] = root / "fused" / method
    sources = {(p.dataset, p.stem): (p.ir, p.vis) for p in cropped}
    page, key = mos.write_sheet(mos.candidates_from_folders(cropped, fused), sources, root / "sheet", seed=3)
    return page, pd.read_csv(key, dtype={"sheet": str, "item": str, "image": str})


def test_key_is_seeded_shuffled_and_complete(sheet):
    _, key = sheet
    assert len(key) == 6 and key["item"].is_unique and key["sheet"].nunique() == 1
    for _, group in key.groupby("scene"):  # each scene: its three methods, labelled A, B, C in display order
        assert sorted(group["method"]) == sorted(METHODS) and list(group["label"]) == ["A", "B", "C"]
        assert group["image"].nunique() == 1
    cands = [mos.Candidate(r.dataset, r.image, r.method, Path(r.path)) for r in key.itertuples()]
    again = mos.shuffle_items(cands, seed=3)
    assert list(again["method"]) == list(key["method"]) and again["sheet"].iloc[0] == key["sheet"].iloc[0]
    orders = {tuple(mos.shuffle_items(cands, seed=s)["method"]) for s in range(8)}
    assert len(orders) > 1  # the seed changes the order (8 seeds, 2 scenes × 3! orders each: never all equal)
    with pytest.raises(ValueError, match="appears twice"):
        mos.shuffle_items(cands + cands[:1], seed=0)


def test_page_names_no_method_and_no_file(sheet):
    page, key = sheet
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page.read_text())
    assert text.count("<img") == 6 + 4  # six fused images and the two sources of each scene, all embedded
    assert "src=\"data:" in page.read_text() and "file:" not in text
    for word in list(METHODS) + [Path(p).name for p in key["path"]] + [str(Path(p).parent) for p in key["path"]]:
        assert word not in text, word


def _chromium():
    """Debian's Chromium: installed when missing and apt-get can (root, network), else the test is skipped."""
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (requirements.txt pins it)")
    if not CHROMIUM.exists() and shutil.which("apt-get") and os.geteuid() == 0:
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, capture_output=True, timeout=900, check=False,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing and could not be installed (apt-get install chromium needs root and Debian's "
                    "package archive): the page is not browser-tested here")
    return CHROMIUM


@pytest.mark.slow
def test_page_in_headless_chromium_downloads_exactly_the_chosen_scores(sheet, tmp_path):
    from playwright.sync_api import sync_playwright

    page_file, key = sheet
    executable = _chromium()
    chosen = {item: 1 + (7 * k) % 5 for k, item in enumerate(key["item"])}  # 1, 3, 5, 2, 4, 1: every value once+
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(accept_downloads=True)
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(page_file.as_uri())
            assert page.locator("img").count() == 10
            assert all(page.evaluate("els => els.map(e => e.complete && e.naturalWidth > 0)",
                                     page.locator("img").element_handles()))  # every embedded image decodes
            button = page.locator("#download")
            assert button.is_disabled() and "6 of 6 images not rated" in page.inner_text("#status")
            page.fill("#rater", "tester, one")  # a comma: the CSV must quote it
            for k, (item, score) in enumerate(chosen.items()):
                assert button.is_disabled()
                page.check(f'input[name="{item}"][value="{score}"]')
            assert button.is_enabled() and page.inner_text("#status") == "all rated"
            page.reload()  # the choices survive a reload (localStorage of this sheet)
            assert page.input_value("#rater") == "tester, one" and page.locator("#download").is_enabled()
            with page.expect_download() as info:
                page.click("#download")
            download = info.value
            saved = tmp_path / download.suggested_filename
            download.save_as(saved)
            assert errors == []
        finally:
            browser.close()
    assert saved.name == f"ratings_{key['sheet'].iloc[0]}_tester_one.csv"
    frame = pd.read_csv(saved, dtype={"item": str, "sheet": str})
    assert list(frame.columns) == mos.RATING_COLUMNS and len(frame) == 6
    assert dict(zip(frame["item"], frame["score"])) == chosen and set(frame["rater"]) == {"tester, one"}
    ratings = mos.read_ratings(key, [saved])  # the page's file is what the aggregation reads
    assert len(ratings) == 6 and set(ratings["method"]) == set(METHODS)


def _rater_file(path: Path, key: pd.DataFrame, rater: str, scores) -> Path:
    frame = pd.DataFrame({"sheet": key["sheet"], "rater": rater, "item": key["item"], "score": list(scores)})
    frame.to_csv(path, index=False)
    return path


def test_aggregation_of_generated_rater_files_drops_extremes_per_image(sheet, tmp_path):
    _, key = sheet
    # four raters; per item score = base[method] + offset[rater], with rater "d" an outlier on every image
    base = {"average": 2, "dwt": 3, "lp": 4}
    offsets = {"a": 0, "b": 0, "c": 1, "d": -1}
    files = [_rater_file(tmp_path / f"{r}.csv", key, r, [min(5, max(1, base[m] + o)) for m in key["method"]])
             for r, o in offsets.items()]
    table = mos.aggregate(_key(key, tmp_path), files, tmp_path / "out")
    # per image: sorted {b-1, b, b, b+1} → drop both ends → mean b; both images alike → MOS = base
    got = dict(zip(table["method"], table["MOS"]))
    assert got == pytest.approx({m: float(b) for m, b in base.items()})
    assert set(table["images"]) == {2} and set(table["dataset"]) == {"tno42"}
    assert (tmp_path / "out" / "fig11_mos.png").stat().st_size > 1000 and (tmp_path / "out" / "mos.md").is_file()
    # without dropping the extremes the plain mean differs (rater c's +1 is clipped at 5 only for lp: 4.5 → 4.25 vs 4)
    plain = mos.read_ratings(key, files).groupby("method")["score"].mean()
    assert plain["lp"] == pytest.approx(4.0) and plain["average"] == pytest.approx(2.0)
    skewed = [_rater_file(tmp_path / "e.csv", key, "e", [5] * len(key))]
    table = mos.aggregate(_key(key, tmp_path), files + skewed, tmp_path / "out2")
    # five ratings per image: {b-1, b, b, b+1, 5}: drop b-1 and 5 → mean of b, b, b+1
    expect = {m: (2 * b + min(5, b + 1)) / 3 for m, b in base.items()}
    assert dict(zip(table["method"], table["MOS"])) == pytest.approx(expect)


def _key(key: pd.DataFrame, folder: Path) -> Path:
    path = folder / "key_copy.csv"
    key.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda f: f.assign(sheet="0-other"), "sheet"),
    (lambda f: f.iloc[1:], "every item must be scored once"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "every item must be scored once"),
    (lambda f: f.assign(score=[6] + [3] * (len(f) - 1)), "integers 1"),
    (lambda f: f.assign(score=[2.5] + [3] * (len(f) - 1)), "integers 1"),
    (lambda f: f.assign(item=["i9999"] + list(f["item"].iloc[1:])), "not on the sheet"),
    (lambda f: f.assign(rater=["x"] + ["y"] * (len(f) - 1)), "one rater"),
])
def test_bad_rating_files_are_refused_naming_the_file(sheet, tmp_path, change, message):
    _, key = sheet
    good = pd.DataFrame({"sheet": key["sheet"], "rater": "r", "item": key["item"], "score": 3})
    path = tmp_path / "bad.csv"
    change(good).to_csv(path, index=False)
    with pytest.raises(data.DataError, match=message) as err:
        mos.read_ratings(key, [path])
    assert str(err.value).startswith(str(path))


def test_the_same_rater_twice_is_refused(sheet, tmp_path):
    _, key = sheet
    files = [_rater_file(tmp_path / f"{k}.csv", key, "same", [3] * len(key)) for k in range(2)]
    with pytest.raises(data.DataError, match="also rated"):
        mos.read_ratings(key, files)


def test_mos_drops_one_highest_and_one_lowest_rating_per_image_then_averages_images():
    rows = [("TNO", "savf", "a", r, s) for r, s in enumerate([1, 3, 4, 5])]  # trimmed mean of 3, 4 = 3.5
    rows += [("TNO", "savf", "b", r, s) for r, s in enumerate([2, 2, 2, 5])]  # 2, 2 → 2
    table = mos.mos(pd.DataFrame(rows, columns=["dataset", "method", "image", "rater", "score"]))
    assert table.to_dict("records") == [{"dataset": "TNO", "method": "savf", "MOS": 2.75, "images": 2}]
    with pytest.raises(ValueError, match="at least 3"):
        mos.mos(pd.DataFrame(rows[:2], columns=["dataset", "method", "image", "rater", "score"]))


def test_cli_sheet_then_aggregate(tmp_path, capsys):
    pairs = data.list_pairs("tno42")[:1]
    for m in ("average", "dwt"):
        fuse_pairs(m, pairs, tmp_path / m, progress=False)
    ir, vis = pairs[0].ir.parent, pairs[0].vis.parent
    code = mos.main(["sheet", "--ir", str(ir), "--vis", str(vis), "--pairs", pairs[0].stem, "--seed", "1",
                     "--fused", f"A={tmp_path / 'average'}", "--fused", f"B={tmp_path / 'dwt'}", "--out", str(tmp_path / "s")])
    assert code == 0 and "2 images of 2 methods, 1 scenes" in capsys.readouterr().out
    key = pd.read_csv(tmp_path / "s" / "key.csv", dtype={"sheet": str, "item": str, "image": str})
    files = [str(_rater_file(tmp_path / f"{r}.csv", key, r, [s, 6 - s])) for r, s in zip("abc", (1, 2, 3))]
    assert mos.main(["aggregate", "--key", str(tmp_path / "s" / "key.csv"), "--out", str(tmp_path / "o"), *files]) == 0
    table = pd.read_csv(tmp_path / "o" / "mos.csv")
    first = key.iloc[0]["method"]  # scores 1, 2, 3 for the first item → 2; 5, 4, 3 for the second → 4
    assert dict(zip(table["method"], table["MOS"])) == {first: 2.0, ({"A", "B"} - {first}).pop(): 4.0}
    assert mos.main(["sheet", "--dataset", "tno42", "--fused", f"A={tmp_path / 'average'}", "--out", str(tmp_path / "x")]) == 2
