"""Loader of TorchScript archives, which are code: proven to use only pure tensor ops before anything runs.

A TorchScript archive carries compiled Python-syntax sources (``code/``), and
``torch.jit.load`` itself runs a module's ``__setstate__``; ``forward`` can call file
operations (``torch.from_file`` writes or reads any file). So, without ``--trust-code``:

1. **Before anything runs** (:func:`check_archive`): the archive's bytes are read once;
   every ``code/`` source is parsed with :mod:`ast` and must define no ``__setstate__``,
   import nothing, and reference only allowed ops (``torch.X`` / ``ops.aten.X`` with X in
   :data:`~accelkit.loading.allowlist.PURE_TENSOR_OPS`, ``ops.prim.X`` in
   :data:`~accelkit.loading.allowlist.PRIM_OPS`, no custom ``ops.NS`` namespaces, no
   ``torch.classes``); calls go only to builtins, locals, or functions and methods the
   archive defines. Its pickles (``data.pkl``, ``constants.pkl``) may name only the
   archive's own classes and tensor storage.
2. The same bytes are loaded (``torch.jit.load`` of an in-memory copy: the file cannot
   change in between).
3. **Before ``forward`` is ever called** (:func:`check_module`): every node of the
   inlined ``forward`` graph (and its blocks) must be an allowed ``aten::`` or ``prim::``
   op, and no module may carry forward hooks.

accelkit's own pruned models and typical scripted or traced generators (conv, transposed
conv, norms, linear, activations, upsampling, embeddings, attention, cat...) pass; a
file that does not is refused with the op it uses and how to opt in.
"""

from __future__ import annotations

import ast
import io
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelkit.errors import LoadError, UntrustedCodeError
from accelkit.loading.allowlist import PRIM_OPS, TORCHSCRIPT_BUILTINS, op_allowed
from accelkit.loading.registry import LoadRequest, TorchModel
from accelkit.loading.safe_read import TRUST_HINT

#: Globals a TorchScript archive's pickles may name (beyond its own ``__torch__`` classes).
PICKLE_GLOBALS = frozenset(
    """collections.OrderedDict torch._utils._rebuild_tensor_v2 torch._utils._rebuild_tensor
    torch._utils._rebuild_parameter torch.jit._pickle.build_intlist
    torch.jit._pickle.build_floatlist torch.jit._pickle.build_boollist
    torch.jit._pickle.build_tensorlist torch.jit._pickle.build_doublelist
    torch.jit._pickle.restore_type_tag torch.jit._pickle.build_tensor_from_id
    builtins.set builtins.frozenset""".split()
)
_STORAGE = re.compile(r"^torch\.[A-Za-z0-9]*Storage$")


def _refuse(path: Path, what: str) -> UntrustedCodeError:
    return UntrustedCodeError(
        f"{path} is a TorchScript archive whose code {what}, outside accelkit's allow-list of pure tensor ops; "
        f"a TorchScript archive is code: {TRUST_HINT}"
    )


