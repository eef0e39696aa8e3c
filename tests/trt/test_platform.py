"""accelkit.trt.platform: lazy imports, logging routing, which plans may be loaded.

Everything here runs without TensorRT or a GPU. ``pytest.importorskip("tensorrt")`` is
not enough to detect TensorRT: ``tensorrt-stubs`` installs a ``tensorrt/`` folder of
``.pyi`` files that imports as an empty namespace package, so the checks use
:func:`tensorrt_import_problem`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from accelkit.artifact import sidecar_path
from accelkit.errors import LoadError, MissingDependencyError
from accelkit.trt import platform
from accelkit.trt.platform import (
    check_plan_compatible,
    check_plan_trusted,
    last_trt_errors,
    load_tensorrt,
    plan_build_info,
    polygraphy_logging,
    tensorrt_import_problem,
)
from tests.trt.helpers import GPU, REPO, TRT_VERSION, plan_sidecar, write_plan


# --------------------------------------------------------------------------- compatibility
def test_plan_compatible_when_everything_matches() -> None:
    assert check_plan_compatible(plan_sidecar(), TRT_VERSION, GPU) is None


def test_plan_incompatible_tensorrt_version() -> None:
    reason = check_plan_compatible(plan_sidecar("10.12.0.36"), TRT_VERSION, GPU)
    assert (
        reason is not None
        and "10.12.0.36" in reason
        and TRT_VERSION in reason
        and "TensorRT" in reason
    )


def test_plan_incompatible_compute_capability() -> None:
    other = {"name": "NVIDIA L4", "compute_capability": "8.9"}
    reason = check_plan_compatible(plan_sidecar(), TRT_VERSION, other)
    assert (
        reason is not None
        and "9.0" in reason
        and "8.9" in reason
        and "compute capability" in reason
    )


def test_plan_incompatible_gpu_model_same_capability() -> None:
    other = {"name": "NVIDIA H100 PCIe", "compute_capability": "9.0"}
    reason = check_plan_compatible(plan_sidecar(), TRT_VERSION, other)
    assert reason is not None and "NVIDIA H100 PCIe" in reason


@pytest.mark.parametrize(
    ("sidecar", "says"),
    [
        ({"format": "trt", "meta": {}}, "TensorRT version"),
        ({"format": "trt", "meta": {"tensorrt": {"version": TRT_VERSION}}}, "GPU"),
        ({"format": "onnx", "meta": {}}, "not a TensorRT plan"),
    ],
)
def test_plan_incompatible_when_sidecar_lacks_facts(sidecar: dict[str, Any], says: str) -> None:
    reason = check_plan_compatible(sidecar, TRT_VERSION, GPU)
    assert reason is not None and says in reason


def test_plan_version_falls_back_to_other_records() -> None:
    side = {"format": "trt", "versions": {"tensorrt": TRT_VERSION}, "meta": {"gpu": GPU}}
    assert check_plan_compatible(side, TRT_VERSION, GPU) is None
    side = {"format": "trt", "meta": {"tensorrt_version": "10.1", "gpu": GPU}}
    assert plan_build_info(side) == ("10.1", GPU)


# --------------------------------------------------------------------------- trust
def test_plan_with_matching_sidecar_is_trusted(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    side = check_plan_trusted(plan.path)  # type: ignore[arg-type]
    assert (
        side is not None
        and side["format"] == "trt"
        and side["meta"]["tensorrt_version"] == TRT_VERSION
    )


def _refusal(plan: Path, **kw: Any) -> str:
    with pytest.raises(LoadError) as info:
        check_plan_trusted(plan, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert (
        "accelkit build" in msg and "--trust-engine" in msg and "trust_engine=True" in msg
    )  # the fixes
    assert "plugin code" in msg  # the why
    return msg


def test_plan_without_sidecar_is_refused(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, sidecar=False)
    assert "has no sidecar" in _refusal(plan.path)  # type: ignore[arg-type]


def test_changed_plan_is_refused(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    assert plan.path is not None
    plan.path.write_bytes(b"another plan, same sidecar")
    assert "sha256 differs" in _refusal(plan.path)


def test_caller_hash_is_what_is_checked(tmp_path: Path) -> None:
    """The runner passes the sha256 of the bytes it will deserialize, not of the file now."""
    plan = write_plan(tmp_path)
    assert plan.path is not None
    assert "sha256 differs" in _refusal(plan.path, sha256="0" * 64)


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d.pop("sha256"), "records no sha256"),
        (lambda d: d.update(format="onnx"), "not a TensorRT plan"),
    ],
)
def test_sidecar_without_a_usable_record_is_refused(tmp_path: Path, edit: Any, says: str) -> None:
    plan = write_plan(tmp_path)
    side_file = sidecar_path(plan.path)  # type: ignore[arg-type]
    doc = json.loads(side_file.read_text())
    edit(doc)
    side_file.write_text(json.dumps(doc))
    assert says in _refusal(plan.path)  # type: ignore[arg-type]


def test_unreadable_sidecar_is_refused(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    sidecar_path(plan.path).write_text("{not json")  # type: ignore[arg-type]
    assert "unreadable" in _refusal(plan.path)  # type: ignore[arg-type]


def test_trust_overrides_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plan = write_plan(tmp_path, sidecar=False)
    with caplog.at_level(logging.WARNING, logger="accelkit.trt.platform"):
        assert check_plan_trusted(plan.path, trust=True) is None  # type: ignore[arg-type]
    assert "trust_engine=True" in caplog.text and "no sidecar" in caplog.text
    changed = write_plan(tmp_path, name="h.plan")
    changed.path.write_bytes(b"changed")  # type: ignore[union-attr]
    side = check_plan_trusted(changed.path, trust=True)  # type: ignore[arg-type]
    assert (
        side is not None and side["format"] == "trt"
    )  # the sidecar still serves the compatibility check


# --------------------------------------------------------------------------- imports
def test_missing_tensorrt_names_the_extra() -> None:
    if tensorrt_import_problem() is None:
        pytest.skip("tensorrt is importable here")
    with pytest.raises(MissingDependencyError, match=r"accelkit\[gpu\]") as info:
        load_tensorrt("building a TensorRT engine")
    assert "building a TensorRT engine" in str(info.value) and "\n" not in str(info.value)
    assert platform.tensorrt_version() is None


def test_stub_only_tensorrt_counts_as_missing(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "tensorrt"
    fake.mkdir(parents=True)
    (fake / "__init__.pyi").write_text("__version__: str\n")  # what tensorrt-stubs installs
    code = (
        "import sys; sys.path[:0] = [{!r}, {!r}]\n"
        "from accelkit.trt.platform import tensorrt_import_problem\n"
        "import tensorrt; print('namespace' if tensorrt.__file__ is None else 'real')\n"
        "print(tensorrt_import_problem())\n"
    ).format(str(tmp_path / "site"), str(REPO))
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "namespace"
    assert "only type stubs" in lines[1] and "accelkit[gpu]" in lines[1]


def test_old_or_missing_polygraphy_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    old = types.ModuleType("polygraphy")
    old.__version__ = "0.47.1"  # type: ignore[attr-defined]
    old.__file__ = "polygraphy/__init__.py"
    monkeypatch.setitem(sys.modules, "polygraphy", old)
    with pytest.raises(MissingDependencyError, match=r"polygraphy>=0\.49, found 0\.47\.1"):
        platform.load_polygraphy("building")
    monkeypatch.setitem(sys.modules, "polygraphy", None)  # not installed
    problem = platform.polygraphy_import_problem()
    assert problem is not None and "accelkit[gpu]" in problem


def test_modules_import_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import accelkit.trt, accelkit.trt.platform, accelkit.trt.build, accelkit.trt.runner, accelkit.trt.memory, accelkit.device\n"
        "from accelkit.runners import runner_class\n"
        "assert runner_class('trt').__module__ == 'accelkit.trt.runner'\n"
        "heavy = ('tensorrt', 'tensorrt_bindings', 'polygraphy', 'pycuda', 'cuda', 'torch', 'onnxruntime', 'onnx')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------- logging
def test_polygraphy_logging_routes_to_logging_not_stdout(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip(
        "polygraphy", reason="polygraphy (the gpu and dev extras) routes TensorRT's log"
    )
    from polygraphy.exception import PolygraphyException
    from polygraphy.logger import G_LOGGER

    before = (G_LOGGER.use_python_logging_system, G_LOGGER.colors)
    with caplog.at_level(logging.DEBUG, logger="accelkit.trt.tensorrt"):
        with polygraphy_logging():
            platform.clear_trt_errors()
            G_LOGGER.warning("a warning from polygraphy")
            G_LOGGER.error("Error Code 4: the parser failed\nsecond line")
            with polygraphy_logging():  # nested use keeps the routing
                with pytest.raises(PolygraphyException):
                    G_LOGGER.critical(
                        "Invalid Engine. Please ensure the engine was built correctly"
                    )
            G_LOGGER.error("still routed after the inner block")
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # the library never prints
    assert "a warning from polygraphy" in caplog.text and "[W]" not in caplog.text
    errors = last_trt_errors()
    assert "Invalid Engine" in errors and "still routed" in errors and "\n" not in errors
    assert "[E]" not in errors and "the parser failed second line" in errors  # one line per message
    assert (G_LOGGER.use_python_logging_system, G_LOGGER.colors) == before  # restored
    assert logging.getLogger("Polygraphy").handlers == []


def test_dims_of_a_sequence() -> None:
    class Dims(list):
        pass

    assert platform.dims(Dims([-1, 8])) == (-1, 8)  # type: ignore[arg-type]
