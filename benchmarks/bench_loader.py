"""Loader speed, each figure next to ``json.load`` of the same file as the yardstick.

    python benchmarks/bench_loader.py [--registry FOLDER] [--repeat 15]

Measures
- import time of ``optsteps_loader`` over a bare interpreter (``python -c pass`` vs ``python -c "import
  optsteps_loader"``, medians of interleaved runs; plus the ``-X importtime`` total) — goal < 15 ms;
- the first ``get()`` in a fresh process (imports, read, sha256, parse, entry checks), and in-process with
  a cleared cache, against ``json.load`` of the same data file;
- a repeated ``get()`` (cache hit: argument checks, two ``stat`` calls, dict lookups) — goal < 20 µs;
- ``verify()`` of the whole registry (hashes, strict parsing, JSON Schema, every entry) — goal < 2 s.

Reads ``registry/`` when it has an ``index.json``, else writes a fixture registry of the real grid's size
(NFE 3–30, 35, 40, 45, 50 × order 1–3 × p 0–2) with tests/registry_factory.py into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = {"nfes": [*range(3, 31), 35, 40, 45, 50], "orders": (1, 2, 3), "ps": (0, 1, 2)}
SCHEDULE, NFE = "vp-linear", 10


def python(code: str, *args: str, env: dict | None = None) -> str:
    out = subprocess.run(
        [sys.executable, *args, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=env
    )
    return out.stdout + out.stderr


def wall(code: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env=env)
    return time.perf_counter() - start


def import_time(env: dict, repeat: int) -> tuple[float, float, float]:
    """(median bare interpreter, median with the import, -X importtime total) in seconds."""
    bare, loaded = [], []
    for _ in range(repeat):  # interleaved, so drifts in machine load hit both alike
        bare.append(wall("pass", env))
        loaded.append(wall("import optsteps_loader", env))
    report = python("import optsteps_loader", "-X", "importtime", env=env)
    total = sum(
        int(m.group(1)) for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \| (optsteps_loader)$", report, re.M)
    )
    return statistics.median(bare), statistics.median(loaded), total * 1e-6


def cold_in_new_process(root: Path, rel: str, env: dict, repeat: int) -> tuple[float, float]:
    """Median time of the first get() / of `import json; json.load(...)`, each in a fresh interpreter."""
    get_code = (
        "import time; t = time.perf_counter(); import optsteps_loader; "
        f"optsteps_loader.get({SCHEDULE!r}, {NFE}, source={str(root)!r});"
        " print(time.perf_counter() - t)"
    )
    json_code = (
        "import time; t = time.perf_counter(); import json; "
        f"f = open({str(root / rel)!r}, 'rb'); json.load(f); print(time.perf_counter() - t)"
    )
    gets, loads = [], []
    for _ in range(repeat):
        gets.append(float(python(get_code, env=env)))
        loads.append(float(python(json_code, env=env)))
    return statistics.median(gets), statistics.median(loads)


def per_call(fn, seconds: float = 0.5) -> float:
    """Best-of-5 time per call, with the loop sized to about ``seconds``."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * seconds / 0.2))
    return min(timer.repeat(repeat=5, number=number)) / number


def line(label: str, value: float, yard: float | None = None, goal: float | None = None) -> str:
    text = f"{label:<40}{_fmt(value):>10}"
    if yard is not None:
        text += f"   json.load {_fmt(yard):>10}   ratio {value / yard:7.3f}"
    if goal is not None:
        text += f"   goal < {_fmt(goal)}: {'ok' if value < goal else 'MISSED'}"
    return text


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.2f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=None, help="a registry folder (default: registry/)")
    parser.add_argument("--repeat", type=int, default=15, help="subprocess runs per import/cold figure")
    args = parser.parse_args()

    root = args.registry or REPO / "registry"
    tmp = None
    if not (root / "index.json").is_file():
        from tests.registry_factory import make_registry

        tmp = tempfile.TemporaryDirectory()
        root = make_registry(Path(tmp.name), schedules=(SCHEDULE,), **GRID)
        origin = "fixture (tests/registry_factory.py, real grid size)"
    else:
        origin = "committed registry"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "0"}
    env.pop("OPTSTEPS_REGISTRY_DIR", None)

    import optsteps_loader

    index = json.loads((root / "index.json").read_bytes())
    rec = next(r for r in index["files"] if r["schedule"] == SCHEDULE)
    data_path = root / rec["path"]
    print(f"python {sys.version.split()[0]} on {sys.platform}; registry: {root} ({origin})")
    print(
        f"file {rec['path']}: {data_path.stat().st_size / 1024:.0f} KiB, {rec['entries']} entries;"
        f" get({SCHEDULE!r}, {NFE})\n"
    )

    python("import optsteps_loader", env=env)  # compile bytecode once, so it is not timed
    bare, loaded, self_reported = import_time(env, args.repeat)
    print(line("import optsteps_loader (wall)", loaded - bare, goal=15e-3) + f"   [bare interpreter {_fmt(bare)}]")
    print(line("import optsteps_loader (-X importtime)", self_reported, goal=15e-3))

    cold_get, cold_json = cold_in_new_process(root, rec["path"], env, args.repeat)
    print(line("first get(), new process", cold_get, cold_json))

    def load_json() -> None:
        with open(data_path, "rb") as f:
            json.load(f)

    def cleared_get() -> None:
        optsteps_loader.clear_cache()
        optsteps_loader.get(SCHEDULE, NFE, source=root)

    print(line("first get(), cache cleared", per_call(cleared_get), per_call(load_json)))
    optsteps_loader.get(SCHEDULE, NFE, source=root)
    hit = per_call(lambda: optsteps_loader.get(SCHEDULE, NFE, source=root))
    print(line("repeated get()", hit, per_call(load_json), goal=20e-6))
    print(line("verify() of the whole registry", verify_time(root), goal=2.0))
    if tmp is not None:
        tmp.cleanup()


def verify_time(root: Path) -> float:
    """Best of 3 ``optsteps_loader.verify(root)`` (every file read, hashed, parsed, schema-validated and every
    entry checked; the cache cleared before each)."""
    import optsteps_loader

    times = []
    for _ in range(3):
        optsteps_loader.clear_cache()
        start = time.perf_counter()
        optsteps_loader.verify(root)
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    main()
