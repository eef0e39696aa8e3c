"""INT8 calibration feeds recorded along real sampling trajectories."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from accelkit.diffusion import SamplerSettings, TrajectoryReader, trajectory_feeds
from accelkit.diffusion.calibration import CALIB_FIRST_SAMPLE
from accelkit.errors import InputError
from tests.fixtures.diffusion import SD_TOKENS

pytestmark = pytest.mark.slow


def test_denoiser_feeds_follow_the_trajectory_with_guidance(dit_model: Any) -> None:
    feeds, rec = trajectory_feeds(
        dit_model, SamplerSettings("ddim", 5, 4.0), samples=3, batch_size=2
    )
    got = list(feeds)
    # batches of 2 and 1 images, 5 steps each; guidance doubles the denoiser batch
    assert len(got) == 10 and rec.feeds_per_batch() == 5
    assert [f["sample"].shape for f in got[:5]] == [(4, 4, 4, 4)] * 5
    assert [f["sample"].shape for f in got[5:]] == [(2, 4, 4, 4)] * 5
    assert set(got[0]) == {"sample", "timestep", "class_labels"}
    assert got[0]["timestep"].dtype == np.float32 and got[0]["class_labels"].dtype == np.int64
    ts = [float(f["timestep"][0]) for f in got[:5]]
    assert ts == sorted(ts, reverse=True) and ts[0] > 500  # from noise towards the image
    # conditional half, then the null class
    assert (got[0]["class_labels"][2:] == dit_model.null_class).all()
    assert (got[0]["class_labels"][:2] < dit_model.null_class).all()
    # the first step's sample is the initial noise; later ones move away from it
    assert not np.allclose(got[0]["sample"], got[4]["sample"])
    assert rec.to_dict()["sampler"]["steps"] == 5 and rec.first_sample == CALIB_FIRST_SAMPLE


def test_every_and_decoder_feeds(sd_model: Any) -> None:
    feeds, rec = trajectory_feeds(
        sd_model, SamplerSettings("euler", 6, 1.0), samples=2, batch_size=2, every=4
    )
    got = list(feeds)
    assert len(got) == rec.feeds_per_batch() == 3  # steps 0 and 4, and the last (5)
    assert got[0]["encoder_hidden_states"].shape == (2, SD_TOKENS, 16)
    dec, drec = trajectory_feeds(
        sd_model, SamplerSettings("euler", 3), component="decoder", samples=2, batch_size=1
    )
    latents = list(dec)
    assert len(latents) == 2 and latents[0]["latent"].shape == (1, 4, 4, 4)
    assert drec.component == "decoder"


def test_calibration_errors(ddpm_model: Any) -> None:
    with pytest.raises(InputError, match="no decoder to calibrate"):
        trajectory_feeds(ddpm_model, component="decoder")
    with pytest.raises(InputError, match="choose one of denoiser, decoder"):
        trajectory_feeds(ddpm_model, component="unet")


def test_reader_feeds_onnx_runtime_static_quantization(
    exported: dict[str, Any], tmp_path: Any
) -> None:
    """The reader is a CalibrationDataReader ONNX Runtime's quantize_static accepts."""
    ort = pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import QuantFormat, quantize_static

    ex = exported["ddpm"]
    feeds, _ = trajectory_feeds(ex.model, SamplerSettings("ddim", 4), samples=2, batch_size=2)
    reader = TrajectoryReader(feeds, input_names=["sample", "timestep"])
    assert len(reader) == 4
    first = reader.get_next()
    reader.rewind()
    assert reader.get_next() is first
    out = tmp_path / "denoiser.int8.onnx"
    quantize_static(
        str(ex.denoiser.path),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],  # accelkit's Int8 default set
    )
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    res = sess.run(None, {"sample": first["sample"], "timestep": first["timestep"]})[0]
    assert res.shape == first["sample"].shape and np.isfinite(res).all()
