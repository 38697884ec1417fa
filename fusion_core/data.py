"""Where the images are, how they pair up, and how they are read and written.

Nothing else in the package opens image files. One setting locates the data:
``FUSION_DATA`` (environment variable), default ``../shared/data`` next to the repository.

Inside the package an image is a float tensor in [0, 1] of shape N×1×H×W. A colour visible image
is split into its luminance Y (fused) and chrominance CbCr (re-attached after fusion), using the
full-range BT.601 / JPEG YCbCr transform (what ``cv2.COLOR_BGR2YCrCb`` and the authors' PyTorch
code use). Infrared stored with three channels is read as grey.

Example::

    >>> from fusion_core import data
    >>> pairs = data.list_pairs("tno40")
    >>> images = data.load_pair(pairs[0])
    >>> images.ir.shape, images.vis.shape
"""
from __future__ import annotations

import contextlib
import hashlib
import io as _io
import os
import re
import shutil
import signal
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .io import atomic_write, sha256_file

if TYPE_CHECKING:
    import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPERS_DIR = Path(__file__).resolve().parent / "papers"  # each paper's split lists in <paper>/splits/
IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

# BT.601 full-range (JPEG) luma weights; MATLAB's rgb2gray uses the same to 3 decimals.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)


class DataError(ValueError):
    """A data problem, always naming the offending file or folder."""


# --------------------------------------------------------------------------- data root

def data_root() -> Path:
    """The data root: ``$FUSION_DATA`` or ``<repo>/../shared/data``; a clear error when absent."""
    configured = os.environ.get("FUSION_DATA")
    root = Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"
    if not root.is_dir():
        origin = "FUSION_DATA" if configured else "the default (../shared/data next to the repository)"
        raise DataError(
            f"{root}: data root not found (from {origin}). Set FUSION_DATA=/path/to/data; "
            "data/README.md says how to obtain the sets."
        )
    return root


# --------------------------------------------------------------------------- pairs

@dataclass(frozen=True, order=True)
class Pair:
    """One registered infrared/visible pair, named ``<dataset>/<stem>``."""

    dataset: str
    stem: str
    ir: Path = field(compare=False)
    vis: Path = field(compare=False)

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.stem}"


def image_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Images of a folder by stem; a clear error for a missing or empty folder or a stem used twice."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        if path.stem in files:
            raise DataError(f"{path}: two images share the stem '{path.stem}' ({files[path.stem].name})")
        files[path.stem] = path
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def pairs_from_dirs(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike, dataset: str = "custom") -> list[Pair]:
    """Pair the images of two folders by file stem; every stem must have a partner."""
    ir_dir, vis_dir = Path(ir_dir), Path(vis_dir)
    ir_files, vis_files = image_files(ir_dir), image_files(vis_dir)
    for stem in sorted(ir_files.keys() ^ vis_files.keys()):
        have, lack = (ir_files[stem], vis_dir) if stem in ir_files else (vis_files[stem], ir_dir)
        raise DataError(f"{have}: no partner with stem '{stem}' in {lack}")
    return [Pair(dataset, stem, ir_files[stem], vis_files[stem]) for stem in sorted(ir_files, key=natural_key)]


def natural_key(text: str):
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def source_files(ir_dir=None, vis_dir=None, dataset: str | None = None) -> tuple[dict[str, tuple[Path, Path]], str]:
    """stem → (ir, vis) from a registered data set or two folders (either side may be None where a folder lacks
    the stem), and how to name where they came from."""
    if dataset and (ir_dir or vis_dir):
        raise ValueError("give either --dataset or --ir/--vis, not both")
    if dataset:
        return {p.stem: (p.ir, p.vis) for p in list_pairs(dataset)}, f"data set '{dataset}'"
    if not (ir_dir and vis_dir):
        raise ValueError("give the sources: --dataset NAME, or both --ir DIR and --vis DIR")
    ir, vis = image_files(ir_dir), image_files(vis_dir)
    pairs = {stem: (ir.get(stem), vis.get(stem)) for stem in ir.keys() | vis.keys()}
    return pairs, f"{Path(ir_dir).as_posix()} and {Path(vis_dir).as_posix()}"


