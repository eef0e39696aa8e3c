"""Loader of ``torch.export`` archives (``.pt2``), which carry code: checked member by member before loading.

``torch.export.load`` unpickles constants marked ``use_pickle`` and custom objects
(``custom_obj_*`` with the TorchScript unpickler, ``opaque_obj_*`` with plain ``pickle``),
loads compiled AOTInductor libraries, evaluates the program's symbolic shape expressions
with ``sympy.sympify`` (``eval``), ``exec``s its guard expressions when ``.module()`` is
called, and zero-fills any weight whose record is empty at the size it declares (a 2 KB
file asking for 14.4 GB). Without ``--trust-code``, :func:`check_archive` reads the
archive's own configs and JSON first and refuses, before anything is allocated or run:

* any member outside the layout ``torch.export.save`` writes for plain tensors
  (AOTInductor, ExecuTorch, custom and opaque objects, legacy pickled weight files);
* weights and constants marked ``use_pickle``, of a non-strided layout or unknown dtype,
  or whose declared size and strides reach beyond their record (or whose total does not
  fit in the memory available);
* graph nodes calling anything but allowed ATen ops (:mod:`~accelkit.loading.allowlist`)
  and a few ``operator``/``math``/``torch.sym_*`` helpers; higher-order ops, custom
  objects and named tuples;
* symbolic expressions and guards outside a small arithmetic grammar (names of shape
  symbols, numbers, arithmetic, comparisons, ``L['x'].size()[i]``), and names that are
  not plain identifiers (they become generated Python code).

The program is then loaded from an in-memory copy holding only the checked members, with
its sample inputs left out (accelkit never uses them; they would be unpickled), every
nested ``torch.load`` forced weights-only, and its graph checked again after loading.
"""

from __future__ import annotations

import ast
import io
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelkit.errors import AccelkitError, LoadError, UntrustedCodeError
from accelkit.loading.allowlist import PROGRAM_PYTHON_OPS, op_allowed
from accelkit.loading.registry import LoadRequest, TorchModel
from accelkit.loading.safe_read import TRUST_HINT, check_memory, parse_json
from accelkit.loading.spec_inference import CLASS_ATTRS, attr_of, forward_arg_names
from accelkit.spec import InputSpec

#: Bytes per element of the dtypes a plain tensor payload may have (torch.export's ScalarType ids).
DTYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 12: 1, 13: 2, 28: 2, 34: 4, 35: 8}
STRIDED = 7
_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYMBOL = re.compile(r"^[a-z]+[0-9]+$")
#: Functions a symbolic shape expression or guard may call (torch.utils._sympy's own).
SYMPY_FUNCTIONS = frozenset(
    """FloorDiv ModularIndexing Where PythonMod Mod CleanDiv CeilToInt FloorToInt
    CeilDiv IntTrueDiv FloatTrueDiv LShift RShift IsNonOverlappingAndDenseIndicator
    TruncToFloat TruncToInt RoundToInt RoundDecimal ToFloat FloatPow PowByNatural
    Identity Max Min Abs Eq Ne Lt Le Gt Ge And Or Not sqrt OpaqueUnaryFn_sqrt""".split()
)
_SYMPY_CONSTANTS = frozenset("oo int_oo zoo nan True False pi E".split())
_NAME_KEYS = frozenset(
    """name as_name parameter_name buffer_name tensor_constant_name custom_obj_name fqn
    parent_fqn""".split()
)
_FORBIDDEN_KEYS = {
    "as_graph": "a higher-order op with a subgraph",
    "as_custom_obj": "a custom object",
    "as_custom_objs": "custom objects",
    "as_operator": "an operator passed as a value",
}


def _refuse(path: Path, what: str) -> UntrustedCodeError:
    return UntrustedCodeError(
        f"{path} is a torch.export archive that {what}, outside accelkit's allow-list; "
        f"a .pt2 archive is code: {TRUST_HINT}"
    )


