"""``--fid-weights`` is a TorchScript file, so it is code: it loads only through the loading
package's allow-list unless the user passes ``--trust-code`` (issue 21's security fix).

Payloads from ``tests/fixtures/code_payloads.py``: a ``__setstate__`` that runs inside
``torch.jit.load`` and a ``forward`` calling ``torch.from_file``; each creates a marker file
if it runs. Each refusal row checks the marker is absent; the trusted rows prove the
payloads are real (the marker appears). The shipped FID Inception and the tests' tiny
extractor pass the allow-list.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from accelkit.errors import UntrustedCodeError
from accelkit.quality.features import FeatureExtractor, check_weights_code
from tests.fixtures.code_payloads import torchscript_from_file, torchscript_setstate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.mark.parametrize(
    ("make", "why"),
    [(torchscript_setstate, "defines __setstate__"), (torchscript_from_file, "from_file")],
)
def test_a_payload_extractor_is_refused_before_it_runs(make, why, marker, tmp_path) -> None:
    weights = make(tmp_path / "evil.pt", marker)
    with pytest.raises(UntrustedCodeError, match=why) as err:
        check_weights_code(weights)
    assert "--trust-code" in str(err.value)
    with pytest.raises(UntrustedCodeError, match=why):
        FeatureExtractor(weights, backend="torch").load()
    with pytest.raises(UntrustedCodeError, match=why):
        FeatureExtractor(weights, backend="ort").load()  # the ONNX export path loads it too
    assert not marker.exists()


def test_the_setstate_payload_is_real_when_trusted(marker, tmp_path) -> None:
    """The refusals above cannot pass by accident: trusted, loading runs the payload."""
    weights = torchscript_setstate(tmp_path / "evil.pt", marker)
    assert check_weights_code(weights, trust_code=True) == weights
    FeatureExtractor(weights, backend="torch", trust_code=True).load()
    assert marker.exists()


def test_the_shipped_fid_weights_and_the_tiny_extractor_pass(tiny_weights) -> None:
    check_weights_code(None)  # the packaged FID Inception: bytes-only check, nothing runs
    assert check_weights_code(tiny_weights) == Path(tiny_weights)
    assert FeatureExtractor(tiny_weights, backend="torch").load().dims > 0


@pytest.mark.slow
def test_bench_refuses_a_payload_extractor_before_any_work(marker, tmp_path) -> None:
    """Through the real CLI in a subprocess: one error line, exit 2, no report, no marker."""
    weights = torchscript_setstate(tmp_path / "evil.pt", marker)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    base = [sys.executable, "-m", "accelkit", "bench", "dcgan", "--fid", "8", "--fid-weights"]
    quick = ["--backend", "torch", "--precision", "fp32", "--batch", "1", "--repeats", "3"]
    proc = subprocess.run(
        [*base, str(weights), *quick, "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "defines __setstate__" in errors[0] and "--trust-code" in errors[0]
    assert "Traceback" not in proc.stderr and not marker.exists()
    assert not (tmp_path / "b" / "results.json").exists()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelkit",
            "fid",
            str(tmp_path),
            str(tmp_path),
            "--fid-weights",
            str(weights),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 2 and "defines __setstate__" in proc.stderr, proc.stderr
    assert not marker.exists()
