"""The loader on fixture registries (tests/registry_factory.py): lookup, mapping to `Steps`, sources,
caching, import hygiene, `available`/`info`/`verify`. Never reads the committed ``registry/``."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import optsteps_loader
from optsteps_loader import (
    EntryNotFoundError,
    RegistryIntegrityError,
    RegistryUnavailableError,
    Steps,
    _sources,
    available,
    clear_cache,
    get,
    info,
    verify,
)
from optsteps_loader import reader as registry_module
from tests import registry_factory as factory

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("fresh_loader_cache")  # an empty loader cache (tests/conftest.py)


def test_get_maps_every_entry_key_onto_steps(reg):
    steps = get("vp-linear", 6, source=reg)
    entry = next(
        e for e in factory.read_json(reg, "v1/vp-linear.json")["entries"] if (e["nfe"], e["order"], e["p"]) == (6, 3, 1)
    )
    assert isinstance(steps, Steps)
    for key, name in registry_module.SEQUENCES.items():
        assert getattr(steps, name) == tuple(entry[key]), key
    head = (steps.schedule, steps.nfe, steps.order, steps.p, steps.solver)
    assert head == ("vp-linear", 6, 3, 1.0, "unipc")
    assert steps.step_orders == tuple(entry["step_orders"]) == (1, 2, 3, 3, 2, 1)
    assert (steps.tau, steps.objective) == (entry["tau"], entry["objective"])
    assert steps.objective_uniform_lambda == entry["objective_uniform_lambda"]
    assert steps.objective_uniform_t == entry["objective_uniform_t"]
    assert steps.time_input == "t" and steps.quality is None and dict(steps.params) == {}
    prov = steps.provenance
    assert prov["data_version"] == factory.DATA_VERSION and prov["file"] == "v1/vp-linear.json"
    assert prov["sha256"].startswith("sha256:") and prov["input_hash"] == entry["input_hash"]
    assert prov["numpy"] == "fixture" and prov["source"] == str(reg)
    assert len(steps.t) == 7 and steps.sigmas_with_zero()[-1] == 0.0


def test_p_none_takes_the_files_default_and_order_p_select_entries(reg):
    assert get("vp-linear", 5, source=reg).p == factory.DEFAULTS["p"]
    a, b, c = (get("vp-linear", 5, order=k, p=p, source=reg) for k, p in ((3, 0), (3, 2), (1, 2)))
    assert (a.p, b.p, c.order) == (0.0, 2.0, 1)
    assert len({a.t, b.t, c.t}) == 3
    assert get("vp-linear", 5, p=2.0, source=reg) is get("vp-linear", 5, p=2, source=reg)


def test_solver_dpmpp_reads_the_same_entry(reg):
    unipc, dpmpp = get("vp-linear", 4, source=reg), get("vp-linear", 4, solver="dpmpp", source=reg)
    assert dpmpp.solver == "dpmpp" and unipc.solver == "unipc"
    assert dataclasses.replace(dpmpp, solver="unipc") == unipc


def test_records_are_immutable_and_cached(reg):
    steps = get("flow", 4, source=reg, shift=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        steps.nfe = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        steps.params["shift"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        steps.provenance["optimizer"]["nit"] = 3  # type: ignore[index]
    assert get("flow", 4, source=reg, shift=3.0) is steps
    clear_cache()
    again = get("flow", 4, source=reg, shift=3)
    assert again is not steps and again == steps


def test_flow_variants_by_shift(reg):
    default, s1, s3 = (get("flow", 5, source=reg, shift=s) for s in (None, 1, 3))
    assert default is s1 and dict(s3.params) == {"shift": 3.0} and s3.t != s1.t
    assert s3.time_input == "1000*sigma"
    assert s3.timesteps == tuple(1000 * x for x in s3.sigma_t)
    served = get("flow", 5, source=reg, shift=2)  # no file: the nearest in log(shift), tests/test_loader_shift.py
    assert dict(served.params) == {"shift": 2.0} and dict(served.served_from)["shift"] == 3.0
    with pytest.raises(EntryNotFoundError, match=r"shift=0.5.*shifts available: 1, 3 \(flow shifts ≥ 1 are served"):
        get("flow", 5, source=reg, shift=0.5)
    with pytest.raises(ValueError, match="only applies to flow"):
        get("vp-linear", 5, source=reg, shift=3)


def test_flow_without_a_shift_one_variant_needs_an_explicit_shift(tmp_path):
    root = factory.make_registry(tmp_path, schedules=("flow",), shifts=(3.0, 6.0))
    with pytest.raises(EntryNotFoundError, match="shift=1; shifts available: 3, 6"):
        get("flow", 4, source=root)
    assert get("flow", 4, source=root, shift=6).params["shift"] == 6.0
    single = factory.make_registry(tmp_path / "single", schedules=("flow",), shifts=(3.0,))
    assert get("flow", 4, source=single).params["shift"] == 3.0  # the only variant


def test_discrete_schedule_has_int_timesteps(reg):
    steps = get("ddpm-linear", 8, source=reg)
    assert all(type(x) is int for x in steps.timesteps) and steps.timesteps[0] == 999
    assert steps.time_input == "timestep"
    assert isinstance(steps.timestep_collisions, tuple)


def test_source_env_var_path_and_revision_rules(reg, monkeypatch):
    monkeypatch.setenv("OPTSTEPS_REGISTRY_DIR", str(reg))
    via_env = get("vp-linear", 3)
    assert via_env == get("vp-linear", 3, source=str(reg)) == get("vp-linear", 3, source=reg)
    with pytest.raises(ValueError, match="revision= only applies"):
        get("vp-linear", 3, source=reg, revision="main")


def test_bundled_dir_prefers_the_wheel_copy(tmp_path, monkeypatch):
    package = tmp_path / "site" / "optsteps_loader"
    monkeypatch.setattr(_sources, "_PACKAGE", str(package))
    assert _sources.bundled_dir() == str(tmp_path / "site" / "registry")  # source checkout layout
    factory.make_registry(package / "registry", schedules=("vp-linear",))
    assert _sources.bundled_dir() == str(package / "registry")  # wheel layout (force-include)
    assert get("vp-linear", 3).provenance["source"] == str(package / "registry")


def test_missing_registry_is_unavailable(tmp_path):
    with pytest.raises(RegistryUnavailableError, match="no registry at"):
        get("vp-linear", 6, source=tmp_path / "nowhere")
    assert issubclass(RegistryUnavailableError, OSError)


def test_cache_sees_an_atomically_rebuilt_registry(tmp_path):
    root = factory.make_registry(tmp_path, schedules=("vp-linear",), nfes=(3, 4))
    first = get("vp-linear", 4, source=root)
    with pytest.raises(EntryNotFoundError):
        get("vp-linear", 5, source=root)
    factory.make_registry(tmp_path, schedules=("vp-linear",), nfes=(3, 4, 5))  # new files, renamed over
    assert get("vp-linear", 5, source=root).nfe == 5
    assert get("vp-linear", 4, source=root).t == first.t


def test_lru_is_bounded(tmp_path):
    tiny = {"schedules": ("vp-linear",), "nfes": (3,), "orders": (3,), "ps": (1,)}
    roots = [factory.make_registry(tmp_path / str(i), **tiny) for i in range(registry_module._CACHE_SIZE)]
    for root in roots:
        get("vp-linear", 3, source=root)
    assert len(registry_module._cache) <= registry_module._CACHE_SIZE


def test_available_lists_the_index(reg):
    listing = available(reg)
    assert list(listing) == ["ddpm-linear", "flow", "vp-linear"]
    assert [v["params"] for v in listing["flow"]] == [{"shift": 1.0}, {"shift": 3.0}]
    vp = listing["vp-linear"][0]
    assert (vp["nfe"], vp["orders"], vp["p"], vp["entries"]) == (list(range(3, 9)), [1, 2, 3], [0, 1, 2], 54)
    vp["nfe"].append(99)  # a private copy
    assert 99 not in available(reg)["vp-linear"][0]["nfe"]


def test_info_gives_schedule_and_defaults_blocks(reg):
    about = info("flow", shift=3, source=reg)
    assert about["schedule"]["family"] == "flow" and about["schedule"]["params"] == {"shift": 3.0}
    assert about["defaults"] == factory.DEFAULTS
    assert about["variants"] == [{"shift": 1.0}, {"shift": 3.0}] and about["path"] == "v1/flow-shift3.json"
    assert info("vp-linear", source=reg)["schedule"]["params"] == factory.VP
    about["defaults"]["p"] = 99
    assert info("flow", shift=3, source=reg)["defaults"]["p"] == 1


def test_verify_whole_registry(reg):
    report = verify(reg)
    assert (report["files"], report["entries"], report["missing"]) == (4, 4 * 54, [])
    assert report["data_version"] == factory.DATA_VERSION
    assert report["schema"].startswith(("validated", "skipped"))


def test_verify_vendored_subset_and_unlisted_files(reg, tmp_path):
    vendored = tmp_path / "vendor"
    (vendored / "v1").mkdir(parents=True)
    shutil.copy(reg / "index.json", vendored)
    shutil.copy(reg / "v1" / "vp-linear.json", vendored / "v1")
    (vendored / "v1" / ".DS_Store").write_bytes(b"junk")
    with pytest.raises(RegistryIntegrityError, match="absent"):
        verify(vendored)
    report = verify(vendored, allow_missing=True)
    assert report["files"] == 1 and len(report["missing"]) == 3 and report["unlisted"] == ["v1/.DS_Store"]
    assert get("vp-linear", 3, source=vendored).nfe == 3
    with pytest.raises(RegistryIntegrityError, match=r"v1/flow-shift1.json: listed in the index but absent"):
        get("flow", 3, source=vendored)


def test_verify_reports_every_problem(tmp_path):
    root = factory.make_registry(tmp_path, schedules=("vp-linear", "ddpm-linear"))
    (root / "v1" / "vp-linear.json").write_bytes(b"{}")
    obj = factory.read_json(root, "v1/ddpm-linear.json")
    obj["entries"][0]["lambda"][1] = 1e9
    factory.write_bytes(root / "v1" / "ddpm-linear.json", factory.canonical_bytes(obj))
    factory.rehash_index(root)
    (root / "v1" / "vp-linear.json").write_bytes(b"[]")  # changed after the index was written
    with pytest.raises(RegistryIntegrityError) as err:
        verify(root)
    text = str(err.value)
    assert "2 problem(s)" in text and "vp-linear.json: sha256 mismatch" in text
    assert "ddpm-linear.json: entry nfe=3" in text and "lambda not strictly increasing" in text


def test_verify_schema_validation_and_skip(tmp_path, monkeypatch):
    pytest.importorskip("jsonschema")
    from optsteps_loader import _verify

    root = factory.make_registry(tmp_path, schedules=("vp-linear",))
    obj = factory.read_json(root, "v1/vp-linear.json")
    obj["entries"][0]["unexpected"] = 1  # structurally harmless, schema-invalid
    factory.rewrite(root, "v1/vp-linear.json", obj)
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # the loader's own compiled schemas need nothing
    if _verify.schema_dir() is not None:
        with pytest.raises(RegistryIntegrityError, match="schema: additional property 'unexpected' is not allowed"):
            verify(root)
    monkeypatch.delitem(sys.modules, "jsonschema")
    monkeypatch.setattr(_verify, "schema_dir", lambda: None)
    assert verify(root)["schema"].startswith("skipped:") and "not found" in verify(root)["schema"]


def test_import_loads_no_heavy_modules():
    heavy = ["numpy", "scipy", "torch", "huggingface_hub", "click", "jsonschema", "dataclasses", "typing"]
    code = f"import sys, optsteps_loader; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_get_stays_stdlib_only(reg):
    heavy = ["numpy", "scipy", "torch", "huggingface_hub", "click", "jsonschema"]
    code = (
        "import sys, optsteps_loader; optsteps_loader.get('vp-linear', 6, source=sys.argv[1]);"
        " optsteps_loader.verify(sys.argv[1]) if False else None;"
        f" print([m for m in {heavy!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(reg)], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_public_surface_and_version():
    assert set(optsteps_loader.__all__) >= {
        "get",
        "available",
        "info",
        "clear_cache",
        "verify",
        "Steps",
        "ScheduleNotFoundError",
        "EntryNotFoundError",
        "RegistryIntegrityError",
        "__version__",
    }
    for name in optsteps_loader.__all__:
        assert getattr(optsteps_loader, name) is not None
    assert optsteps_loader.Steps is Steps
    with pytest.raises(AttributeError):
        optsteps_loader.nope  # noqa: B018
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert version and version.group(1) == optsteps_loader.__version__


def test_index_canonical_and_json_roundtrip(reg):
    """The fixture is canonical (what the builder writes), so these tests read the real format."""
    for rel in ["index.json"] + [r["path"] for r in factory.read_json(reg, "index.json")["files"]]:
        data = (reg / rel).read_bytes()
        assert factory.canonical_bytes(json.loads(data)) == data
    assert os.path.isfile(reg / "index.json")


def test_repr_is_one_short_line(reg):
    steps = get("vp-linear", 6, source=reg)
    text = repr(steps)
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith("Steps(schedule='vp-linear', nfe=6, order=3") and str(steps) == text


def test_verify_says_whether_the_source_is_pinned_and_how_to_pin(reg):
    from optsteps_loader._verify import pin_note

    assert "revision=<40-hex commit>" in verify(reg)["pin"]
    assert pin_note("hub:me/reg@" + "a" * 40).startswith("pinned:")
    assert pin_note(f"hub:me/reg@main (commit {'a' * 40})").startswith("not pinned:")
    assert "--revision <commit>" in pin_note("hub:me/reg@v2026.11.27.3")
