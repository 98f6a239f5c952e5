"""What an entry records about how it was made, checked where it can be (`figures_problems`): its
``input_hash`` against the key rebuilt from its own inputs (`input_key`), its ``variant``, the bound's
``objective`` figures and ``tau``, and its ``quality`` record (`quality_problems`). Stdlib only.

Called by `invariants.entry_problems` as the last of an entry's checks, and loaded by it on the first one.
"""

from __future__ import annotations

import math

from .format import input_hash, is_num, is_sha256_id, short

VARIANTS = {"unipc": ("bh1", "bh2")}  # the solvers that take a variant, and its values (B(h) for UniPC)
QUALITY_ROUNDING = 2e-3  # relative: quality figures are written to 4 significant digits


def input_key(e: dict, schedule: dict) -> list[dict]:
    """The problem keys an entry's ``input_hash`` may hash (`format.input_hash`), rebuilt from the entry and
    its file's schedule block as the builder builds them (builder/registry/entry.py): a bound entry's with its
    ``tau`` (or ``"auto"``, what the sweep asked for), a solver entry's with its solver, ending, profile and,
    for a calibrated one, the calibration's identity."""
    key = {k: schedule[k] for k in ("params", "t_start", "t_end")}
    key.update(schedule=schedule["name"], nfe=e["nfe"], order=e["order"])
    if "p" in e:
        return [{**key, "p": float(e["p"]), "tau": tau} for tau in (e.get("tau"), "auto")]
    key.update(solver=e.get("solver"), ending=e.get("ending"))
    if "profile" in e:
        key["profile"] = e["profile"]
    calibration = e.get("calibration")
    if isinstance(calibration, dict) and "identity" in calibration:
        key["calibration"] = calibration["identity"]
    return [key]


def figures_problems(e: dict, schedule: dict) -> list[str]:
    """What an entry records about how it was made, checked where it can be: ``input_hash`` recomputed from
    the entry's own inputs (`input_key`); ``variant`` present exactly on the solvers that take one
    (`VARIANTS`); the bound's ``objective`` figures and ``tau`` not negative; ``quality`` (`quality_problems`).
    What cannot be checked here: that the grid is the optimum its figures describe (a grid copied whole from
    another entry with its figures passes; docs/registry-format.md, "What the checks cannot see")."""
    out = []
    got = e.get("input_hash")
    if not is_sha256_id(got):
        out.append(f"'input_hash' must be 'sha256:' + 64 lowercase hex digits, got {short(got)!r}")
    else:
        keys = input_key(e, schedule)
        if all(input_hash(k) != got for k in keys):
            out.append(
                f"input_hash {got} is not the hash of the entry's inputs ({input_hash(keys[0])}): the entry was"
                " edited, or moved from another schedule variant, NFE or order"
            )
    if "p" not in e:
        solver, variant = e.get("solver"), e.get("variant")
        allowed = VARIANTS.get(solver, ())
        if allowed and variant not in allowed:
            out.append(f"solver {short(solver)!r} needs a 'variant' of {allowed}, got {short(variant)!r}")
        elif not allowed and variant is not None:
            out.append(f"solver {short(solver)!r} takes no 'variant', got {short(variant)!r}")
    else:
        if type(e.get("tau")) is int and e["tau"] < 0:
            out.append(f"'tau' must be >= 0, got {e['tau']}")
        for k in ("objective", "objective_uniform_lambda", "objective_uniform_t"):
            if is_num(e.get(k)) and e[k] < 0:
                out.append(f"{k!r} = {e[k]!r} is negative (the bound is a sum of non-negative terms)")
    quality = e.get("quality")
    return out + (quality_problems(quality) if isinstance(quality, dict) else [])


_POSITIVE = ("mean_l2", "median_l2", "ratio_")  # quality figures that are errors or ratios of errors
_COUNTS = frozenset(("candidates", "above_uniform_lambda", "problems"))


def quality_problems(quality: dict) -> list[str]:
    """The quality record's signs, ranges and internal consistency (every block holding ``baselines``):
    errors (``mean_l2*``, ``median_l2*``) and ratios positive, standard errors and counts not negative; the
    ``best_baseline`` and ``worst`` named among the baselines, the best one's figures repeated as they are,
    ``worst`` the baseline of the largest log-ratio; ``mean_l2_uniform_lambda`` / ``_t`` the baselines' own;
    ``ratio_uniform_lambda`` = exp(the uniform-λ log-ratio) to the figures' rounding; a baseline of log-ratio 0
    with standard error 0 (the same grid) with the block's own mean and median."""
    out: list[str] = []
    stack: list = [(quality, "quality")]
    while stack and len(out) < 5:
        block, at = stack.pop()
        for k, v in block.items():
            kind = type(v)
            if kind is dict:
                stack.append((v, f"{at}.{short(k)}"))
            elif kind is float or kind is int:
                bad = (
                    (k.startswith(_POSITIVE) and not v > 0)
                    or (k.endswith("_se") and not v >= 0)
                    or (k in _COUNTS and not (kind is int and v >= 0))
                )
                if bad:
                    out.append(f"{at}.{short(k)} = {v!r} is out of range (errors and ratios > 0, counts and SEs >= 0)")
            elif v is not None and kind not in (str, list, bool):
                out.append(f"{at}.{short(k)} must be a number, string, list or object")
        baselines = block.get("baselines")
        if isinstance(baselines, dict):
            out += _baseline_problems(block, baselines, at)
    return out


def _baseline_problems(block: dict, baselines: dict, at: str) -> list[str]:
    if not all(isinstance(b, dict) and is_num(b.get("log_ratio")) for b in baselines.values()):
        return [f"{at}.baselines: each needs a number 'log_ratio'"]
    out = []
    for name, repeated in (
        (block.get("best_baseline"), {"mean_l2_best_baseline": "mean_l2", "log_ratio_best_baseline": "log_ratio"}),
        ("uniform-lambda", {"mean_l2_uniform_lambda": "mean_l2"}),
        ("uniform-t", {"mean_l2_uniform_t": "mean_l2"}),
    ):
        for k, field in repeated.items():
            if k in block and (name not in baselines or baselines[name].get(field) != block[k]):
                out.append(f"{at}.{k} = {block[k]!r} is not baselines[{short(name)!r}].{field}")
    worst = block.get("worst")
    if worst is not None:
        top = max(b["log_ratio"] for b in baselines.values())
        if worst not in baselines or baselines[worst]["log_ratio"] != top:
            out.append(f"{at}.worst = {short(worst)!r} is not the baseline of the largest log_ratio ({top!r})")
    ratio, uniform = block.get("ratio_uniform_lambda"), baselines.get("uniform-lambda")
    if is_num(ratio) and uniform is not None:
        want = math.exp(min(uniform["log_ratio"], 700.0))
        if not abs(ratio - want) <= QUALITY_ROUNDING * want:
            out.append(
                f"{at}.ratio_uniform_lambda = {ratio!r} but exp(baselines['uniform-lambda'].log_ratio) = {want:.4g}"
            )
    for name, b in baselines.items():
        same = b["log_ratio"] == 0 and b.get("log_ratio_se") == 0
        if same and (b.get("mean_l2"), b.get("median_l2")) != (block.get("mean_l2"), block.get("median_l2")):
            out.append(
                f"{at}.baselines[{short(name)!r}] has log_ratio 0 with SE 0 (the same grid) but mean/median L2"
                f" ({b.get('mean_l2')!r}, {b.get('median_l2')!r}), not the entry's"
                f" ({block.get('mean_l2')!r}, {block.get('median_l2')!r})"
            )
    return out