def _corrupt(path: Path, what: str) -> LoadError:
    return LoadError(
        f"{path} is a torch.export archive whose {what}; the file is corrupt or hostile: re-save it with torch.export.save"
    )


# --------------------------------------------------------------------- expressions
_ARITH = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
    ast.Load,
)


def _expression(text: Any) -> ast.Expression | None:
    """``text`` parsed as one Python expression (None when it is not one, or too long)."""
    if not isinstance(text, str) or len(text) > 4096:
        return None
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def sym_expr_ok(text: str) -> bool:
    """Whether a symbolic shape expression (``2*s0 + 1``, ``Mod(s0, 8)``) is plain arithmetic.

    ``torch.export.load`` passes it to ``sympy.sympify``, which ``eval``s it: only shape
    symbols (also as ``Symbol('s0', positive=True, integer=True)``), numbers, arithmetic
    and the sympy functions torch itself writes are accepted.
    """
    tree = _expression(text)
    if tree is None:
        return False
    symbol_calls = [n for n in ast.walk(tree) if _symbol_call(n)]
    allowed = {id(n) for c in symbol_calls for n in ast.walk(c)}
    for node in ast.walk(tree):
        if id(node) in allowed or isinstance(node, _ARITH):
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
            continue
        if isinstance(node, ast.Name) and (
            _SYMBOL.match(node.id) or node.id in SYMPY_FUNCTIONS or node.id in _SYMPY_CONSTANTS
        ):
            continue
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in SYMPY_FUNCTIONS
            and not node.keywords
        ):
            continue
        return False
    return True


#: Assumptions torch writes into ``Symbol('s0', positive=True, integer=True)``.
_SYMBOL_ASSUMPTIONS = frozenset(
    "positive negative nonnegative nonpositive integer real finite zero nonzero".split()
)


def _symbol_call(node: ast.AST) -> bool:
    """``Symbol('s6', positive=True, integer=True)``: a shape symbol with boolean assumptions."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "Symbol"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
        and _SYMBOL.match(node.args[0].value) is not None
        and all(
            k.arg in _SYMBOL_ASSUMPTIONS
            and isinstance(k.value, ast.Constant)
            and isinstance(k.value.value, bool)
            for k in node.keywords
        )
    )


_GUARD_METHODS = frozenset(("size", "stride", "storage_offset", "dim", "numel"))


def guard_ok(text: str) -> bool:
    """Whether a guard (``L['z'].size()[0] == L['label'].size()[0]``) is plain shape arithmetic.

    ``ExportedProgram.module()`` builds a function from these strings with ``exec``: only
    comparisons and arithmetic over ``L['input']...size()[i]``, numbers and the sympy
    functions above are accepted.
    """
    tree = _expression(text)
    if tree is None:
        return False
    for node in ast.walk(tree):
        if isinstance(node, _ARITH):
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool, str)):
            if isinstance(node.value, str) and not _IDENT.match(node.value):
                return False
            continue
        if isinstance(node, ast.Name) and (node.id == "L" or node.id in SYMPY_FUNCTIONS):
            continue
        if isinstance(node, ast.Subscript):
            continue
        if isinstance(node, ast.Attribute) and node.attr in _GUARD_METHODS:
            continue
        if isinstance(node, ast.Call) and not node.keywords:
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _GUARD_METHODS:
                continue
            if isinstance(func, ast.Name) and func.id in SYMPY_FUNCTIONS:
                continue
        return False
    return True


def target_ok(target: str) -> bool:
    """Whether a graph node's target (``torch.ops.aten.conv2d.default``) is allowed."""
    parts = target.split(".")
    if len(parts) == 5 and parts[:3] == ["torch", "ops", "aten"]:
        return op_allowed(parts[3]) and _IDENT.match(parts[4]) is not None
    return target in PROGRAM_PYTHON_OPS


