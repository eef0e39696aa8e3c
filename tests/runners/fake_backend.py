"""A backend accelkit does not ship: ONNX's own reference evaluator (``onnx.reference``).

It exists to show that adding a backend is one runner module plus its registration: it
declares what it runs (:meth:`FakeRunner.recipes`: fp32 and fp16 ONNX files on the CPU;
int8 and bf16 refused with a reason) and every planner -- ``bench``, ``optimize``, the
conformance test -- picks it up from the registry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from accelkit.runners.base import Ask, Recipe, Runner
from accelkit.vocab import onnx_source


class FakeRunner(Runner):
    """Runs an ONNX file with ``onnx.reference.ReferenceEvaluator`` (pure Python, slow, exact)."""

    name = "fake"
    OPTIONS = ("threads", "precision")

    @classmethod
    def recipes(cls, ask: Ask) -> list[Recipe] | str:
        if ask.cuda:
            return "the fake backend runs on the CPU only"
        if ask.precision in ("int8", "bf16"):
            return f"the fake backend does not run {ask.precision}"
        return [Recipe(cls.name, ask.precision, onnx_source(ask.precision), {})]

    def _activate_impl(self) -> None:
        from onnx.reference import ReferenceEvaluator

        self._sess: Any = ReferenceEvaluator(str(self.artifact.path))

    def _prepare_impl(self, inputs: dict[str, np.ndarray]) -> Any:
        return {k: np.ascontiguousarray(v) for k, v in inputs.items()}

    def _run_impl(self, prepared: Any) -> Any:
        return self._sess.run(None, prepared)[0]

    def _to_numpy_impl(self, output: Any) -> np.ndarray:
        return np.asarray(output, dtype=np.float32)