def fused_triples(fused_dir, ir_dir=None, vis_dir=None, dataset: str | None = None
                  ) -> tuple[list[tuple[str, Path, Path, Path]], int]:
    """(stem, fused, ir, vis) for every fused image of ``fused_dir``, in natural stem order, and the number of
    source pairs without a fused image (skipped). A fused image whose ir or vis is missing is an error naming it."""
    fused = image_files(fused_dir)
    sources, where = source_files(ir_dir, vis_dir, dataset)
    triples = []
    for stem in sorted(fused, key=natural_key):
        ir, vis = sources.get(stem, (None, None))
        if ir is None or vis is None:
            lacking = " and ".join(side for side, path in (("infrared", ir), ("visible", vis)) if path is None)
            raise DataError(f"{fused[stem]}: no {lacking} source with stem '{stem}' in {where}")
        triples.append((stem, fused[stem], ir, vis))
    return triples, len(set(sources) - set(fused))


def _fel_pairs(folder: Path, dataset: str) -> list[Pair]:
    """FEL sequences: ``thermal/<n>i.png`` ↔ ``visual/<n>v.png``, stem ``<n>``."""
    thermal = {p.stem[:-1]: p for p in image_files(folder / "thermal").values() if p.stem.endswith("i")}
    visual = {p.stem[:-1]: p for p in image_files(folder / "visual").values() if p.stem.endswith("v")}
    for stem in sorted(thermal.keys() ^ visual.keys()):
        have = thermal.get(stem) or visual.get(stem)
        raise DataError(f"{have}: no partner frame '{stem}' in {folder}")
    return [Pair(dataset, stem, thermal[stem], visual[stem]) for stem in sorted(thermal, key=natural_key)]


def _band(name: str) -> str | None:
    """Classify a TNO scene file by band from its name tokens: 'ir', 'vis' or None (NIR, II, REF...)."""
    tokens = {re.sub(r"\d+", "", tok).lower() for tok in re.split(r"[_\-\s]", Path(name).stem)}
    if tokens & {"ir", "lwir", "thermal"}:
        return "ir"
    if tokens & {"vis", "visual"}:
        return "vis"
    return None


def scene_pair(folder: Path, dataset: str, stem: str) -> Pair:
    """A TNO scene folder holding exactly one LWIR and one visible image (per-folder naming rules)."""
    bands: dict[str, list[Path]] = {"ir": [], "vis": []}
    for path in image_files(folder).values():
        band = _band(path.name)
        if band:
            bands[band].append(path)
    if len(bands["ir"]) != 1 or len(bands["vis"]) != 1:
        raise DataError(
            f"{folder}: expected one IR and one VIS image, found IR={[p.name for p in bands['ir']]} "
            f"VIS={[p.name for p in bands['vis']]}"
        )
    return Pair(dataset, stem, bands["ir"][0], bands["vis"][0])


def _tno_scene_pairs(root: Path, dataset: str) -> list[Pair]:
    """Every ``tno_full`` leaf folder (outside the FEL sequences) that pairs unambiguously."""
    pairs = []
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        if "FEL_images" in folder.parts or any(child.is_dir() for child in folder.iterdir()):
            continue
        try:
            pair = scene_pair(folder, dataset, "__".join(folder.relative_to(root).parts))
            check_pair(pair)
        except DataError:
            # Not a registered IR/VIS pair: NIR/II-only folders, or bands of different sizes (e.g. Marne_15).
            continue
        pairs.append(pair)
    return pairs