# ------------------------------------------------------------------------- walking
def _items(obj: Any) -> Iterator[tuple[str, Any, tuple[str, ...]]]:
    """(key, value, path of keys) of every dict entry in a JSON tree, iteratively."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(obj, ())]
    while stack:
        cur, path = stack.pop()
        if isinstance(cur, dict):
            for k, v in cur.items():
                yield str(k), v, path
                stack.append((v, (*path, str(k))))
        elif isinstance(cur, list):
            stack.extend((v, path) for v in cur)


def program_problem(program: Any) -> str | None:
    """Why a serialized exported program (``models/<name>.json``) is outside the allow-list."""
    if not isinstance(program, dict):
        return "holds a program that is not a JSON object"
    for key, value, path in _items(program):
        if "metadata" in path:
            continue  # stack traces and module paths: stored as text, never run
        if key in _FORBIDDEN_KEYS and value not in (None, [], {}):
            return f"uses {_FORBIDDEN_KEYS[key]}"
        if key == "custom_obj_values" and value:
            return "holds custom objects"
        if key == "treespec_namedtuple_fields" and value:
            return "builds named tuples from its own field lists"
        if key == "target" and "nodes" in path:
            if not isinstance(value, str) or not target_ok(value):
                return f"calls {str(value)[:80]}"
        elif key == "target" and isinstance(value, str) and value and not _NAME.match(value):
            return f"names something {value[:60]!r} that is not a plain identifier"
        elif key == "expr_str":
            if not sym_expr_ok(value):
                return f"has a symbolic expression {str(value)[:60]!r} that is not plain arithmetic"
        elif key == "guards_code":
            bad = (
                next((g for g in value or () if not guard_ok(g)), None)
                if isinstance(value, list)
                else value
            )
            if bad is not None:
                return f"has a guard {str(bad)[:60]!r} that is not plain shape arithmetic"
        elif key == "range_constraints":
            if not isinstance(value, dict) or not all(_SYMBOL.match(str(k)) for k in value):
                return "names shape symbols that are not plain identifiers"
        elif key in _NAME_KEYS and isinstance(value, str):
            if value and not _NAME.match(value):
                return f"names something {value[:60]!r} that is not a plain identifier"
        elif key == "forward_arg_names" and isinstance(value, list):
            if not all(isinstance(v, str) and _IDENT.match(v) for v in value):
                return "has input names that are not plain identifiers"
    return None


def _payload_bytes(
    path: Path, config: Any, where: str, sizes: dict[str, int], kind: str, trust: bool
) -> int:
    """Check one weights/constants config; return the bytes its tensors declare.

    With ``trust``, pickled and custom payloads are let through (they are the user's to
    trust); plain tensors are size-checked either way.

    Raises:
        UntrustedCodeError: A pickled or custom payload (without ``trust``).
        LoadError: A malformed entry, or a size beyond its record.
    """
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise _corrupt(path, f"{where} is not a payload config")
    total = 0
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or not _NAME.match(str(fqn)):
            raise _refuse(path, f"names a {kind} {str(fqn)[:60]!r} that is not a plain identifier")
        member = meta.get("path_name")
        prefix = "weight_" if kind == "weight" else "tensor_"
        plain = isinstance(member, str) and re.fullmatch(prefix + r"\d+", member) is not None
        if trust and (meta.get("use_pickle") or not plain):
            continue
        if meta.get("use_pickle"):
            raise _refuse(path, f"stores the {kind} {fqn!r} as a pickle (use_pickle, {member})")
        if not plain:
            raise _refuse(
                path, f"stores the {kind} {fqn!r} as {str(member)[:40]!r} (not a plain tensor)"
            )
        member = str(member)
        if member not in sizes:
            raise _corrupt(path, f"{kind} {fqn!r} points to a missing record {member}")
        tm = meta.get("tensor_meta")
        if not isinstance(tm, dict):
            raise _corrupt(path, f"{kind} {fqn!r} has no tensor metadata")
        elem = DTYPE_BYTES.get(tm.get("dtype"))  # type: ignore[arg-type]
        if elem is None or tm.get("layout", STRIDED) != STRIDED:
            raise _refuse(
                path,
                f"stores the {kind} {fqn!r} with dtype {tm.get('dtype')} / layout {tm.get('layout')}",
            )
        try:
            dims = [int(d["as_int"]) for d in tm["sizes"]]
            strides = [int(d["as_int"]) for d in tm["strides"]]
            offset = int(tm.get("storage_offset", {"as_int": 0})["as_int"])
        except (KeyError, TypeError, ValueError):
            raise _corrupt(
                path, f"{kind} {fqn!r} has a size that is not a list of integers"
            ) from None
        if len(dims) != len(strides) or any(d < 0 for d in dims + strides) or offset < 0:
            raise _corrupt(
                path, f"{kind} {fqn!r} has negative or mismatched sizes {dims} / strides {strides}"
            )
        numel = math.prod(dims)
        extent = (
            0
            if numel == 0
            else offset + sum((d - 1) * s for d, s in zip(dims, strides, strict=True)) + 1
        )
        record = sizes[member]
        if extent * elem > record:
            raise _corrupt(
                path,
                f"{kind} {fqn!r} declares {numel:,} values ({extent * elem / 1e9:,.3g} GB) but its record {member} "
                f"holds {record:,} bytes",
            )
        total += extent * elem
    return total


def check_archive(data: bytes, path: Path, trust: bool = False) -> bytes:
    """Check a ``.pt2`` archive against the allow-list; return the bytes to load (checked members only).

    With ``trust`` (``--trust-code``) only the checks that are not about code still run
    (declared sizes against their records, memory) and the archive is returned whole.

    Raises:
        UntrustedCodeError: Anything that would run code (the message names it).
        LoadError / InputError: A malformed archive, declared sizes beyond their records,
            or more memory than is available.
    """
    from torch.export.pt2_archive import constants as c

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise LoadError(f"{path} is a corrupt torch.export archive ({exc}); re-save it") from None
    check_memory(
        sum(i.file_size for i in infos),
        f"{path} (unpacked)",
        "the archive is corrupt or hostile: re-save it",
    )
    roots = {i.filename.split("/", 1)[0] for i in infos}
    if trust and (len(roots) != 1 or any("/" not in i.filename for i in infos)):
        return data  # a layout this check does not know: the user trusts the file
    if len(roots) != 1 or any("/" not in i.filename for i in infos):
        if any(i.filename in ("version", "serialized_exported_program.json") for i in infos):
            raise _refuse(path, "is in the pre-2.7 layout (its weights are pickles)")
        raise _corrupt(path, "members are not under one archive folder")
    root = next(iter(roots)) + "/"
    rel = {i.filename[len(root) :]: i for i in infos}
    fixed = {
        c.ARCHIVE_FORMAT_PATH,
        c.ARCHIVE_VERSION_PATH,
        "byteorder",
        ".data/version",
        ".data/serialization_id",
    }
    models: list[str] = []
    for name in rel:
        if name in fixed or name.endswith("/") or name.startswith(c.EXTRA_DIR):
            continue
        m = re.fullmatch(re.escape(c.MODELS_DIR) + r"([A-Za-z0-9_]+)\.json", name)
        if m:
            models.append(m.group(1))
            continue
        if re.fullmatch(re.escape(c.SAMPLE_INPUTS_DIR) + r"[A-Za-z0-9_]+\.pt", name):
            continue
        if re.fullmatch(
            re.escape(c.WEIGHTS_DIR) + r"(weight_\d+|[A-Za-z0-9_]+_weights_config\.json)", name
        ):
            continue
        if re.fullmatch(
            re.escape(c.CONSTANTS_DIR) + r"(tensor_\d+|[A-Za-z0-9_]+_constants_config\.json)", name
        ):
            continue
        if trust:
            continue
        what = (
            "holds compiled native code (AOTInductor)"
            if name.startswith(c.AOTINDUCTOR_DIR)
            else f"holds a custom object ({name})"
            if c.CUSTOM_OBJ_FILENAME_PREFIX in name or c.OPAQUE_OBJ_FILENAME_PREFIX in name
            else f"holds {name}, a member torch.export.save writes only for pickled or compiled payloads"
        )
        raise _refuse(path, what)
    if (
        rel.get(c.ARCHIVE_FORMAT_PATH) is None
        or zf.read(root + c.ARCHIVE_FORMAT_PATH) != c.ARCHIVE_FORMAT_VALUE.encode()
    ):
        raise _corrupt(path, "archive_format member is missing or wrong")
    if not models:
        raise _corrupt(path, "archive holds no program (models/*.json)")
    fix = "re-save it with torch.export.save"
    declared = 0
    for model in models:
        prog = parse_json(
            zf.read(root + c.MODELS_FILENAME_FORMAT.format(model)),
            f"{path}: models/{model}.json",
            fix,
        )
        why = None if trust else program_problem(prog)
        if why is not None:
            raise _refuse(path, why)
        for fmt, kind, folder in (
            (c.WEIGHTS_CONFIG_FILENAME_FORMAT, "weight", c.WEIGHTS_DIR),
            (c.CONSTANTS_CONFIG_FILENAME_FORMAT, "constant", c.CONSTANTS_DIR),
        ):
            cfg_name = fmt.format(model)
            if cfg_name not in rel:
                if trust:
                    continue  # e.g. a legacy pickled weights file the user trusts
                raise _corrupt(path, f"{cfg_name} is missing")
            cfg = parse_json(zf.read(root + cfg_name), f"{path}: {cfg_name}", fix)
            sizes = {
                n[len(folder) :]: i.file_size
                for n, i in rel.items()
                if n.startswith(folder) and not n.endswith(".json")
            }
            declared += _payload_bytes(path, cfg, cfg_name, sizes, kind, trust)
    check_memory(
        declared, f"{path} (its declared tensors)", "the archive is corrupt or hostile: re-save it"
    )
    if trust:
        return data
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name, info in rel.items():
            body = b"" if name.startswith(c.SAMPLE_INPUTS_DIR) else zf.read(info)
            dst.writestr(info.filename, body)
    return out.getvalue()


def _target_name(target: Any) -> str:
    """``torch.ops.aten.conv2d.default`` / ``_operator.getitem`` for a loaded graph node's target."""
    import torch

    if isinstance(target, torch._ops.OpOverload):
        return f"torch.ops.{target.namespace}.{target._schema.name.split('::')[-1]}.{target._overloadname}"
    module = getattr(target, "__module__", None) or ""
    return f"{module}.{getattr(target, '__name__', target)}"


