"""A runner's constructor refuses a cell with the rule its ``recipes(Ask)`` declares (one rule each).

What the planners are told (``recipes``) and what a constructor refuses must not drift apart:
each constructor asks ``recipes`` through :meth:`Runner.refusal` instead of restating the rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accelkit.errors import BackendUnavailableError, InputError
from accelkit.runners.base import Ask, Recipe
from accelkit.runners.torch_runner import TorchRunner
from tests.fixtures import generators as tg


def test_torch_fp16_on_cpu_is_refused_with_the_recipe_reason() -> None:
    reason = TorchRunner.recipes(Ask(kind="torch", precision="fp16", device="cpu"))
    assert isinstance(reason, str) and "CUDA only" in reason
    with pytest.raises(BackendUnavailableError) as err:
        TorchRunner(tg.torch_artifact("uncond"), precision="fp16")
    assert reason in str(err.value)


def test_a_rule_changed_in_recipes_changes_the_constructor() -> None:
    class NoBf16(TorchRunner):
        name = "torch-no-bf16"

        @classmethod
        def recipes(cls, ask: Ask) -> list[Recipe] | str:
            if ask.precision == "bf16":
                return "this build declares no bf16"
            return super().recipes(ask)

    NoBf16(tg.torch_artifact("uncond"), precision="fp32")  # still runs what it declares
    with pytest.raises(BackendUnavailableError, match="this build declares no bf16"):
        NoBf16(tg.torch_artifact("uncond"), precision="bf16")


@pytest.mark.parametrize("backend", ["torch", "ort", "openvino"])
def test_threads_rule_is_one_for_every_cpu_runner(backend: str, tmp_path: Path) -> None:
    from accelkit.runners.base import runner_class

    cls = runner_class(backend)
    if cls.availability("cpu") is not None:
        pytest.skip(f"{backend}: {cls.availability('cpu')}")
    art: Any = (
        tg.torch_artifact("uncond")
        if backend == "torch"
        else tg.onnx_artifact("uncond", tmp_path)[0]
    )
    with pytest.raises(InputError, match=rf"^{backend} threads must be a positive integer, got 0$"):
        cls(art, threads=0)


def test_openvino_device_and_bf16_rules_come_from_its_recipes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("openvino")
    from accelkit.runners import openvino_runner
    from accelkit.runners.openvino_runner import OpenVinoRunner

    art = tg.onnx_artifact("uncond", tmp_path)[0]
    on_cuda = OpenVinoRunner.recipes(Ask(kind="onnx", precision="fp32", device="cuda"))
    assert isinstance(on_cuda, str)
    with pytest.raises(InputError) as err:
        OpenVinoRunner(art, device="cuda")
    assert on_cuda in str(err.value)

    monkeypatch.setattr(openvino_runner, "has_native_bf16", lambda flags=None: False)
    no_bf16 = OpenVinoRunner.recipes(Ask(kind="onnx", precision="bf16", native_bf16=False))
    assert isinstance(no_bf16, str)
    with pytest.raises(BackendUnavailableError) as err2:
        OpenVinoRunner(art, precision="bf16")
    assert no_bf16 in str(err2.value)
