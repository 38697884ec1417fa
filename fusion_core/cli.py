"""Command line: ``python -m fusion_core datasets|fuse|score|reproduce|verify``. Thin: parse, call, report."""
from __future__ import annotations

import argparse
import sys
import time

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


def cmd_fuse(args) -> int:
    from .fuse import fuse_pairs

    pairs = data.pairs_from_dirs(args.ir, args.vis)
    start = time.perf_counter()
    written = fuse_pairs(args.method, pairs, args.out, args.weights, args.strategy, args.device)
    print(f"fused {len(written)} pairs with {args.method} into {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


def cmd_methods(args) -> int:
    from .methods import method_names

    print("\n".join(method_names()))
    return 0


def cmd_score(args) -> int:
    from .metrics.cli import score_command  # provided by the metric suite

    return score_command(args)


def cmd_reproduce(args) -> int:
    from .reproduce import parse_params, run_notebooks

    return run_notebooks(profile=args.profile, only=args.nb, verify=args.verify, params=parse_params(args.param))


def cmd_verify(args) -> int:
    from .reproduce import verify_manifest

    return verify_manifest()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fusion_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list known data sets and pair counts")
    p.add_argument("--verify", action="store_true", help="check SHA256SUMS and pair sizes")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("methods", help="list registered fusion methods")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("fuse", help="fuse every pair of two folders (matched by file stem)")
    p.add_argument("--method", required=True)
    p.add_argument("--ir", required=True, help="folder of infrared images")
    p.add_argument("--vis", required=True, help="folder of visible images")
    p.add_argument("--out", required=True, help="output folder (PNG per pair)")
    p.add_argument("--weights", help="checkpoint file (or folder of released weights)")
    p.add_argument("--strategy", help="fusion rule of a learned method")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("score", help="score fused images against their sources")
    p.add_argument("--fused", required=True)
    p.add_argument("--ir", required=True)
    p.add_argument("--vis", required=True)
    p.add_argument("--metrics", help="comma-separated metric names (default: the convention's set)")
    p.add_argument("--convention", default="tang")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--out", required=True, help="CSV file, one row per image")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("reproduce", help="run the notebooks under a profile")
    p.add_argument("--profile", default="eval", choices=["quick", "eval", "full"])
    p.add_argument("--nb", help="run only notebooks whose name or paper contains this")
    p.add_argument("--verify", default="sample", choices=["sample", "all"],
                   help="eval profile: re-fuse a fixed sample of pairs, or all of them")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="extra notebook parameter (repeatable), e.g. repeats=25 or model_profile=full")
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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (data.DataError, KeyError, ValueError, FileNotFoundError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2