def check_program(program: Any, path: Path) -> None:
    """Check the loaded program's graph: every called target allowed, no submodule calls.

    Raises:
        UntrustedCodeError: A node outside the allow-list.
    """
    for node in program.graph_module.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        if node.op != "call_function":
            raise _refuse(path, f"has a {node.op} node")
        name = _target_name(node.target)
        if not target_ok(name):
            raise _refuse(path, f"calls {name}")


# ------------------------------------------------------------------------ loading
def load(req: LoadRequest) -> TorchModel:
    """Load a ``.pt2`` archive (checked before and after loading unless ``req.trust``).

    Raises:
        UntrustedCodeError: Code outside the allow-list without ``--trust-code``.
        LoadError: A corrupt archive, or one that fails to load.
    """
    import torch

    from accelkit.loading.safe_read import weights_only_torch_load
    from accelkit.loading.sidecars import SPEC_EXTRA_FILE, stored_spec_text

    p = req.path
    try:
        data = p.read_bytes()
    except OSError as exc:
        from accelkit.files import storage_error

        raise storage_error(exc, f"cannot read {p}") from None
    extra = {SPEC_EXTRA_FILE: ""}
    checked = check_archive(data, p, trust=req.trust)
    try:
        if req.trust:
            program = torch.export.load(io.BytesIO(checked), extra_files=extra)
        else:
            with weights_only_torch_load(p):
                program = torch.export.load(io.BytesIO(checked), extra_files=extra)
            check_program(program, p)
        module = program.module()
    except AccelkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
        raise LoadError(
            f"{p} is a torch.export archive that fails to load ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}); re-save it with torch.export.save"
        ) from None
    stored = stored_spec_text(extra.get(SPEC_EXTRA_FILE), p, "the torch.export archive")
    return TorchModel(module, program=program, stored_spec=stored)