@dataclass(frozen=True)
class Dataset:
    """A named set: where it lives (relative to the data root) and how its pairs are found."""

    name: str
    folder: str
    description: str
    expected_pairs: int | None = None
    layout: str = "stem"  # "stem": ir/ + vis/ by stem; "fel": FEL sequence; "scene": one folder; "scenes": all
    sums_root: str | None = None  # folder holding SHA256SUMS when not `folder` itself

    def pairs(self, root: Path | None = None) -> list[Pair]:
        base = (root or data_root()) / self.folder
        if not base.is_dir():
            raise DataError(f"{base}: folder of data set '{self.name}' not found under the data root")
        finder: Callable[[Path, str], list[Pair]] = _LAYOUTS[self.layout]
        return finder(base, self.name)


_LAYOUTS: dict[str, Callable[[Path, str], list[Pair]]] = {
    "stem": lambda base, name: pairs_from_dirs(base / "ir", base / "vis", name),
    "fel": _fel_pairs,
    "scene": lambda base, name: [scene_pair(base, name, base.name)],
    "scenes": _tno_scene_pairs,
}

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset("tno40", "tno40", "TNO test set released with DIDFuse (40 pairs, grey bmp)", 40),
        Dataset("flir_train180", "flir_train180", "DIDFuse FLIR-Train (RoadScene pairs, VIS colour)", 180),
        Dataset("flir_test40", "flir_test40", "DIDFuse FLIR-Test (RoadScene pairs, VIS grey)", 40),
        Dataset("nir_country52", "nir_country52", "RGB-NIR Scene 'country' (NIR as IR)", 52),
        Dataset("roadscene221", "roadscene221", "RoadScene aligned pairs (VIS colour)", 221),
        Dataset("tno42", "tno42", "TNO 42-pair benchmark (Tang et al.); 01-25 = common 25-pair subset", 42),
        Dataset("tno37", "tno37", "TNO 37-pair set of MFEIF", 37),
        Dataset("vifb21", "vifb21", "VIFB benchmark inputs (VIS colour)", 21),
        Dataset("tno_masks20", "tno_masks20", "TNO pairs with salient-target masks (STDFusionNet)", 20),
        Dataset("tno_nato_camp", "tno_full/FEL_images/Nato_camp_sequence", "TNO FEL Nato_camp sequence",
                32, "fel", "tno_full"),
        Dataset("tno_tree", "tno_full/FEL_images/Tree_sequence", "TNO FEL Tree sequence", 19, "fel", "tno_full"),
        Dataset("tno_duine", "tno_full/FEL_images/Duine_sequence", "TNO FEL Duine sequence", 23, "fel", "tno_full"),
        Dataset("tno_kaptein_1123", "tno_full/Triclobs_images/Kaptein_1123", "TNO TRICLOBS Kaptein_1123",
                1, "scene", "tno_full"),
        Dataset("tno_marne_04", "tno_full/Triclobs_images/Marne_04", "TNO TRICLOBS Marne_04", 1, "scene", "tno_full"),
        Dataset("tno_scenes", "tno_full", "single-frame TNO scene folders with one LWIR and one VIS image of equal size",
                None, "scenes", "tno_full"),
    ]
}


def get_dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set '{name}'; known: {', '.join(DATASETS)}") from None


def list_pairs(name: str) -> list[Pair]:
    """All pairs of a registered data set, in natural stem order."""
    return get_dataset(name).pairs()


# --------------------------------------------------------------------------- splits

def _read_list(path: Path, what: str) -> list[str]:
    """Non-empty lines of a committed list file, ``#`` comments stripped."""
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    entries = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return [e for e in entries if e]


def split_path(paper: str, role: str) -> Path:
    """``fusion_core/papers/<paper>/splits/<role>.txt``: a split (pairs) or image list of one paper."""
    return PAPERS_DIR / paper / "splits" / f"{role}.txt"


