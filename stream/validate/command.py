"""``python -m stream validate [CLIPS...]``: build the constructed cases, analyse them, score the findings."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from stream.config import AnalysisConfig
from stream.errors import InputError


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "clips",
        nargs="*",
        help="healthy clips or folders of clips (default: ../shared/data and ../shared/data/healthy when present)",
    )
    p.add_argument(
        "--out", default="validation", help="folder for the per-case AU series and the scores (default: %(default)s)"
    )
    p.add_argument("--quick", action="store_true", help="only the unmodified clip and a frozen right side")
    p.add_argument("--cases", help="comma-separated case names (see docs/validity.md)")
    p.add_argument("--jobs", type=int, default=2, help="analysis processes (default: %(default)s)")
    p.add_argument(
        "--rules",
        choices=["evidence", "paper"],
        default="evidence",
        help="decision rules to score (default: %(default)s)",
    )
    p.add_argument(
        "--rescore", action="store_true", help="score the results already in --out without analysing anything"
    )
    p.add_argument("--failures", action="store_true", help="list every case that missed its ground truth")
    p.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        metavar="PX",
        help="move the detector's points by N(0, PX) pixels in every analysis, to measure how much of each "
        "figure is noise (default: 0, the product as it is; docs/validity.md)",
    )


def _default_clips() -> list[str]:
    here = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    found = [str(p) for p in (here, here / "healthy") if p.is_dir()]
    if not found:
        raise InputError("no clips given and ../shared/data is not there: name healthy clips or folders of clips")
    return found


def run_validate(args: argparse.Namespace) -> int:
    from stream.symptoms.normal import load_normal_cooccurrence
    from stream.validate.cases import standard_cases
    from stream.validate.run import CaseResult, find_clips, run_all
    from stream.validate.score import score

    config = AnalysisConfig().validate()
    out = Path(args.out)
    if not args.rescore:
        clips = find_clips(args.clips or _default_clips())
        # no_face and still pictures are not validation material
        clips = [c for c in clips if "no_face" not in c.name and "noface" not in c.name]
        if not clips:
            raise InputError("no video clips found in " + ", ".join(args.clips or _default_clips()))
        cases = standard_cases(args.quick)
        if args.cases:
            wanted = set(args.cases.split(","))
            cases = [c for c in cases if c.name in wanted]
        print(f"validate: {len(clips)} clips x {len(cases)} cases -> {out}")
        run_all(clips, cases, out, config, jobs=args.jobs, jitter_px=args.jitter)
    results: dict[str, dict[str, CaseResult]] = defaultdict(dict)
    for path in sorted(out.glob("*/*.npz")):
        if path.name == "landmarks.npz":
            continue
        r = CaseResult.load(path)
        results[path.parent.name][r.case] = r
    if not results:
        raise InputError(f"no case results in {out}: run without --rescore first")
    s = score(results, load_normal_cooccurrence(None), rules=args.rules, config=config)
    print(f"rules: {args.rules}; {len(results)} clips: {', '.join(sorted(results))}")
    for line in s.lines():
        print("  " + line)
    if args.failures:
        for f in s.failures:
            print("  miss: " + f)
    (out / f"scores_{args.rules}.json").write_text(json.dumps(s.to_json(), indent=1))
    return 0
