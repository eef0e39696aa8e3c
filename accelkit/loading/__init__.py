"""Load a trained generator from any of the usual file formats into an :class:`~accelkit.artifact.Artifact`.

Formats: TorchScript archives, ``torch.export`` programs (``.pt2``), ONNX files,
``torch.save`` state_dicts or checkpoint dicts (generator under ``G_ema``, ``netG``,
``generator``, ``state_dict``...) with an architecture, safetensors files, diffusers VAE
folders, super-resolution state_dicts spandrel recognises, and -- only with
``--trust-code`` -- full pickled modules.

The stages, one module each::

    detect.py          resolve_path, detect_format, require_format (bytes and member names only)
    registry.py        FileFormat: name -> (detector, loader); register_format
    safe_read.py       weights-only torch.load, bounded JSON, memory checks, timed probe calls
    torchscript.py     TorchScript: allow-list proof before anything runs, graph check after
    pt2.py             torch.export: configs, JSON, sizes and graph checked before loading
    checkpoint.py      torch.save state_dicts / checkpoint dicts (+ architectures.py)
    safetensors_file.py, onnx_file.py, diffusers_vae.py, spandrel_sr.py   the other formats
    spec_inference.py  inputs, output shape and range by reading and probing the model
    adapters.py        dict / tuple / flat outputs -> the NCHW image batch
    sidecars.py        stored specs, sidecars bound to their file, LoadRecord, reproduce_flags
    api.py             load_generator: resolve -> detect -> load -> infer -> adapt -> Artifact

**Adding a format** (a new family) is one module plus one registration. The module
defines ``detect(path) -> bool`` (cheap: bytes, names, a small JSON; raise
:class:`~accelkit.errors.LoadError` for a broken file of this format) and
``load(request: LoadRequest) -> TorchModel | Artifact``; it is registered either by one
line in :data:`~accelkit.loading.registry.BUILTIN_FORMATS`::

    FileFormat("diffusion_pipeline", "accelkit.diffusion.loading:is_pipeline",
               "accelkit.diffusion.loading:load", folder=True, priority=40,
               description="a diffusers pipeline folder (model_index.json + unet/ or transformer/)"),

(strings are imported on first use, so ``accelkit.loading`` never imports the family's
package, and a lower ``priority`` than the VAE folder's 50 makes a pipeline folder win over
the ``vae/`` inside it), or by calling :func:`register_format` with the same
:class:`FileFormat` from the family's own module. A loader returning a
:class:`TorchModel` gets accelkit's spec inference and output adapters; one returning an
:class:`~accelkit.artifact.Artifact` is used as is. ``kind`` (``torch``/``onnx``/...)
tells commands that need one kind of file to refuse others before loading.

Security: nothing in a file decides what code runs. ``torch.load`` is weights-only
unless the user trusts the file; TorchScript and ``.pt2`` archives load without trust
only after accelkit proved they use nothing outside an allow-list of pure tensor ops
(:mod:`~accelkit.loading.allowlist`); an architecture named in a file or sidecar is
followed only when it is one of accelkit's bundled architectures; a sidecar is used only
when it records its file's own sha256.
"""

from __future__ import annotations

from accelkit.loading.api import load_generator
from accelkit.loading.architectures import (
    build_module,
    fit_state_dict,
    is_bundled_architecture,
    resolve_architecture,
    stored_architecture,
)
from accelkit.loading.checkpoint import GENERATOR_KEYS, find_state_dict
from accelkit.loading.detect import detect_format, require_format, resolve_path
from accelkit.loading.registry import (
    FileFormat,
    LoadRequest,
    TorchModel,
    formats,
    register_format,
    unregister_format,
)
from accelkit.loading.safe_read import (
    SAFE_CHECKPOINT_GLOBALS,
    TRUST_HINT,
    call_with_timeout,
    parse_arch_kwargs,
    parse_json,
    weights_only_torch_load,
)
from accelkit.loading.sidecars import (
    SPEC_EXTRA_FILE,
    LoadRecord,
    SourceRecord,
    bound_sidecar,
    load_record,
    reference_flags,
    reproduce_flags,
    shell_join,
    source_record,
    spec_extra_files,
)
from accelkit.loading.spec_inference import (
    RANGE_PROBE_SAMPLES,
    RANGE_TOLERANCE,
    SIGNED_RANGE_TOLERANCE,
    classify_range,
    forward_arg_names,
    infer_spec_and_rule,
    infer_torch_spec,
    merge_inputs,
    probe_output,
    probe_output_range,
    torch_runner_fn,
)


def spec_from_onnx(*args: object, **kwargs: object) -> object:
    """See :func:`accelkit.loading.onnx_file.spec_from_onnx` (imported lazily: it needs onnx)."""
    from accelkit.loading.onnx_file import spec_from_onnx as impl

    return impl(*args, **kwargs)  # type: ignore[arg-type]


def onnx_precision(model: object) -> str:
    """See :func:`accelkit.loading.onnx_file.onnx_precision`."""
    from accelkit.loading.onnx_file import onnx_precision as impl

    return impl(model)


__all__ = [
    "GENERATOR_KEYS",
    "RANGE_PROBE_SAMPLES",
    "RANGE_TOLERANCE",
    "SAFE_CHECKPOINT_GLOBALS",
    "SIGNED_RANGE_TOLERANCE",
    "SPEC_EXTRA_FILE",
    "TRUST_HINT",
    "FileFormat",
    "LoadRecord",
    "LoadRequest",
    "SourceRecord",
    "TorchModel",
    "bound_sidecar",
    "build_module",
    "call_with_timeout",
    "classify_range",
    "detect_format",
    "find_state_dict",
    "fit_state_dict",
    "formats",
    "forward_arg_names",
    "infer_spec_and_rule",
    "infer_torch_spec",
    "is_bundled_architecture",
    "load_generator",
    "load_record",
    "merge_inputs",
    "onnx_precision",
    "parse_arch_kwargs",
    "parse_json",
    "probe_output",
    "probe_output_range",
    "reference_flags",
    "register_format",
    "reproduce_flags",
    "require_format",
    "resolve_architecture",
    "resolve_path",
    "shell_join",
    "source_record",
    "spec_extra_files",
    "spec_from_onnx",
    "stored_architecture",
    "torch_runner_fn",
    "unregister_format",
    "weights_only_torch_load",
]