# ----------------------------------------------------------------- archive (before)
def _chain(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _check_chain(chain: str) -> str | None:
    """Why an attribute chain in TorchScript source is not allowed (None when it is)."""
    parts = chain.split(".")
    root = parts[0]
    if root == "torch":
        if len(parts) == 2 and op_allowed(parts[1]):
            return None
        return f"calls {chain}"
    if root == "ops":
        if len(parts) == 3 and parts[1] == "aten" and op_allowed(parts[2]):
            return None
        if len(parts) == 3 and parts[1] == "prim" and parts[2] in PRIM_OPS:
            return None
        if len(parts) >= 2 and parts[1] not in ("aten", "prim"):
            return f"calls the custom op namespace ops.{parts[1]} ({chain})"
        return f"calls {chain}"
    if root == "__torch__" and "classes" in parts[1:3]:
        return f"uses the custom class {chain}"
    return None


def _defined(trees: list[ast.Module]) -> tuple[set[str], set[str]]:
    """(methods defined in classes, top-level functions and classes) over all sources."""
    methods: set[str] = set()
    toplevel: set[str] = set()
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                toplevel.add(node.name)
                methods.update(
                    n.name
                    for n in node.body
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                )
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                toplevel.add(node.name)
    return methods, toplevel


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a source binds (assignments, loop targets, parameters): calls through them are
    as safe as what they were bound to, which is checked where it is bound."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def _source_problem(tree: ast.Module, methods: set[str], toplevel: set[str]) -> str | None:
    bound = _bound_names(tree)
    inner: set[int] = set()  # attribute nodes inside a longer chain
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in (
            "__setstate__",
            "__reduce__",
            "__reduce_ex__",
        ):
            return f"defines {node.name} (run while the file is loaded)"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            if not all(m.startswith("__torch__") for m in mods):
                return f"imports {', '.join(mods)}"
        if isinstance(node, (ast.Lambda, ast.Global, ast.Nonlocal, ast.Await, ast.Yield)):
            return f"uses {type(node).__name__.lower()} statements TorchScript does not write"
        if isinstance(node, ast.Attribute) and id(node) not in inner:
            chain = _chain(node)
            if chain is not None:
                why = _check_chain(chain)
                if why is not None:
                    return why
            if chain is None or chain.split(".")[0] not in ("torch", "ops", "__torch__"):
                dunder = [a for a in (chain or node.attr).split(".")[1:] if a.startswith("__")]
                if dunder or (chain is None and node.attr.startswith("__")):
                    return f"reaches the attribute {(dunder or [node.attr])[0]}"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if func.id not in TORCHSCRIPT_BUILTINS | bound | toplevel:
                    return f"calls {func.id}"
            elif isinstance(func, ast.Attribute):
                chain = _chain(func)
                root = chain.split(".")[0] if chain else None
                if root in ("torch", "ops", "__torch__"):
                    continue  # checked as a chain above
                if func.attr not in methods and not op_allowed(func.attr):
                    return f"calls the method {func.attr}"
            else:
                return "calls an expression (an indirect call)"
    return None


def _pickle_globals(data: bytes) -> Iterator[str]:
    """``module.name`` of every global a pickle names, without unpickling it."""
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("GLOBAL", "INST"):
            mod, _, name = str(arg).partition(" ")
            yield f"{mod}.{name}"
        elif op.name == "STACK_GLOBAL":
            if len(strings) >= 2:
                yield f"{strings[-2]}.{strings[-1]}"
            else:
                yield "<a global built at run time>"
        if isinstance(arg, str):
            strings.append(arg)


def _pickle_problem(data: bytes) -> str | None:
    try:
        for name in _pickle_globals(data):
            if name.startswith("__torch__."):
                if ".classes." in name or name.startswith("__torch__.torch.classes"):
                    return f"unpickles the custom class {name}"
                continue
            if name in PICKLE_GLOBALS or _STORAGE.match(name):
                continue
            return f"unpickles {name}"
    except Exception as exc:  # noqa: BLE001 - a pickle pickletools cannot walk is not one torch wrote
        return f"holds a pickle that cannot be read safely ({type(exc).__name__})"
    return None


def check_archive(data: bytes, path: Path) -> None:
    """Prove, before anything runs, that a TorchScript archive's code and pickles stay in the allow-list.

    Raises:
        UntrustedCodeError: Something outside the allow-list (the message names it).
        LoadError: Not a readable archive, or sources that do not parse.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = zf.namelist()
        sources = {n: zf.read(n) for n in names if "/code/" in n and n.endswith(".py")}
        pickles = {n: zf.read(n) for n in names if n.endswith(".pkl") and "/code/" not in n}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise LoadError(f"{path} is a corrupt TorchScript archive ({exc}); re-save it") from None
    trees: dict[str, ast.Module] = {}
    for name, text in sources.items():
        try:
            trees[name] = ast.parse(text.decode("utf-8"), filename=name)
        except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError):
            raise _refuse(path, f"in {name} does not parse as TorchScript source") from None
    methods, toplevel = _defined(list(trees.values()))
    for name, tree in trees.items():
        why = _source_problem(tree, methods, toplevel)
        if why is not None:
            raise _refuse(path, f"{why} (in {name.split('/code/', 1)[-1]})")
    for name, blob in pickles.items():
        why = _pickle_problem(blob)
        if why is not None:
            raise _refuse(path, f"{why} (in {name.rsplit('/', 1)[-1]})")


# --------------------------------------------------------------------- graph (after)
def _walk(block: Any) -> Iterator[Any]:
    for node in block.nodes():
        yield node
        for sub in node.blocks():
            yield from _walk(sub)


def node_problem(kind: str) -> str | None:
    """Why a TorchScript graph node kind is not allowed (None when it is)."""
    ns, _, name = kind.partition("::")
    if ns == "aten" and op_allowed(name):
        return None
    if ns == "prim" and name in PRIM_OPS:
        return None
    return f"runs {kind}"


def check_module(module: Any, path: Path) -> None:
    """Check the loaded module's inlined ``forward`` graph and hooks against the allow-list.

    Raises:
        UntrustedCodeError: A node outside the allow-list, or a forward hook.
    """
    import torch

    for name, sub in module.named_modules():
        c = getattr(sub, "_c", None)
        hooks = []
        for getter in ("_get_forward_hooks", "_get_forward_pre_hooks"):
            fn = getattr(c, getter, None)
            if fn is not None:
                hooks += list(fn())
        if hooks:
            raise _refuse(path, f"registers forward hooks on {name or 'the model'}")
    if not isinstance(module, torch.jit.ScriptModule) or not hasattr(module, "forward"):
        raise LoadError(
            f"{path} is a TorchScript archive without a forward method; re-save the generator"
        )
    try:
        graph = module.inlined_graph
    except RuntimeError as exc:
        raise _refuse(
            path, f"cannot be inlined for checking ({str(exc).splitlines()[0][:120]})"
        ) from None
    for node in _walk(graph):
        why = node_problem(node.kind())
        if why is not None:
            raise _refuse(path, why)


# ------------------------------------------------------------------------ loading
def load(req: LoadRequest) -> TorchModel:
    """Load a TorchScript archive (checked before and after loading unless ``req.trust``).

    Raises:
        UntrustedCodeError: Code outside the allow-list without ``--trust-code``.
        LoadError: The archive fails to load.
    """
    import torch

    from accelkit.loading.sidecars import SPEC_EXTRA_FILE, stored_spec_text

    p = req.path
    try:
        data = p.read_bytes()
    except OSError as exc:
        from accelkit.files import storage_error

        raise storage_error(exc, f"cannot read {p}") from None
    if not req.trust:
        check_archive(data, p)
    extra = {SPEC_EXTRA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", DeprecationWarning
            )  # TorchScript is deprecated but users have such files
            module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    except Exception as exc:  # noqa: BLE001 - turned into a one-line error below
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise LoadError(
            f"{p} is a TorchScript archive that fails to load ({first}); re-save it with torch.jit.save"
        ) from None
    if not req.trust:
        check_module(module, p)
    stored = stored_spec_text(extra.get(SPEC_EXTRA_FILE), p, "the TorchScript archive")
    return TorchModel(module, stored_spec=stored)


__all__ = ["PICKLE_GLOBALS", "check_archive", "check_module", "load", "node_problem"]