def load_split(paper: str, role: str) -> list[Pair]:
    """Pairs listed in ``fusion_core/papers/<paper>/splits/<role>.txt`` (lines ``<dataset>/<stem>``, # comments)."""
    path = split_path(paper, role)
    wanted = _read_list(path, "split file")
    by_set: dict[str, dict[str, Pair]] = {}
    pairs = []
    for entry in wanted:
        dataset, _, stem = entry.partition("/")
        if dataset not in by_set:
            by_set[dataset] = {p.stem: p for p in list_pairs(dataset)}
        if stem not in by_set[dataset]:
            raise DataError(f"{path}: '{entry}' is not a pair of data set '{dataset}'")
        pairs.append(by_set[dataset][stem])
    return pairs


def write_split(paper: str, role: str, pairs: Iterable[Pair], header: str = "") -> Path:
    path = split_path(paper, role)
    lines = [f"# {line}" for line in header.splitlines()] + [p.name for p in pairs]
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


# --------------------------------------------------------------------------- reading

_SUPPORTED_MODES = {"L", "RGB", "RGBA", "P", "I;16", "I;16B", "I;16L", "I", "1", "LA"}


def _open(path: Path) -> Image.Image:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    try:
        image = Image.open(_io.BytesIO(raw))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: image too large ({exc})") from None
    if image.mode not in _SUPPORTED_MODES:
        raise DataError(f"{path}: unsupported image mode '{image.mode}' (bit depth); use 8- or 16-bit grey or RGB")
    if image.width < 1 or image.height < 1:
        raise DataError(f"{path}: empty image ({image.width}x{image.height})")
    return image


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the header alone."""
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}: {exc})") from None


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """Decoded pixels as stored: H×W or H×W×3; 8-bit images as their uint8 levels, others float64 in [0, 1]
    (16-bit scaled by 1/65535, warned). ``read_array`` of an 8-bit image is these levels / 255."""
    path = Path(path)
    image = _open(path)
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        warnings.warn(f"{path}: 16-bit image scaled to [0, 1] by 1/65535", stacklevel=3)
        return np.asarray(image, dtype=np.float64) / 65535.0
    if image.mode == "1":
        return np.asarray(image, dtype=np.float64)
    if image.mode in {"P", "RGBA", "LA"}:
        image = image.convert("RGB" if image.mode != "LA" else "L")
    return np.array(image, dtype=np.uint8)  # writable (torch.from_numpy warns on a read-only array)


class DecodedAhead:
    """:func:`read_pixels` served from the files a forked process decodes into ``folder`` while this one does
    something else; see :func:`decoding_ahead`."""

    def __init__(self, paths: list[Path] = (), folder: Path | None = None, pid: int = 0):
        self.index = {path: i for i, path in enumerate(paths)}
        self.folder, self.pid = folder, pid

    def __call__(self, path: str | os.PathLike) -> np.ndarray:
        """``read_pixels(path)``: the decoded file when it is ready, else decoded here. An RGB image whose three
        channels are equal (a grey image stored as colour, as in most IVIF sets) comes back as one channel seen
        three times: the same values, read-only, with a zero channel stride that tells the metrics so."""
        i = self.index.get(Path(path))
        if i is not None:
            try:
                pixels = np.load(self.folder / f"{i}.npy")
            except FileNotFoundError:  # not decoded yet, or not by the other process (see _decode_into)
                return read_pixels(path)
            if pixels.ndim == 3 and pixels.shape[-1] == 1:  # three equal channels, stored once
                return np.lib.stride_tricks.as_strided(pixels, pixels.shape[:2] + (3,), pixels.strides[:2] + (0,),
                                                       writeable=False)
            return pixels
        return read_pixels(path)

    def stop(self) -> None:
        """Stop decoding (what is decoded stays available) and reap the process."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = 0


