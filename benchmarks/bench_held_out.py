"""What the shipped solver entries record about held-out kinds of data (``quality.held_out``): no sampling, the
figures the sweep measured on the REPORT problems (builder/registry/sweep/choice.py) and its verdicts.

Per row (schedule variant x tier x sampler x ending) and NFE band: how many entries the verdict keeps
(``choice.verdict`` "refined": the entry's grid beats the best single host rule on the GATE problems' soft
maximum over kinds); the geometric mean over the band's entries of ``held_out.ratio`` (the entry's error over
the best single host rule's, REPORT problems); the worst entry and the worst (kind, NFE).

    python benchmarks/bench_held_out.py
    python benchmarks/bench_held_out.py --registry path/to/registry
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BANDS = ((3, 4), (5, 10), (11, 30))


def _gm(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def rows(registry: Path) -> list[dict]:
    """One dict per solver entry with held-out figures (calibrated entries have none)."""
    out = []
    for path in sorted((registry / "v1").glob("*.json")):
        for e in json.loads(path.read_text()).get("solver_entries") or []:
            held = (e.get("quality") or {}).get("held_out")
            if held is None:
                continue
            out.append(
                {
                    "variant": path.stem,
                    "tier": e.get("profile", "generic"),
                    "sampler": f"{e['solver']}-{e['order']}",
                    "ending": e["ending"],
                    "nfe": e["nfe"],
                    "method": e["method"],
                    "init": e["init"],
                    "ratio": held["ratio"],
                    "verdict": held["choice"].get("verdict", e["method"]),
                    "by_kind": held["by_kind"],
                }
            )
    return out


def band_of(nfe: int) -> str:
    for lo, hi in BANDS:
        if lo <= nfe <= hi:
            return f"{lo}-{hi}"
    return "other"


def summarise(entries: list[dict], echo=print) -> None:
    if not entries:
        echo("no solver entry records held-out figures")
        return
    methods = Counter(e["method"] for e in entries)
    echo(f"{len(entries)} solver entries: " + ", ".join(f"{k} {v}" for k, v in sorted(methods.items())))
    verdicts = Counter(e["verdict"] for e in entries)
    echo("verdicts: " + ", ".join(f"{k} {v}" for k, v in verdicts.most_common()))
    for tier in sorted({e["tier"] for e in entries}):
        for band in [f"{lo}-{hi}" for lo, hi in BANDS]:
            sel = [e for e in entries if e["tier"] == tier and band_of(e["nfe"]) == band]
            if sel:
                worst = max(sel, key=lambda e: e["ratio"])
                gm, above = _gm(e["ratio"] for e in sel), sum(e["ratio"] > 1.0001 for e in sel)
                echo(
                    f"{tier:<8} NFE {band:<6}: {len(sel):>4} entries, held-out ratio {gm:.3f} (geometric mean), "
                    f"{above} above 1, worst {worst['ratio']:.2f} "
                    f"({worst['variant']} {worst['sampler']} {worst['ending']} NFE {worst['nfe']})"
                )
    echo("")
    head = " | ".join(f"NFE {lo}-{hi}: verdict refined, ratio" for lo, hi in BANDS)
    echo(f"| row | {head} | worst kind (ratio, NFE) |")
    echo("|---|" + "---|" * len(BANDS) + "---|")
    groups = defaultdict(list)
    for e in entries:
        groups[(e["variant"], e["tier"], e["sampler"], e["ending"])].append(e)
    for key in sorted(groups):
        g = groups[key]
        cells = []
        for lo, hi in BANDS:
            sel = [e for e in g if lo <= e["nfe"] <= hi]
            kept = sum(e["verdict"] == "refined" for e in sel)
            cells.append(f"{kept}/{len(sel)}, {_gm(e['ratio'] for e in sel):.3f}" if sel else "")
        worst = max(((v, k, e["nfe"]) for e in g for k, v in e["by_kind"].items()), default=None)
        tail = f"{worst[1]} {worst[0]:.2f} @{worst[2]}" if worst else ""
        echo(f"| {' '.join(key)} | " + " | ".join(cells) + f" | {tail} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, default=REPO / "registry")
    args = parser.parse_args(argv)
    print("# bench_held_out")
    print(f"command: python benchmarks/bench_held_out.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    index = json.loads((args.registry / "index.json").read_text())
    print(f"registry data_version: {index.get('data_version')}")
    summarise(rows(args.registry))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
