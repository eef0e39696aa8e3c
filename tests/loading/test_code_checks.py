"""The allow-list checks of TorchScript and ``.pt2`` archives: what passes, what is refused, and why.

Legit files must keep loading with no flag: a scripted and a traced generator using the
layers real generators use (conv, transposed conv, norms, linear, embeddings, attention,
upsampling, padding, pixel shuffle, activations, cat...), accelkit's own pruned models.
"""

from __future__ import annotations

import io
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from accelkit.errors import UntrustedCodeError
from accelkit.loading import load_generator
from accelkit.loading.allowlist import FORBIDDEN_OPS, PRIM_OPS, PURE_TENSOR_OPS, op_allowed
from accelkit.loading.pt2 import guard_ok, sym_expr_ok, target_ok
from accelkit.loading.torchscript import check_archive, node_problem


class ZooGen(nn.Module):
    """z (N, 8) + label (N,) -> (N, 3, 8, 8): most layer kinds a user generator has."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.fc = nn.Linear(16, 64)
        self.ln = nn.LayerNorm(64)
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(4, 8, 3, padding=1),
            nn.InstanceNorm2d(8, affine=True),
            nn.GroupNorm(2, 8),
            nn.LeakyReLU(0.2),
            nn.SiLU(),
            nn.GELU(),
            nn.PReLU(),
            nn.Dropout(0.1),
            nn.ReflectionPad2d(1),
            nn.Conv2d(8, 12, 3),
            nn.PixelShuffle(2),
            nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
            nn.ReplicationPad2d(1),
            nn.Conv2d(3, 3, 3),
            nn.ConvTranspose2d(3, 3, 4, 2, 1),
            nn.AvgPool2d(2),
            nn.BatchNorm2d(3),
            nn.Hardtanh(),
            nn.ELU(),
            nn.Softplus(),
            nn.Mish(),
        )

    def forward(self, z: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        h = self.ln(self.fc(torch.cat([z, self.emb(label)], 1)))
        t = h.view(-1, 8, 8)
        t, _ = self.att(t, t, t)
        h = F.interpolate(t.reshape(-1, 4, 4, 4), size=(4, 4), mode="bilinear", align_corners=True)
        return torch.tanh(self.body(h))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["script", "trace"])
def test_a_typical_generator_loads_without_trust_and_runs_the_same(how, tmp_path) -> None:
    torch.manual_seed(0)
    m = ZooGen().eval()
    z, label = torch.randn(2, 8), torch.tensor([1, 7])
    ts = (
        torch.jit.script(m)
        if how == "script"
        else torch.jit.trace(m, (z, label), check_trace=False)
    )
    path = tmp_path / f"zoo.{how}.pt"
    torch.jit.save(ts, str(path))
    art = load_generator(path, inputs=["z:8", "label:int:10"])
    assert art.spec.output_shape == (3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(art.module(z, label), m(z, label))


def test_the_allow_list_holds_real_ops_only_and_no_forbidden_one() -> None:
    schemas = {s.name for s in torch._C._jit_get_all_schemas()}
    aten = {n.split("::", 1)[1] for n in schemas if n.startswith("aten::")}
    assert PURE_TENSOR_OPS <= aten, sorted(PURE_TENSOR_OPS - aten)  # no typos: each is a real op
    for name in ("from_file", "save", "load", "set_", "_pin_memory", "as_strided", "sleep", "wait"):
        assert not op_allowed(name), name
    assert not (PURE_TENSOR_OPS - FORBIDDEN_OPS) & FORBIDDEN_OPS
    assert "PythonOp" not in PRIM_OPS and "CallMethod" not in PRIM_OPS and "fork" not in PRIM_OPS


@pytest.mark.parametrize(
    ("kind", "ok"),
    [
        ("aten::conv2d", True),
        ("prim::Constant", True),
        ("aten::from_file", False),
        ("prim::PythonOp", False),
        ("quantized::conv2d", False),
        ("myns::evil", False),
    ],
)
def test_graph_node_kinds(kind, ok) -> None:
    assert (node_problem(kind) is None) == ok


def _archive_with(source_edit: bytes, replacement: bytes, base: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.endswith(".py"):
                body = body.replace(source_edit, replacement)
            dst.writestr(info.filename, body)
    return out.getvalue()


@pytest.mark.parametrize(
    ("new", "pattern"),
    [
        (b"torch.save(", "calls torch.save"),
        (b"torch.classes.evil.Op(", "calls torch.classes.evil.Op"),
        (b"__torch__.torch.classes.x.Y(", "custom class"),
        (b"ops.myns.op(", "custom op namespace ops.myns"),
        (b"open(", "calls open"),
        (b"(z).__class__.__init__(", "__init__|__class__"),
        (b"getattr(torch, 'load')(", "calls an expression"),
    ],
)
def test_torchscript_source_outside_the_allow_list_is_refused_before_loading(
    new, pattern, gen_files
) -> None:
    data = _archive_with(b"torch.tanh(", new, gen_files["torchscript"].read_bytes())
    with pytest.raises(UntrustedCodeError, match=pattern):
        check_archive(data, gen_files["torchscript"])


def test_torchscript_pickles_naming_other_globals_are_refused(gen_files) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(gen_files["torchscript"]) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                body = body.replace(
                    b"collections\nOrderedDict", b"posix\nsystem\x00\x00\x00\x00\x00"
                )
            dst.writestr(info.filename, body)
    with pytest.raises(UntrustedCodeError, match="unpickles posix.system"):
        check_archive(out.getvalue(), gen_files["torchscript"])


@pytest.mark.parametrize(
    ("target", "ok"),
    [
        ("torch.ops.aten.conv2d.default", True),
        ("torch.ops.aten.upsample_nearest2d.vec", True),
        ("_operator.getitem", True),
        ("torch.ops.aten.from_file.default", False),
        ("torch.ops.higher_order.cond", False),
        ("torch.ops.myns.op.default", False),
        ("torch.save", False),
        ("builtins.exec", False),
        ("#ext:op", False),
    ],
)
def test_program_targets(target, ok) -> None:
    assert target_ok(target) == ok


@pytest.mark.parametrize(
    ("expr", "ok"),
    [
        ("Symbol('s6', positive=True, integer=True)", True),
        ("2*s0 + 1", True),
        ("Max(1, FloorDiv(s0, 8))", True),
        ("__import__('os').system('x')", False),
        ("Symbol('__import__')", False),
        ("s0.func", False),
        ("(lambda: 1)()", False),
        ("'text'", False),
    ],
)
def test_symbolic_expressions(expr, ok) -> None:
    assert sym_expr_ok(expr) == ok


@pytest.mark.parametrize(
    ("guard", "ok"),
    [
        ("L['label'].size()[0] == L['z'].size()[0]", True),
        ("2 <= L['z'].size()[0] <= 64", True),
        ("L['x'].size()[2] % 8 == 0", True),
        ("__import__('os').system('x') == 0", False),
        ("L['x'].__class__", False),
        ("L['a b'].size()[0] == 1", False),
        ("exec('1')", False),
    ],
)
def test_guards(guard, ok) -> None:
    assert guard_ok(guard) == ok
