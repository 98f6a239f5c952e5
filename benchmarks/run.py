"""Run the project's benchmarks and write their tables into docs/benchmarks.md, each with its command,
the machine and the date.

    python benchmarks/run.py                 # every benchmark, full size (about an hour on 2 cores)
    python benchmarks/run.py --quick         # the quick form of each (a few minutes)
    python benchmarks/run.py --only loader hosts
    python benchmarks/run.py --list

Each benchmark prints its own ratios against a baseline measured in the same run; this runner only runs
them and files their output. A section of docs/benchmarks.md is replaced only when its benchmark ran (and
succeeded), so ``--only`` refreshes one table and leaves the others as they were; history stays in git.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Bench:
    name: str
    what: str
    full: tuple[str, ...]
    quick: tuple[str, ...] | None  # None: no quick form (left out of --quick)


BENCHES = (
    Bench("loader", "import, get() cold and warm, verify() of the bundled registry",
          ("benchmarks/bench_loader.py",), ("benchmarks/bench_loader.py", "--repeat", "5")),
    Bench("sampler", "the reference samplers' per-step overhead against diffusers' step()",
          ("benchmarks/bench_sampler.py",), ("benchmarks/bench_sampler.py",)),
    Bench("optimize", "the solve against the released way of solving the same problem",
          ("benchmarks/bench_optimize.py",), ("benchmarks/bench_optimize.py", "--nfe", "5", "8")),
    Bench("hosts", "optsteps through diffusers' schedulers and k-diffusion loops against every recipe they "
          "offer, on held-out kinds of data",
          ("benchmarks/bench_hosts.py", "--by-kind"), ("benchmarks/bench_hosts.py", "--quick")),
    Bench("refine-objective", "the refine loss (mean log ratio, or the soft maximum over the fit kinds) judged "
          "through diffusers' DPM++ 2M on the held-out kinds: one scaled-linear sigma = 0 entry refined both ways",
          ("benchmarks/bench_refine_objective.py", "--nfe", "6,8,10"), None),
    Bench("diffusers-paths", "diffusers' two optsteps paths on one entry, configure_scheduler against pipeline_kwargs "
          "(solver entries: one grid; bound entries: the entry's sigma against the model's timestep)",
          ("benchmarks/bench_diffusers_paths.py",), ("benchmarks/bench_diffusers_paths.py",)),
    Bench("flow-shift", "the shipped flow variants against each other, and the shifts the loader serves from them",
          ("benchmarks/bench_flow_shift.py",), ("benchmarks/bench_flow_shift.py",)),
    Bench("held-out", "what the shipped solver entries record about held-out kinds: the held-out verdicts, and "
          "the entries' figures on REPORT problems", ("benchmarks/bench_held_out.py",),
          ("benchmarks/bench_held_out.py",)),
    Bench("promise", "the held-out-kinds selection (builder.select.promise) over the shipped registry: what it "
          "would ship, and its figures on REPORT problems before and after", ("benchmarks/bench_promise.py",), None),
    Bench("calibrate", "calibrate on the learned digits network",
          ("benchmarks/bench_calibrate.py",), ("benchmarks/bench_calibrate.py", "--quick")),
    Bench("sweep-slice", "a cold `sweep --check` of a one-schedule slice (every stage honours the slice)",
          ("-m", "builder", "sweep", "--check", "--schedule", "vp-linear", "--only", "nfe=5", "--no-progress",
           "--cache-dir", "{tmp}"), None),
)  # fmt: skip


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "?")
    return f"{platform.machine()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return []


def run(bench: Bench, quick: bool, tmp: str) -> tuple[str, str, float, int]:
    """(the command as shown, its output, wall seconds, exit code)."""
    args = [a.replace("{tmp}", tmp) for a in (bench.quick if quick else bench.full) or ()]
    shown = " ".join(["python", *(a if a != tmp else "$(mktemp -d)" for a in args)])
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    return shown, (done.stdout + done.stderr).strip(), time.perf_counter() - start, done.returncode


def section(bench: Bench, shown: str, output: str, seconds: float) -> str:
    date = datetime.date.today().isoformat()
    return (
        f"<!-- bench:{bench.name} -->\n## {bench.name}\n\n{bench.what}.\n\n"
        f"Command: `{shown}` — {date}, {machine()}, {seconds:.0f} s wall.\n\n```\n{output}\n```\n"
        f"<!-- /bench:{bench.name} -->\n"
    )


def merge(doc: str, sections: dict[str, str]) -> str:
    """``doc`` with the named sections replaced (or appended in :data:`BENCHES` order where absent)."""
    head = "# Benchmarks\n\nGenerated by `python benchmarks/run.py`; do not edit by hand.\n\n"
    old = {
        m.group(1): m.group(0) + "\n" for m in re.finditer(r"<!-- bench:([\w-]+) -->.*?<!-- /bench:\1 -->", doc, re.S)
    }
    merged = old | sections
    return head + "\n".join(merged[b.name] for b in BENCHES if b.name in merged)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="each benchmark's quick form")
    ap.add_argument("--only", nargs="+", choices=[b.name for b in BENCHES], help="run only these")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    ap.add_argument("--out", type=Path, default=DOC, help=f"the page to write (default: {DOC.relative_to(ROOT)})")
    args = ap.parse_args(argv)
    if args.list:
        for b in BENCHES:
            print(f"{b.name:12} {b.what}")
        return 0
    chosen = [b for b in BENCHES if (args.only is None or b.name in args.only) and not (args.quick and not b.quick)]
    sections, failed = {}, []
    for bench in chosen:
        with tempfile.TemporaryDirectory(prefix="optsteps-bench-") as tmp:
            shown, output, seconds, code = run(bench, args.quick, tmp)
        print(f"{bench.name}: {seconds:.0f} s, exit {code}", file=sys.stderr)
        if code == 0:
            sections[bench.name] = section(bench, shown, output, seconds)
        else:
            failed.append(f"{bench.name} (exit {code}): {output[-2000:]}")
    doc = args.out.read_text() if args.out.exists() else ""
    staged = args.out.with_name(f".{args.out.name}.tmp")
    staged.write_text(merge(doc, sections))
    os.replace(staged, args.out)  # readers see the old page or the new one, never half of it
    for line in failed:
        print(f"failed, its section left as it was: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
