"""What one inference request may ask of the server, checked before anything is allocated.

Triton 2.51 (the server PyTriton 0.7 ships) allocates an HTTP JSON input from the shape
the request *declares* before it counts the values it carries: one request declaring
``[100000000, 64]`` with 64 values makes it allocate 25.6 GB. Its gRPC frontend takes
messages of up to 2 GiB, and neither frontend has a size option in that release
(``--http-max-input-size`` arrived in Triton 2.59). So :mod:`accelkit.serving.guard`
checks every request in front of Triton with the rules here, which need only the
request's header (the JSON header of an HTTP request, the fields of a gRPC
``ModelInferRequest``) and arithmetic on its declared shapes:

* the model is the one served; every input is known, present once, of the served datatype;
* the shape is ``[batch, *per-sample dims]``: ``1 <= batch <= max_batch``, the
  per-sample dims equal the model's (``-1``: any positive size, within the generator's
  ``hw_range`` for spatial dims);
* the bytes the shapes declare, and the request itself, fit ``max_bytes``;
* the data carried matches the declared shape exactly (value count, or binary byte size);
* class labels lie in ``[0, classes)`` (an out-of-range label would fail every request
  Triton batched with it);
* no shared-memory inputs (the server's memory is not the client's to name).

A refused request raises :class:`Rejected`, which carries the HTTP status and gRPC code
the guard answers with; the server never sees it. Nothing here needs the serve extra.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: numpy dtype name -> Triton datatype and item size in bytes.
TRITON_DTYPES: dict[str, tuple[str, int]] = {
    "float32": ("FP32", 4),
    "float16": ("FP16", 2),
    "float64": ("FP64", 8),
    "int64": ("INT64", 8),
    "int32": ("INT32", 4),
    "uint8": ("UINT8", 1),
    "bool": ("BOOL", 1),
}

#: gRPC ``InferTensorContents`` field carrying each Triton datatype.
TYPED_CONTENTS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "UINT8": "uint_contents",
    "BOOL": "bool_contents",
}

#: Most inputs / requested outputs one request may list (a guard against huge header lists).
MAX_TENSORS_PER_REQUEST = 64


class Rejected(Exception):
    """A request the guard refuses, with how to answer it.

    Attributes:
        message: One line for the client: what was wrong and what is accepted.
        status: HTTP status (400 malformed, 404 unknown model or route, 411/413/415 body
            problems, 503 busy, 502 upstream failure).
        grpc_code: ``grpc.StatusCode`` member name for the same refusal.
    """

    def __init__(self, message: str, status: int = 400, grpc_code: str = "INVALID_ARGUMENT"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.grpc_code = grpc_code


def too_large(message: str) -> Rejected:
    """413 / RESOURCE_EXHAUSTED."""
    return Rejected(message, 413, "RESOURCE_EXHAUSTED")


def not_found(message: str) -> Rejected:
    """404 / NOT_FOUND."""
    return Rejected(message, 404, "NOT_FOUND")


@dataclass(frozen=True)
class TensorRule:
    """One served input as the guard checks it.

    Attributes:
        name: Tensor name in requests.
        datatype: Triton datatype (``FP32``, ``INT64``).
        itemsize: Bytes per element.
        dims: Per-sample dims (no batch); ``-1`` where any positive size is accepted.
        classes: For a class label, the number of classes (values must lie in ``[0, classes)``).
    """

    name: str
    datatype: str
    itemsize: int
    dims: tuple[int, ...]
    classes: int | None = None

    def show(self) -> str:
        """``z FP32[batch, 64]``."""
        return f"{self.name} {self.datatype}[batch, {', '.join(map(str, self.dims))}]"


@dataclass(frozen=True)
class RequestLimits:
    """Everything a request is checked against.

    Attributes:
        model: The served model's name.
        max_batch: Largest batch one request may carry (the model's ``max_batch_size``).
        max_bytes: Largest request: its body / message and the input bytes its shapes
            declare, bytes.
        inputs: The served inputs.
        outputs: The served output names (requested outputs must be among them).
        hw_range: ``(min, max)`` pixels a dynamic spatial dim may take (None: any size
            the byte limit allows).
    """

    model: str
    max_batch: int
    max_bytes: int
    inputs: tuple[TensorRule, ...]
    outputs: tuple[str, ...]
    hw_range: tuple[int, int] | None = None

    @classmethod
    def for_served(
        cls,
        model: str,
        inputs: Sequence[Any],
        output: Any,
        max_batch: int,
        max_bytes: int,
        hw_range: Sequence[int] | None = None,
        classes: dict[str, int | None] | None = None,
    ) -> RequestLimits:
        """Limits of a served model.

        Args:
            model: Model name.
            inputs: :class:`~accelkit.serving.server.ServedTensor` inputs (name, numpy
                dtype, per-sample shape).
            output: The served output tensor (its ``name``).
            max_batch: ``max_batch_size``.
            max_bytes: Request size limit, bytes.
            hw_range: The generator spec's ``(min, opt, max)`` spatial size, or None.
            classes: Input name -> number of classes of label inputs.
        """
        rules = []
        for t in inputs:
            dtype, size = TRITON_DTYPES.get(str(t.dtype), (str(t.dtype).upper(), 4))
            rules.append(
                TensorRule(
                    t.name, dtype, size, tuple(int(d) for d in t.shape), (classes or {}).get(t.name)
                )
            )
        hw = (int(hw_range[0]), int(hw_range[-1])) if hw_range else None
        return cls(model, int(max_batch), int(max_bytes), tuple(rules), (output.name,), hw)

    def sample_bytes(self) -> int | None:
        """Bytes of one sample's inputs, None when a dim is dynamic."""
        if any(d < 0 for r in self.inputs for d in r.dims):
            return None
        return sum(math.prod(r.dims) * r.itemsize for r in self.inputs)

    def rule(self, name: Any) -> TensorRule:
        """The rule of input ``name``.

        Raises:
            Rejected: Unknown name (400).
        """
        for r in self.inputs:
            if r.name == name:
                return r
        raise Rejected(
            f"unknown input {_short(name)}; model {self.model!r} takes {self.expected()}"
        )

    def expected(self) -> str:
        """The inputs a request must carry, for messages."""
        return ", ".join(r.show() for r in self.inputs) + f" with 1 <= batch <= {self.max_batch}"


@dataclass
class Declared:
    """One input as a request declares it (before any check).

    Attributes:
        name: The ``name`` field (any JSON value for an HTTP request).
        datatype: The ``datatype`` field.
        shape: The ``shape`` field.
        source: Where its data is: ``json`` (HTTP ``data``), ``binary`` (HTTP binary
            extension), ``typed`` (gRPC ``contents``), ``raw`` (gRPC
            ``raw_input_contents``), ``shm`` (shared memory), or None (no data).
        data: For ``json``: the ``data`` value; for ``typed``: the repeated field; for
            ``binary`` / ``raw``: the bytes (None while only their size is known).
        nbytes: For ``binary`` / ``raw``: the byte size the request gives.
    """

    name: Any
    datatype: Any
    shape: Any
    source: str | None
    data: Any = None
    nbytes: Any = None


def _short(value: Any, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


def _mib(n: int) -> str:
    return f"{n / 2**20:.3g} MiB" if n >= 2**20 else f"{n} bytes"


def check_size(nbytes: int, limits: RequestLimits, what: str = "the request body") -> None:
    """Refuse a body / message larger than the limit (413).

    Raises:
        Rejected: ``nbytes`` exceeds ``limits.max_bytes``.
    """
    if nbytes > limits.max_bytes:
        raise too_large(
            f"{what} is {_mib(nbytes)}; this server accepts requests of at most {_mib(limits.max_bytes)} "
            "(accelkit serve --max-request-mb); send fewer images per request"
        )


def _check_shape(d: Declared, rule: TensorRule, limits: RequestLimits) -> tuple[int, int]:
    """Validate a declared shape; returns (batch, element count). Arithmetic only."""
    shape = d.shape
    if not isinstance(shape, (list, tuple)) or any(
        isinstance(x, bool) or not isinstance(x, (int, np.integer)) for x in shape
    ):
        raise Rejected(
            f"input {rule.name!r}: shape must be a list of integers, got {_short(shape)}; expected {rule.show()}"
        )
    dims = [int(x) for x in shape]
    if len(dims) != 1 + len(rule.dims):
        raise Rejected(
            f"input {rule.name!r}: shape {_short(dims)} has {len(dims)} dims; expected {rule.show()}"
        )
    batch = dims[0]
    if not 1 <= batch <= limits.max_batch:
        raise Rejected(
            f"input {rule.name!r}: batch {batch} is outside 1..{limits.max_batch} (the model's max batch); "
            "send at most that many images per request"
        )
    for i, (got, want) in enumerate(zip(dims[1:], rule.dims, strict=True)):
        if want >= 0 and got != want:
            raise Rejected(
                f"input {rule.name!r}: shape {_short(dims)} does not match {rule.show()} (dim {i + 1} is {got}, expected {want})"
            )
        if got < 1:
            raise Rejected(f"input {rule.name!r}: shape {_short(dims)} has a dim below 1")
        spatial = len(rule.dims) == 3 and i >= 1
        if want < 0 and spatial and limits.hw_range is not None:
            lo, hi = limits.hw_range
            if not lo <= got <= hi:
                raise Rejected(
                    f"input {rule.name!r}: spatial size {got} is outside {lo}..{hi}, the sizes this generator was built for"
                )
    count = math.prod(dims)
    if count * rule.itemsize > limits.max_bytes:
        raise too_large(
            f"input {rule.name!r}: shape {_short(dims)} declares {_mib(count * rule.itemsize)}; this server accepts "
            f"requests of at most {_mib(limits.max_bytes)} (accelkit serve --max-request-mb)"
        )
    return batch, count


def _json_values(data: Any, rule: TensorRule, count: int) -> np.ndarray:
    """The values of an HTTP ``data`` field as an array, checked for type and count."""
    if not isinstance(data, list):
        raise Rejected(f"input {rule.name!r}: data must be a JSON array, got {type(data).__name__}")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, RecursionError):
        arr = None
    if arr is None or arr.dtype.kind not in ("iuf" if rule.datatype.startswith("FP") else "iu"):
        kind = "numbers" if rule.datatype.startswith("FP") else "integers"
        raise Rejected(
            f"input {rule.name!r}: data must be a flat or nested array of {kind} for {rule.datatype}"
        )
    if arr.size != count:
        raise Rejected(
            f"input {rule.name!r}: the declared shape holds {count} values but data carries {arr.size}"
        )
    return arr


def check_declared(inputs: Sequence[Declared], limits: RequestLimits) -> int:
    """Check a request's declared inputs against ``limits``; returns the batch size.

    Shapes and byte counts are checked first, by arithmetic on the declared fields;
    data is looked at only once its declared size is known to fit.

    Raises:
        Rejected: With the reason, HTTP status and gRPC code.
    """
    if not inputs:
        raise Rejected(
            f"the request has no inputs; model {limits.model!r} takes {limits.expected()}"
        )
    if len(inputs) > MAX_TENSORS_PER_REQUEST:
        raise Rejected(
            f"the request lists {len(inputs)} inputs; model {limits.model!r} takes {len(limits.inputs)}"
        )
    seen: dict[str, tuple[TensorRule, int]] = {}
    total = 0
    batches = set()
    for d in inputs:
        rule = limits.rule(d.name)
        if rule.name in seen:
            raise Rejected(f"input {rule.name!r} appears twice in the request")
        if d.datatype != rule.datatype:
            raise Rejected(
                f"input {rule.name!r}: datatype {_short(d.datatype)} is not the model's {rule.datatype}"
            )
        batch, count = _check_shape(d, rule, limits)
        batches.add(batch)
        total += count * rule.itemsize
        seen[rule.name] = (rule, count)
    missing = [r.name for r in limits.inputs if r.name not in seen]
    if missing:
        raise Rejected(
            f"the request lacks input(s) {', '.join(map(repr, missing))}; model {limits.model!r} takes {limits.expected()}"
        )
    if len(batches) > 1:
        raise Rejected(
            f"the inputs declare different batch sizes {sorted(batches)}; give every input the same batch"
        )
    check_size(total, limits, "the inputs the request declares")
    for d in inputs:
        rule, count = seen[str(d.name)]
        want = count * rule.itemsize
        values: np.ndarray | None = None
        if d.source == "shm":
            raise Rejected(
                f"input {rule.name!r}: shared-memory inputs are not accepted by accelkit serve; send the data in the request"
            )
        if d.source is None:
            raise Rejected(
                f"input {rule.name!r} carries no data; send 'data' or binary data of {want} bytes"
            )
        if d.source == "json":
            values = _json_values(d.data, rule, count)
        elif d.source == "typed":
            if len(d.data) != count:
                raise Rejected(
                    f"input {rule.name!r}: the declared shape holds {count} values but contents carry {len(d.data)}"
                )
            values = np.asarray(d.data) if rule.classes else None
        else:  # binary / raw: byte sizes
            n = d.nbytes
            if isinstance(n, bool) or not isinstance(n, int) or n != want:
                raise Rejected(
                    f"input {rule.name!r}: the declared shape holds {want} bytes of {rule.datatype} but the request "
                    f"gives {_short(n)} bytes"
                )
            if rule.classes and d.data is not None:
                values = np.frombuffer(d.data, dtype="<i8" if rule.itemsize == 8 else "<i4")
        if rule.classes and values is not None and values.size:
            lo, hi = int(values.min()), int(values.max())
            if lo < 0 or hi >= rule.classes:
                raise Rejected(
                    f"input {rule.name!r}: class labels must lie in 0..{rule.classes - 1}, got {lo}..{hi}"
                )
    return batches.pop()


def _strict_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_http_infer(body: bytes, header_length: int | None, limits: RequestLimits) -> int:
    """Check one HTTP/REST inference request (KServe v2 JSON, with Triton's binary extension).

    Args:
        body: The whole request body (its length already checked against the limit).
        header_length: ``Inference-Header-Content-Length`` (None: the body is all JSON).
        limits: What the model accepts.

    Returns:
        The request's batch size.

    Raises:
        Rejected: With the reason and the HTTP status.
    """
    if header_length is None:
        header_length = len(body)
    if not 0 < header_length <= len(body):
        raise Rejected(
            f"Inference-Header-Content-Length {header_length} does not fit the {len(body)}-byte body"
        )
    try:
        req = json.loads(body[:header_length], parse_constant=_strict_constant)
    except (ValueError, RecursionError):
        raise Rejected(
            "the request header is not valid JSON; send a KServe v2 inference request "
            '({"inputs": [{"name": ..., "shape": [...], "datatype": ..., "data": [...]}]})'
        ) from None
    if not isinstance(req, dict) or not isinstance(req.get("inputs"), list):
        raise Rejected('the request JSON needs an "inputs" array (KServe v2 inference request)')
    declared = []
    for item in req["inputs"]:
        if not isinstance(item, dict):
            raise Rejected(f"each entry of inputs must be a JSON object, got {_short(item)}")
        params = item.get("parameters", {})
        if not isinstance(params, dict):
            raise Rejected(f"input {_short(item.get('name'))}: parameters must be a JSON object")
        if any(str(k).startswith("shared_memory") for k in params):
            source, nbytes, data = "shm", None, None
        elif "binary_data_size" in params:
            source, nbytes, data = "binary", params["binary_data_size"], None
        elif "data" in item:
            source, nbytes, data = "json", None, item["data"]
        else:
            source, nbytes, data = None, None, None
        declared.append(
            Declared(
                item.get("name"), item.get("datatype"), item.get("shape"), source, data, nbytes
            )
        )
    outputs = req.get("outputs", [])
    if not isinstance(outputs, list) or len(outputs) > MAX_TENSORS_PER_REQUEST:
        raise Rejected('"outputs" must be a short JSON array of {"name": ...} objects')
    for o in outputs:
        if not isinstance(o, dict) or o.get("name") not in limits.outputs:
            raise Rejected(
                f"unknown output {_short(o.get('name') if isinstance(o, dict) else o)}; model {limits.model!r} "
                f"returns {', '.join(map(repr, limits.outputs))}"
            )
    # binary chunks follow the JSON header in the order of the inputs that use them
    offset = header_length
    binary_total = 0
    for d in declared:
        if d.source == "binary" and isinstance(d.nbytes, int) and not isinstance(d.nbytes, bool):
            if d.nbytes < 0:
                raise Rejected(f"input {_short(d.name)}: binary_data_size {d.nbytes} is negative")
            binary_total += d.nbytes
            if binary_total <= len(body) - header_length:
                d.data = body[offset : offset + d.nbytes]
            offset += d.nbytes
    batch = check_declared(declared, limits)
    if binary_total != len(body) - header_length:
        raise Rejected(
            f"the inputs declare {binary_total} bytes of binary data but the body carries {len(body) - header_length} "
            "after the JSON header (Inference-Header-Content-Length)"
        )
    return batch


def check_grpc_infer(request: Any, limits: RequestLimits) -> int:
    """Check one gRPC ``ModelInferRequest`` (a parsed ``tritonclient.grpc.service_pb2`` message).

    Returns:
        The request's batch size.

    Raises:
        Rejected: With the reason and the gRPC code.
    """
    if request.model_name != limits.model:
        raise not_found(
            f"unknown model {_short(request.model_name)}; this server serves {limits.model!r}"
        )
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise Rejected(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; give one per input, in order"
        )
    datatypes = {r.name: r.datatype for r in limits.inputs}
    declared = []
    for i, t in enumerate(request.inputs):
        if any(str(k).startswith("shared_memory") for k in t.parameters):
            declared.append(Declared(t.name, t.datatype, list(t.shape), "shm"))
            continue
        field = TYPED_CONTENTS.get(t.datatype)
        has_typed = t.HasField("contents")
        if raw:
            if has_typed:
                raise Rejected(f"input {t.name!r}: give contents or raw_input_contents, not both")
            declared.append(Declared(t.name, t.datatype, list(t.shape), "raw", raw[i], len(raw[i])))
        elif has_typed:
            others = [f.name for f, _ in t.contents.ListFields() if f.name != field]
            if (others or field is None) and datatypes.get(t.name) == t.datatype:
                raise Rejected(
                    f"input {t.name!r}: {t.datatype} data goes in contents.{field or '?'}, got {', '.join(others) or 'none'}"
                )
            values = getattr(t.contents, field) if field else ()
            declared.append(Declared(t.name, t.datatype, list(t.shape), "typed", values))
        else:
            declared.append(Declared(t.name, t.datatype, list(t.shape), None))
    for o in request.outputs:
        if o.name not in limits.outputs:
            raise Rejected(
                f"unknown output {_short(o.name)}; model {limits.model!r} returns {', '.join(map(repr, limits.outputs))}"
            )
    return check_declared(declared, limits)


__all__ = [
    "Declared",
    "RequestLimits",
    "Rejected",
    "TensorRule",
    "check_declared",
    "check_grpc_infer",
    "check_http_infer",
    "check_size",
    "not_found",
    "too_large",
]
