"""The dataset card (``README.md``) that :mod:`builder.registry.publish` uploads beside the registry files."""

from __future__ import annotations

import json

__all__ = ["CARD_NAME", "HUB_LICENSES", "dataset_card"]

CARD_NAME = "README.md"
# Licence ids the Hub's card metadata knows, by the SPDX id the index carries (lower-cased); others: "other".
HUB_LICENSES = {
    "cc-by-4.0",
    "cc-by-sa-4.0",
    "cc0-1.0",
    "cc-by-nc-4.0",
    "mit",
    "apache-2.0",
    "bsd-3-clause",
    "odc-by",
    "odbl",
    "pddl",
}


def _nfes(nfe: list[int]) -> str:
    return f"{nfe[0]}-{nfe[-1]}" if nfe == list(range(nfe[0], nfe[-1] + 1)) else ",".join(map(str, nfe))


def dataset_card(index: dict, repo_id: str, revision: str) -> str:
    """The dataset card (``README.md``): YAML metadata (licence, tags, no viewer), what the data is, how to
    load it, the file table, and the citation, all taken from ``index``."""
    spdx = str(index["license"])
    hub_license = spdx.lower() if spdx.lower() in HUB_LICENSES else "other"
    meta = [f"license: {hub_license}"]
    if hub_license == "other":
        meta.append(f"license_name: {json.dumps(spdx)}")
    meta += [
        "pretty_name: optsteps registry",
        "viewer: false",
        "tags:",
        "- diffusion",
        "- sampling",
        "- unipc",
        "- dpm-solver",
        "- optsteps",
    ]
    rows = [
        "| file | schedule | params | solver entries (NFE) | bound entries | NFE | orders | p | sha256 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in index["files"]:
        params = ", ".join(f"{k}={v}" for k, v in sorted(rec["params"].items())) or "-"
        solver = f"{rec['solver_entries']} ({_nfes(rec['solver_nfe'])})" if rec.get("solver_entries") else "-"
        rows.append(
            f"| `{rec['path']}` | {rec['schedule']} | {params} | {solver} | {rec['entries']} | {_nfes(rec['nfe'])} | "
            f"{','.join(map(str, rec['orders']))} | {','.join(map(str, rec['p']))} | "
            f"`{rec['sha256'].removeprefix('sha256:')[:16]}…` |"
        )
    aliases = [
        f"`{name}` → {a['schedule']}" + (f" shift {a['shift']:g}" if "shift" in a else "")
        for name, a in index.get("aliases", {}).items()
    ]
    citation = str(index["citation"])
    return "\n".join(
        [
            "---",
            *meta,
            "---",
            "",
            "# optsteps registry",
            "",
            "Optimized time steps for few-step diffusion samplers (UniPC / DPM-Solver++), one JSON file per",
            "noise-schedule variant, as written by the optsteps builder (`python -m builder sweep`).",
            "",
            f"- data version: `{index['data_version']}` (this revision: `{revision}`)",
            f"- generator: `{index['generator']}`",
            f"- schema version: {index['schema_version']} (format: docs/registry-format.md in the optsteps repo)",
            f"- licence: {spdx}",
            "",
            "`index.json` lists every data file with its sha256; the files are canonical JSON. Each file holds",
            "*solver entries* (steps refined for one sampler — UniPC, DPM-Solver++ 1/2M/3M — and one ending, t_eps or",
            "sigma = 0, with their measured errors on held-out problems: what `get()` returns) and the paper's",
            "*bound entries* (per order and exponent p).",
            "",
            *([f"Model aliases: {', '.join(aliases)}.", ""] if aliases else []),
            "## Use",
            "",
            "```python",
            "import os, optsteps_loader",
            f'os.environ["OPTSTEPS_HUB_REPO"] = "{repo_id}"',
            f'steps = optsteps_loader.get("vp-linear", 10, source="hub", revision="{revision}")',
            "```",
            "",
            "Pin a commit id instead of the tag for bit-for-bit reproducibility; the loader checks every file",
            "against the index's sha256. To vendor files, copy `index.json` and the files you need and run",
            "`optsteps verify --source FOLDER --allow-missing`.",
            "",
            "## Files",
            "",
            *rows,
            "",
            "## Licence",
            "",
            f"The data is licensed {spdx}. When you use or redistribute it, keep the index's",
            "`license` and `citation` fields with it.",
            "",
            "## Citation",
            "",
            "```",
            citation,
            "```",
            "",
        ]
    )
