"""``accelkit serve`` of a diffusion pipeline: a request (seed, class label) gets a finished image.

The request path -- Triton's batch of requests -> the instance's infer function -> the
sampling loop -> one image per request -- is tested without starting Triton (CI has no
pytriton): the server object is built as ``serve`` builds it and its infer function is
called with the arrays Triton would pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers", reason="diffusion tests need diffusers (extra [diffusion])")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "ort"])
def test_a_request_gets_the_image_of_its_seed_and_label(
    backend: str, class_ddpm_folder: Path, tmp_path: Path
) -> None:
    from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline
    from accelkit.diffusion.sampler import noise_from_seed
    from accelkit.loading import load_generator
    from accelkit.pipelines.diffusion import request_runner
    from accelkit.serving.options import ServeOptions
    from accelkit.serving.server import GeneratorServer

    pipe = load_generator(class_ddpm_folder)
    art, make = request_runner(pipe, backend, "cpu", tmp_path, knobs=None, progress=None)
    assert [i.name for i in art.spec.inputs] == ["seed", "label"]
    server = GeneratorServer(art, backend, ServeOptions(), make_runner=make)
    assert [t.name for t in server.inputs] == ["seed", "label"]
    runner = make().activate()
    try:
        infer = server._make_infer(runner)
        # two requests Triton batched together: labels arrive as [N, 1]
        reqs = [
            {"seed": np.array([[7]], dtype=np.int64), "label": np.array([[1]], dtype=np.int64)},
            {"seed": np.array([[8]], dtype=np.int64), "label": np.array([[2]], dtype=np.int64)},
        ]
        outs = infer(reqs)
    finally:
        runner.deactivate()
    assert len(outs) == 2 and outs[0][server.output.name].shape == (1, 3, 8, 8)
    model = load_pipeline(class_ddpm_folder)
    shape = model.spec.inputs[0].shape
    feeds = {
        "noise": np.stack([noise_from_seed(7, shape), noise_from_seed(8, shape)]),
        "label": np.array([1, 2], dtype=np.int64),
    }
    with create_diffusion_runner(model, "torch", settings=SamplerSettings()) as ref:
        want = ref.infer(feeds)
    got = np.concatenate([o[server.output.name] for o in outs])
    assert np.abs(got - want).max() <= 1e-2  # fp32 sample tolerance (SAMPLE_TOLERANCE)


def test_a_seed_out_of_range_is_refused(class_ddpm_folder: Path) -> None:
    from accelkit.diffusion import create_diffusion_runner, load_pipeline
    from accelkit.diffusion.sampler import SeededDiffusionRunner
    from accelkit.errors import InputError

    model = load_pipeline(class_ddpm_folder)
    with SeededDiffusionRunner(create_diffusion_runner(model, "torch")) as r:
        with pytest.raises(InputError, match="seeds must be in"):
            r.infer({"seed": np.array([-1]), "label": np.array([0])})
