"""diffusers VAE folders load as their decoder; the fp16 fallback catches an overflowing decoder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from accelkit.errors import InputError, NonFiniteOutputError, VerificationError
from accelkit.loading import load_generator
from accelkit.passes.export import OnnxFromTorch
from accelkit.passes.fp16 import FP16_MAX, Fp16

pytest.importorskip("diffusers", reason="diffusers is not installed (extra [vae])")

from tests.fixtures.families import TINY_VAE_CONFIG, write_vae_folder


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vae_folder(tmp_path_factory.mktemp("vae") / "tiny-vae")


def test_vae_folder_loads_its_decoder_with_the_pipelines_scaling(vae_dir) -> None:
    from diffusers import AutoencoderKL

    art = load_generator(vae_dir)
    spec = art.spec
    assert [(i.name, i.kind, i.shape) for i in spec.inputs] == [("latent", "latent", (4, 16, 16))]
    assert spec.output_shape == (3, 32, 32) and spec.output_range == (-1.0, 1.0)
    assert "diffusers VAE convention" in dict(spec.inferred)["output_range"]
    assert (
        art.meta["loader"] == "diffusers" and art.meta["arch"] == "diffusers:AutoencoderKL.decoder"
    )
    ref = AutoencoderKL.from_pretrained(str(vae_dir)).eval()
    z = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        want = ref.decode(z / TINY_VAE_CONFIG["scaling_factor"]).sample
        got = art.module(z)
    torch.testing.assert_close(got, want)


def test_pipeline_folder_takes_its_vae(vae_dir, tmp_path) -> None:
    pipe = tmp_path / "pipe"
    (pipe / "vae").mkdir(parents=True)
    for f in vae_dir.iterdir():
        (pipe / "vae" / f.name).write_bytes(f.read_bytes())
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    assert load_generator(pipe).spec.output_shape == (3, 32, 32)


def test_other_diffusers_folders_are_refused(tmp_path) -> None:
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(
        json.dumps({"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.30.0"})
    )
    with pytest.raises(InputError, match="decoder of a VAE"):
        load_generator(tmp_path / "unet")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        load_generator(tmp_path / "plain")


@pytest.mark.slow
def test_fp16_fallback_keeps_an_overflowing_decoder_finite(tmp_path) -> None:
    """SD-family VAE decoders overflow fp16; the calibrated fallback keeps those nodes in fp32."""
    art = load_generator(write_vae_folder(tmp_path / "hot", overflow=True))
    fp32 = OnnxFromTorch(tmp_path / "hot.onnx", batch_range=(1, 2, 4))(art)
    with pytest.raises((NonFiniteOutputError, VerificationError)):
        Fp16(tmp_path / "naive.fp16.onnx", calibrate=False)(fp32)  # what a plain fp16 cast does
    assert not (tmp_path / "naive.fp16.onnx").exists()
    out = Fp16(tmp_path / "hot.fp16.onnx")(fp32)
    fp16 = out.meta["fp16"]
    assert fp16["peak_activation"] > FP16_MAX
    assert any(k["reason"].startswith("activation peak") for k in fp16["kept_fp32"])
    v = out.meta["verification"]
    assert np.isfinite(v["max_abs_err"]) and v["max_abs_err"] <= v["tolerance"]


@pytest.mark.slow
def test_without_diffusers_the_error_names_the_extra(vae_dir) -> None:
    script = f"import sys; sys.modules['diffusers'] = None\nfrom accelkit.loading import load_generator\nload_generator({str(vae_dir)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0 and "accelkit[vae]" in proc.stderr


def test_parameters_count_only_what_decoding_uses(vae_dir) -> None:
    """Issue 23 item 8: the encoder (and quant_conv) never run in decode(); they are not counted."""
    from diffusers import AutoencoderKL

    full = AutoencoderKL.from_pretrained(str(vae_dir))
    used = sum(
        p.numel() for part in (full.decoder, full.post_quant_conv) for p in part.parameters()
    )
    art = load_generator(vae_dir)
    assert art.meta["parameters"] == used < sum(p.numel() for p in full.parameters())
