"""Fuse infrared/visible image pairs with classical or learned methods and score them under a named
toolbox's metric conventions.

Everyday use:
  python -m fusion_core methods                              what can fuse (kind, paper, default weights, speed)
  python -m fusion_core fuse --method didfuse --dataset tno40 --out fused/didfuse
  python -m fusion_core score --fused fused/didfuse --dataset tno40 --convention tang [--out scores.csv]
  python -m fusion_core compare --methods cbf,gff,didfuse,res2netfuse --dataset tno40 --convention tang
  python -m fusion_core conventions                          which toolbox each --convention follows

Data sets are looked up under FUSION_DATA (`datasets` lists them); --ir/--vis take any two folders of
images paired by file stem instead."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import data


def cmd_datasets(args) -> int:
    failed = False
    print(f"data root: {data.data_root()}")
    for name, spec in data.DATASETS.items():
        try:
            pairs = spec.pairs()
        except data.DataError as exc:
            print(f"{name:18s} ERROR {exc}")
            failed = True
            continue
        status = ""
        if spec.expected_pairs is not None and len(pairs) != spec.expected_pairs:
            status, failed = f"  expected {spec.expected_pairs} pairs", True
        if args.verify:
            checked, problems = data.verify_checksums(name)
            bad_pairs = []
            for pair in pairs:
                try:
                    data.check_pair(pair)
                except data.DataError as exc:
                    bad_pairs.append(str(exc))
            problems += bad_pairs
            status += f"  sha256 {checked} files: " + ("OK" if not problems else f"{len(problems)} problem(s)")
            for problem in problems:
                status += f"\n    {problem}"
            failed |= bool(problems)
        print(f"{name:18s} {len(pairs):4d} pairs  {spec.description}{status}")
    return 1 if failed else 0


def source_pairs(args) -> list:
    """The pairs named by ``--dataset NAME`` or by ``--ir DIR --vis DIR`` (exactly one of the two)."""
    if args.dataset and (args.ir or args.vis):
        raise ValueError("give either --dataset or --ir/--vis, not both")
    if args.dataset:
        return data.list_pairs(args.dataset)
    if not (args.ir and args.vis):
        raise ValueError("give the sources: --dataset NAME, or both --ir DIR and --vis DIR")
    return data.pairs_from_dirs(args.ir, args.vis)


def cmd_fuse(args) -> int:
    from .fuse import fuse_pairs
    from .memory import keep_freed_memory
    from .methods import resolve_weights

    pairs = source_pairs(args)
    weights, note = resolve_weights(args.method, args.weights)
    if note:
        print(f"{args.method}: {note}", flush=True)
    keep_freed_memory()
    start = time.perf_counter()
    written = fuse_pairs(args.method, pairs, args.out, weights, args.rule, args.device)
    print(f"fused {len(written)} pairs with {args.method} into {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_methods(args) -> int:
    from .methods import method_table

    print(method_table())
    return 0


def cmd_conventions(args) -> int:
    from .metrics.cli import convention_table

    print(convention_table())
    return 0


def cmd_score(args) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: give a positive number of processes")
    if args.out and Path(args.out).is_dir():
        raise data.DataError(f"{args.out}: is a folder; --out takes a CSV file name")
    triples, skipped = data.fused_triples(args.fused, args.ir, args.vis, args.dataset)
    # The metric suite comes with torch: 0.8 s of importing on one core, while another process decodes the images.
    with data.decoding_ahead(path for triple in triples for path in triple[1:]) as decoded:
        from .metrics.cli import score_command

        return score_command(args, triples, skipped, decoded)


def cmd_compare(args) -> int:
    from .compare import compare_command

    return compare_command(args)


def cmd_reproduce(args) -> int:
    from .reproduce import parse_params, run_notebooks

    return run_notebooks(profile=args.profile, only=args.nb, verify=args.verify, params=parse_params(args.param))


def cmd_verify(args) -> int:
    from .reproduce import verify_manifest

    return verify_manifest()


def _method_names() -> list[str]:
    from .methods import method_names

    return method_names()


def _convention_names() -> list[str]:
    from .metrics.conventions import ALIASES, CONVENTIONS

    return sorted(set(CONVENTIONS) | set(ALIASES))


def build_parser(wanted: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``wanted``, the command whose help is asked for, gets its choice lists (they import the methods'
    or the metrics' libraries, torch among them: not worth it for a run, and ``score`` wants torch's import to
    start later, see cmd_score)."""
    parser = argparse.ArgumentParser(prog="python -m fusion_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list known data sets and pair counts")
    p.add_argument("--verify", action="store_true", help="check SHA256SUMS and pair sizes")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("methods", help="fusion methods: kind, paper, default weights, rules, colour, speed")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("conventions", help="metric conventions: which toolbox, which columns, how it differs")
    p.set_defaults(func=cmd_conventions)

    method_names = _method_names() if wanted == "fuse" else None
    p = sub.add_parser("fuse", help="fuse every pair of a data set or of two folders (matched by file stem)",
                       description="Fuse every pair; colour visible images are fused on Y (BT.601) and keep their "
                                   "colour. Writes <out>/<stem>.png; bad input stops before anything is written.")
    p.add_argument("--method", required=True, metavar="METHOD",
                   help="one of: " + ", ".join(method_names) if method_names else "a registered method (see `methods`)")
    p.add_argument("--dataset", metavar="NAME", help="a registered data set (see `datasets`) instead of --ir/--vis")
    p.add_argument("--ir", help="folder of infrared images")
    p.add_argument("--vis", help="folder of visible images")
    p.add_argument("--out", required=True, help="output folder (PNG per pair)")
    p.add_argument("--weights", help="checkpoint file (or folder of released weights); learned methods default to "
                                     "the checkpoint `methods` lists")
    p.add_argument("--rule", "--strategy", dest="rule", help="fusion rule of a learned method (see `methods`; "
                   "--strategy is the old name)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=cmd_fuse)

    conventions = _convention_names() if wanted == "score" else None
    p = sub.add_parser("score", help="score a folder of fused images against their sources",
                       description="Score every fused image against its sources (matched by file stem). Sources "
                                   "without a fused image are skipped (counted in the log line); a fused image "
                                   "without its sources is an error.")
    p.add_argument("--fused", required=True, help="folder of fused images")
    p.add_argument("--dataset", metavar="NAME", help="a registered data set (see `datasets`) instead of --ir/--vis")
    p.add_argument("--ir", help="folder of infrared images")
    p.add_argument("--vis", help="folder of visible images")
    p.add_argument("--metrics", help="comma-separated column names (default: the convention's set)")
    p.add_argument("--convention", default="tang", metavar="CONVENTION",
                   help="toolbox whose definitions the metrics follow (default tang)"
                        + ("; one of: " + ", ".join(conventions) if conventions else "; see `conventions`"))
    p.add_argument("--jobs", type=int, default=None,
                   help="processes scoring pairs in parallel, one thread each (default: one per CPU)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", help="CSV file, one row per image (default: print mean ± std per metric only)")
    p.set_defaults(func=cmd_score)

    method_names, conventions = (_method_names(), _convention_names()) if wanted == "compare" else (None, None)
    p = sub.add_parser("compare", help="fuse and score several methods on one data set: per-image CSVs, a summary "
                                       "table with ranks, a qualitative grid",
                       description="Fuse every pair with each method, score under one convention, and write per-image "
                                   "CSVs (<out>/raw/), a summary (mean ± std and rank per metric, CSV + Markdown) and a "
                                   "grid figure. Cached by method, weights checksum, rule and image: Ctrl-C, then the "
                                   "same command resumes. Bad input stops before anything is written.")
    p.add_argument("--methods", required=True, metavar="M1,M2,...",
                   help="comma-separated methods" + ("; from: " + ", ".join(method_names) if method_names
                                                     else " (see `methods`)"))
    p.add_argument("--dataset", required=True, metavar="NAME", help="a registered data set (see `datasets`)")
    p.add_argument("--convention", default="tang", metavar="CONVENTION",
                   help="toolbox whose definitions the metrics follow (default tang)"
                        + ("; one of: " + ", ".join(conventions) if conventions else "; see `conventions`"))
    p.add_argument("--metrics", help="comma-separated column names (default: the convention's set)")
    p.add_argument("--rules", metavar="METHOD=RULE,...",
                   help="fusion rules of learned methods, e.g. didfuse=sal+cam,res2netfuse=l1 (a method named twice "
                        "runs with both; default: each method's first rule in `methods`)")
    p.add_argument("--jobs", type=int, default=None,
                   help="processes running methods in parallel, one thread each; same numbers for any N "
                        "(default: one per CPU)")
    p.add_argument("--max-pairs", type=int, metavar="N", help="only the first N pairs (a quick look; own raw files)")
    p.add_argument("--crop", metavar="HxW", help="top-left HxW window of every pair (a quick look; own raw files)")
    p.add_argument("--grid-pairs", metavar="STEM,...",
                   help="pairs shown in the grid figure (default: 3 spread over the set)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", help="output folder (default build/compare/<dataset>_<convention>)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("reproduce", help="run the notebooks under a profile")
    p.add_argument("--profile", default="eval", choices=["quick", "eval", "full"])
    p.add_argument("--nb", help="run only notebooks whose name or paper contains this")
    p.add_argument("--verify", default="sample", choices=["sample", "all"],
                   help="eval profile: re-fuse a fixed sample of pairs, or all of them")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra notebook parameter (repeatable), e.g. repeats=25 or protocol=paper")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("verify", help="check results/MANIFEST.csv against the files on disk")
    p.set_defaults(func=cmd_verify)

    sub.add_parser("sweep", help="seeds × variants of a command, or a notebook's parameter grid, on Dask "
                                 "(options: python -m fusion_core sweep -h)")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sweep"]:  # its own parser: everything after "--" is the job's command
        from . import sweep

        return sweep.main(argv[1:])
    helping = "-h" in argv or "--help" in argv
    wanted = next((a for a in argv if not a.startswith("-")), None) if helping else None
    args = build_parser(wanted).parse_args(argv)
    try:
        return args.func(args)
    except (data.DataError, KeyError, ValueError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