# ------------------------------------------------------------------- program facts
def embedding_rows(program: Any, node: Any) -> int | None:
    """Rows of the embedding table an integer program input indexes (its number of classes), if any."""
    for user in node.users:
        if "embedding" in str(user.target) and len(user.args) >= 2 and user.args[1] is node:
            weight = user.args[0]
            val = getattr(weight, "meta", {}).get("val")
            if val is not None and getattr(val, "dim", lambda: 0)() == 2:
                try:
                    return int(val.shape[0])
                except (TypeError, ValueError):
                    return None
    return None


def program_inputs(program: Any, module: Any) -> tuple[list[InputSpec], dict[str, str]]:
    """Inputs of a torch.export program from its placeholder fake tensors.

    Returns:
        ``(inputs, problems)``: an input whose shape or class count cannot be read is
        listed with an empty shape (and no classes), and ``problems`` maps its name to
        the message telling which ``--input`` gives it.
    """
    import torch

    sig = program.graph_signature
    user = list(sig.user_inputs)
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    names = forward_arg_names(module) or []
    out: list[InputSpec] = []
    problems: dict[str, str] = {}
    for k, name in enumerate(user):
        node = placeholders.get(name)
        val = node.meta.get("val") if node is not None else None
        arg_name = names[k] if k < len(names) else name
        if val is None or not hasattr(val, "shape"):
            problems[arg_name] = (
                f"torch.export program input {arg_name!r} has no recorded shape; give it with --input"
            )
            out.append(InputSpec(arg_name, "latent", ()))
            continue
        if val.dtype in (torch.int64, torch.int32):
            n_cls = embedding_rows(program, node) or attr_of(module, CLASS_ATTRS)
            if not isinstance(n_cls, int):
                problems[arg_name] = (
                    f"input {arg_name!r} is an integer label and the number of classes is unknown; pass --input {arg_name}:int:CLASSES"
                )
                out.append(InputSpec(arg_name, "label", (), "int64", None))
            else:
                out.append(InputSpec(arg_name, "label", (), "int64", int(n_cls)))
            continue
        shape = tuple(val.shape)[1:]
        try:
            per = tuple(int(d) for d in shape)
        except (TypeError, ValueError):
            problems[arg_name] = (
                f"torch.export program input {arg_name!r} has symbolic non-batch dims {shape}; give its size with --input"
            )
            out.append(InputSpec(arg_name, "latent", ()))
            continue
        kind = (
            "image"
            if len(per) == 3
            and per[1] > 1
            and arg_name.lower() not in ("z", "latent", "latents", "noise")
            else "latent"
        )
        out.append(InputSpec(arg_name, kind, per))  # type: ignore[arg-type]
    return out, problems


def program_static_batch(program: Any) -> int | None:
    """The batch size baked into a torch.export program, or None if it is symbolic."""
    import torch

    for n in program.graph.nodes:
        if n.op == "placeholder" and n.name in set(program.graph_signature.user_inputs):
            val = n.meta.get("val")
            if val is not None and val.dim() > 0:
                dim = val.shape[0]
                return None if isinstance(dim, torch.SymInt) else int(dim)
    return None


__all__ = [
    "check_archive",
    "check_program",
    "guard_ok",
    "load",
    "program_inputs",
    "program_problem",
    "program_static_batch",
    "sym_expr_ok",
    "target_ok",
]