def _decode_into(paths: list[Path], folder: Path) -> None:
    """Decode ``paths`` in order into ``folder``/<index>.npy, each written whole (renamed into place); three equal
    channels are written once, as H×W×1. Only plain 8-bit images: anything :func:`read_pixels` warns about or
    rejects is left to the reader, whose error or warning then appears where it would without decoding ahead."""
    for i, path in enumerate(paths):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                pixels = read_pixels(path)
        except DataError:
            continue
        if caught or pixels.dtype != np.uint8:
            continue
        if pixels.ndim == 3 and _is_grey(pixels):
            pixels = pixels[..., :1]  # the reader expands it back (see DecodedAhead.__call__)
        part = folder / f"{i}.part.npy"
        np.save(part, pixels)
        os.replace(part, folder / f"{i}.npy")


@contextlib.contextmanager
def decoding_ahead(paths: Iterable[str | os.PathLike]) -> Iterator[DecodedAhead]:
    """A :func:`read_pixels` for ``paths`` whose decoding starts now, in a forked process, while this one goes on.

    For a command that would otherwise leave a core idle before it reads its images: ``score`` imports torch
    (0.8 s on one core) and meanwhile the other core decodes the 126 images of 42 tno42 pairs (0.4 s). Any path
    not decoded yet, or not decodable there, is decoded by the caller as usual, so the values and errors are
    those of :func:`read_pixels`. Processes forked from this one (workers) can read the files too. ``stop()``
    ends the decoding early (before starting workers, so that they get every CPU); on exit it is stopped and its
    files removed. On one CPU or without fork nothing is decoded ahead. Fork before starting threads (``score``
    does: before torch is imported)."""
    paths = [Path(p) for p in dict.fromkeys(paths)]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not paths or cpus < 2 or not hasattr(os, "fork"):
        yield DecodedAhead()
        return
    folder = Path(tempfile.mkdtemp(prefix="fusion-decoded-"))
    decoded = None
    try:
        pid = os.fork()
        if pid == 0:  # the decoding process: never returns into the caller's code
            try:
                _decode_into(paths, folder)
            finally:
                os._exit(0)
        decoded = DecodedAhead(paths, folder, pid)
        yield decoded
    finally:
        if decoded is not None:
            decoded.stop()
        shutil.rmtree(folder, ignore_errors=True)


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Decoded pixels as stored: H×W or H×W×3, float64 in [0, 1]. 16-bit is scaled by 1/65535 (warned)."""
    pixels = read_pixels(path)
    return pixels / 255.0 if pixels.dtype == np.uint8 else pixels


def _is_grey(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def to_grey(array: np.ndarray) -> np.ndarray:
    """H×W(×3) → H×W; three equal channels are taken as they are, colour through BT.601 luma."""
    if array.ndim == 2:
        return array
    return array[..., 0] if _is_grey(array) else array @ _LUMA


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 (JPEG) RGB → YCbCr, all in [0, 1]; H×W×3 → H×W×3."""
    y = rgb @ _LUMA
    cb = (rgb[..., 2] - y) * 0.564 + 0.5
    cr = (rgb[..., 0] - y) * 0.713 + 0.5
    return np.stack([y, cb, cr], axis=-1)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`."""
    y, cb, cr = ycbcr[..., 0], ycbcr[..., 1] - 0.5, ycbcr[..., 2] - 0.5
    r = y + 1.403 * cr
    g = y - 0.714 * cr - 0.344 * cb
    b = y + 1.773 * cb
    return np.stack([r, g, b], axis=-1)


def read_grey(path: str | os.PathLike) -> torch.Tensor:
    """A grey image as a 1×1×H×W float32 tensor in [0, 1] (colour → luma)."""
    return _to_tensor(to_grey(read_array(path)))


def read_vis(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A visible image as (Y 1×1×H×W, CbCr 1×2×H×W or None when the image is grey)."""
    array = read_array(path)
    if array.ndim == 2 or _is_grey(array):
        return _to_tensor(to_grey(array)), None
    ycbcr = rgb_to_ycbcr(array)
    return _to_tensor(ycbcr[..., 0]), _to_tensor(ycbcr[..., 1:].transpose(2, 0, 1))


def _to_tensor(planes: np.ndarray) -> torch.Tensor:
    """H×W → 1×1×H×W, C×H×W → 1×C×H×W, float32 (torch is imported here, not with the module: listing and
    decoding images need no torch, so the ``score`` command decodes while torch loads)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))
    return t.view(1, -1, *t.shape[-2:])


@dataclass
class PairImages:
    """The decoded images of one pair: ``ir`` and ``vis`` (Y) are 1×1×H×W; ``cbcr`` 1×2×H×W or None."""

    pair: Pair
    ir: torch.Tensor
    vis: torch.Tensor
    cbcr: torch.Tensor | None = None


def check_pair(pair: Pair) -> tuple[int, int]:
    """Validate a pair from its headers (readable, same size); returns (H, W)."""
    ir_size, vis_size = image_size(pair.ir), image_size(pair.vis)
    if ir_size != vis_size:
        raise DataError(
            f"{pair.ir}: size {ir_size[1]}x{ir_size[0]} does not match its partner {pair.vis} "
            f"({vis_size[1]}x{vis_size[0]})"
        )
    return ir_size


def load_pair(pair: Pair) -> PairImages:
    ir = read_grey(pair.ir)
    vis, cbcr = read_vis(pair.vis)
    if ir.shape != vis.shape:
        raise DataError(
            f"{pair.ir}: size {ir.shape[-1]}x{ir.shape[-2]} does not match its partner {pair.vis} "
            f"({vis.shape[-1]}x{vis.shape[-2]})"
        )
    return PairImages(pair, ir, vis, cbcr)


def pixel_hash(path: str | os.PathLike) -> str:
    """SHA-256 of the decoded grey pixels (8-bit): equal for the same image stored in different files."""
    grey = np.round(to_grey(read_array(path)) * 255).astype(np.uint8)
    return hashlib.sha256(grey.tobytes() + str(grey.shape).encode()).hexdigest()


# --------------------------------------------------------------------------- writing

def to_uint8(image: torch.Tensor | np.ndarray, cbcr: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """A [0, 1] grey image (any of H×W, 1×H×W, 1×1×H×W) → uint8 H×W, or H×W×3 RGB when CbCr is given."""
    grey = _float64(image)
    grey = grey.reshape(grey.shape[-2:])
    if cbcr is not None:
        chroma = _float64(cbcr)
        chroma = chroma.reshape((2,) + grey.shape).transpose(1, 2, 0)
        grey = ycbcr_to_rgb(np.concatenate([grey[..., None], chroma], axis=-1))
    return np.round(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)


def _float64(image) -> np.ndarray:
    """A tensor (any device) or array as a float64 array."""
    if hasattr(image, "detach"):  # a torch tensor (see _to_tensor: no torch import here)
        return image.detach().cpu().double().numpy()
    return np.asarray(image, float)


def write_image(path: str | os.PathLike, image, cbcr=None) -> Path:
    """Write a [0, 1] image as an 8-bit PNG atomically (colour when ``cbcr`` is given)."""
    path = Path(path)
    pixels = to_uint8(image, cbcr)
    with atomic_write(path, "wb") as handle:
        Image.fromarray(pixels).save(handle, format="PNG")
    return path


# --------------------------------------------------------------------------- verification

def verify_checksums(name: str) -> tuple[int, list[str]]:
    """Check a set's files against its SHA256SUMS; returns (files checked, problems)."""
    spec = get_dataset(name)
    root = data_root()
    sums_dir = root / (spec.sums_root or spec.folder)
    sums_file = sums_dir / "SHA256SUMS"
    if not sums_file.is_file():
        return 0, [f"{sums_file}: missing"]
    prefix = Path(spec.folder).relative_to(spec.sums_root) if spec.sums_root else None
    checked, problems = 0, []
    for line in sums_file.read_text().splitlines():
        if not line.strip():
            continue
        digest, _, rel = line.partition("  ")
        rel = rel.strip().lstrip("*")
        if prefix is not None and prefix != Path(".") and not Path(rel).is_relative_to(prefix):
            continue
        target = sums_dir / rel
        checked += 1
        if not target.is_file():
            problems.append(f"{target}: listed in SHA256SUMS but missing")
        elif sha256_file(target) != digest:
            problems.append(f"{target}: SHA-256 mismatch")
    if checked == 0:
        problems.append(f"{sums_file}: lists no file of '{name}'")
    return checked, problems


# --------------------------------------------------------------------------- overview

def _is_colour(path: Path) -> bool:
    with Image.open(path) as image:
        if image.mode in {"L", "I;16", "I", "1"}:
            return False
    return read_vis(path)[1] is not None


def dataset_table(names: Iterable[str] | None = None, verify: bool = False):
    """One row per data set: pairs, distinct resolutions, colour-visible count, optional checksum status."""
    import pandas as pd

    rows = []
    for name in names or DATASETS:
        pairs = list_pairs(name)
        sizes = [check_pair(p) for p in pairs]
        colour = sum(_is_colour(p.vis) for p in pairs)
        smallest, largest = min(sizes, key=lambda hw: hw[0] * hw[1]), max(sizes, key=lambda hw: hw[0] * hw[1])
        row = {
            "dataset": name, "pairs": len(pairs),
            "smallest_hxw": "x".join(map(str, smallest)), "largest_hxw": "x".join(map(str, largest)),
            "distinct_sizes": len(set(sizes)), "colour_vis": int(colour),
            "description": DATASETS[name].description,
        }
        if verify:
            checked, problems = verify_checksums(name)
            row["sha256"] = "OK" if not problems else f"{len(problems)} problem(s)"
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- natural images (training corpora)

def natural_image(spec: str) -> np.ndarray:
    """A natural training image as grey uint8 H×W.

    ``skimage:<name>``: an image shipped inside scikit-image (no download), e.g. ``skimage:camera``;
    ``<dataset>/<stem>/<ir|vis|vis_hr>``: one side of a registered pair (``vis_hr``: RoadScene's HR folder).
    Colour is converted with BT.601 luma and rounded (as PIL ``convert("L")`` / cv2 ``BGR2GRAY`` do).
    """
    if spec.startswith("skimage:"):
        import skimage.data

        name = spec.split(":", 1)[1]
        loader = getattr(skimage.data, name, None)
        if loader is None or name.startswith("_"):
            raise DataError(f"{spec}: scikit-image ships no image called '{name}'")
        array = np.asarray(loader())
        if array.dtype != np.uint8:
            raise DataError(f"{spec}: not an 8-bit image ({array.dtype})")
        rgb = array[..., :3].astype(np.float64) / 255.0 if array.ndim == 3 else array / 255.0
    else:
        dataset, stem, side = (spec.split("/") + ["", ""])[:3]
        if side not in ("ir", "vis", "vis_hr"):
            raise DataError(f"{spec}: expected skimage:<name> or <dataset>/<stem>/<ir|vis|vis_hr>")
        pair = {p.stem: p for p in list_pairs(dataset)}.get(stem)
        if pair is None:
            raise DataError(f"{spec}: '{stem}' is not a pair of data set '{dataset}'")
        path = pair.vis.parent.parent / "vis_hr" / pair.vis.name if side == "vis_hr" else getattr(pair, side)
        rgb = read_array(path)
    return np.round(to_grey(rgb) * 255.0).astype(np.uint8)


def load_image_list(paper: str, name: str) -> list[str]:
    """Image specs (see :func:`natural_image`) listed in ``fusion_core/papers/<paper>/splits/<name>.txt``."""
    specs = _read_list(split_path(paper, name), "image list")
    if not specs:
        raise DataError(f"{split_path(paper, name)}: lists no image")
    return specs
