"""TorchRunner specifics beyond the shared conformance test: options, threads, isolation."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from accelkit.errors import AccelkitError, BackendUnavailableError, InputError
from accelkit.runners import create_runner
from accelkit.runners.torch_runner import TorchRunner
from accelkit.sampler import LatentSampler
from tests.fixtures import generators as tg

CUDA = torch.cuda.is_available()


def test_fp16_on_cpu_is_refused_with_reason() -> None:
    art = tg.torch_artifact("uncond")
    with pytest.raises(BackendUnavailableError, match="CUDA only") as exc:
        TorchRunner(art, device="cpu", precision="fp16")
    assert "\n" not in str(exc.value)
    assert "bf16" in str(exc.value)  # says what to do instead


def test_cuda_graphs_on_cpu_is_refused() -> None:
    with pytest.raises(BackendUnavailableError, match="CUDA device"):
        TorchRunner(tg.torch_artifact("uncond"), device="cpu", cuda_graphs=True)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"precision": "int8"}, "precision 'int8'"),
        ({"bogus": 1}, "unknown torch runner option"),
        ({"threads": 0}, "positive integer"),
    ],
)
def test_bad_options_are_input_errors(options: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        TorchRunner(tg.torch_artifact("uncond"), **options)


def test_onnx_artifact_is_refused(tmp_path: object) -> None:
    art, _ = tg.onnx_artifact("uncond", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="torch artifacts"):
        TorchRunner(art)


def test_constructor_is_cheap_and_does_not_touch_the_module() -> None:
    art = tg.torch_artifact("uncond")
    before = {k: v.clone() for k, v in art.module.state_dict().items()}
    runner = TorchRunner(art, precision="bf16", channels_last=True)
    assert runner._model is None  # nothing built before activate
    feeds = LatentSampler(art.spec, seed=1, batch_size=2).inputs(0, 2)
    with runner:
        runner.infer(feeds)
    # the artifact's module is still fp32, same values: the runner worked on a copy
    for k, v in art.module.state_dict().items():
        assert v.dtype == before[k].dtype
        assert torch.equal(v, before[k])
    assert next(art.module.parameters()).dtype == torch.float32


def test_threads_option_sets_and_restores_torch_threads() -> None:
    start = torch.get_num_threads()
    want = 1 if start != 1 else 2
    runner = create_runner("torch", tg.torch_artifact("uncond"), threads=want)
    with runner:
        assert torch.get_num_threads() == want
        assert runner.describe()["threads"] == want
    assert torch.get_num_threads() == start


def test_describe_records_options_and_is_json() -> None:
    runner = TorchRunner(tg.torch_artifact("cond"), precision="bf16", channels_last=True)
    with runner:
        info = runner.describe()
    assert info["backend"] == "torch" and info["precision"] == "bf16"
    assert (
        info["channels_last"] is True and info["compile"] is False and info["cuda_graphs"] is False
    )
    assert info["threads"] >= 1
    json.dumps(info)


def test_output_stays_a_tensor_until_to_numpy() -> None:
    art = tg.torch_artifact("img2img")
    feeds = LatentSampler(art.spec, seed=0, batch_size=2).inputs(0, 2)
    with TorchRunner(art, precision="bf16") as runner:
        prepared = runner.prepare(feeds)
        out = runner.run(prepared)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.bfloat16
        runner.synchronize()
        arr = runner.to_numpy(out)
    assert arr.dtype == np.float32 and arr.shape == (2, 3, 32, 32)


def test_wrong_inputs_are_input_errors() -> None:
    art = tg.torch_artifact("cond")
    with TorchRunner(art) as runner:
        with pytest.raises(InputError, match="do not match"):
            runner.infer({"z": np.zeros((1, 8), np.float32)})
        with pytest.raises(InputError, match="per-sample shape"):
            runner.infer({"z": np.zeros((1, 9), np.float32), "label": np.zeros(1, np.int64)})


def test_availability_on_cuda_names_the_reason() -> None:
    reason = TorchRunner.availability("cuda")
    if CUDA:
        assert reason is None
    else:
        assert reason is not None and "CUDA" in reason
        with pytest.raises(BackendUnavailableError, match="available here: torch"):
            create_runner("torch", tg.torch_artifact("uncond"), device="cuda")
    assert TorchRunner.availability("cpu") is None


@pytest.mark.slow
def test_compile_records_seconds_and_matches_eager() -> None:
    art = tg.torch_artifact("uncond")
    feeds = LatentSampler(art.spec, seed=3, batch_size=2).inputs(0, 2)
    with TorchRunner(art) as eager:
        ref = eager.infer(feeds)
    with TorchRunner(art, compile=True) as runner:
        out = runner.infer(feeds)
        info = runner.describe()
    assert info["compile"] is True
    assert info["compile_seconds"]["2"] > 0
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_cuda_graphs_replay_matches_eager_and_output_stays_on_device() -> None:
    art = tg.torch_artifact("cond")
    feeds = LatentSampler(art.spec, seed=3, batch_size=4).inputs(0, 4)
    with TorchRunner(art, device="cuda") as eager:
        ref = eager.infer(feeds)
    with TorchRunner(art, device="cuda", cuda_graphs=True) as runner:
        prepared = runner.prepare(feeds)
        assert prepared.graph is not None
        out = runner.run(prepared)
        assert out.is_cuda
        runner.synchronize()
        got = runner.to_numpy(out)
        assert runner.describe()["graphed_batches"] == [4]
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_infer_after_deactivate_raises() -> None:
    runner = TorchRunner(tg.torch_artifact("uncond"))
    feeds = LatentSampler(runner.spec, seed=0).inputs(0, 1)
    with runner:
        runner.infer(feeds)
    with pytest.raises(AccelkitError, match="not active"):
        runner.prepare(feeds)


@pytest.mark.slow
def test_compile_is_checked_against_eager() -> None:
    """A compiled module's first output is compared with eager; compile_config goes to this compile only."""
    art = tg.torch_artifact("uncond")
    feeds = LatentSampler(art.spec, seed=3, batch_size=2).inputs(0, 2)
    with TorchRunner(art) as eager:
        ref = eager.infer(feeds)
    with TorchRunner(art, compile=True, compile_config={"freezing": True}) as runner:
        out = runner.infer(feeds)  # checked against eager inside prepare()
        # compile_seconds is 0.0 when dynamo reuses an earlier compile in this process
        assert runner.describe()["compile_config"] == {"freezing": True}
        assert runner.describe()["compile_seconds"]["2"] >= 0
    np.testing.assert_allclose(out, ref, atol=1e-5, rtol=0)
    assert TorchRunner(art, compile=True).compile_config() == {
        "freezing": True
    }  # the measured CPU default
    assert (
        TorchRunner(art, compile=True, compile_config={}).compile_config() == {}
    )  # torch's own settings
    with pytest.raises(InputError, match="exclude each other"):
        TorchRunner(
            art, compile=True, compile_mode="max-autotune", compile_config={"freezing": True}
        ).activate()


def test_a_compiled_output_that_differs_from_eager_is_refused() -> None:
    from accelkit.errors import VerificationError

    art = tg.torch_artifact("uncond")
    feeds = LatentSampler(art.spec, seed=3, batch_size=2).inputs(0, 2)
    with TorchRunner(art) as runner:
        prepared = runner.prepare(feeds)
        good = runner.run(prepared)
        runner._check_compiled(good, prepared.args)  # identical: accepted
        with pytest.raises(VerificationError, match="differs from eager"):
            runner._check_compiled(
                good + 0.5, prepared.args
            )  # what a miscompiled graph would return
