"""The ops a TorchScript or ``torch.export`` generator may use without ``--trust-code``.

A TorchScript archive and a ``torch.export`` program are code: their graphs can call any
registered op, including ones that touch files (``aten::from_file``, ``aten::save``),
custom ops from any namespace, and Python callables. accelkit loads them without the
user's trust only when every op is one of the pure tensor ops below: arithmetic,
convolutions, normalizations, activations, resampling, shape and indexing ops, random
sampling, and the list/scalar helpers TorchScript compiles Python control flow into.
None of them reads or writes anything outside its tensors.

Names are ATen base names (``conv2d`` covers ``aten::conv2d``, ``torch.conv2d`` in
TorchScript source and ``torch.ops.aten.conv2d.default`` in an exported program). A
generator using an op not listed here loads with ``--trust-code``; the refusal names the op.
"""

from __future__ import annotations

_LINEAR = """
_convolution _convolution_mode conv1d conv2d conv3d conv_transpose1d conv_transpose2d
conv_transpose3d convolution conv_tbc linear addmm addmv addbmm baddbmm bmm mm mv matmul dot
vdot einsum bilinear _trilinear outer ger tensordot kron
"""
_NORM = """
batch_norm native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training
_native_batch_norm_legit_functional _batch_norm_impl_index _batch_norm_no_update
_batch_norm_with_update instance_norm layer_norm native_layer_norm group_norm native_group_norm
rms_norm _fused_rms_norm renorm cosine_similarity pairwise_distance
cdist _cdist_forward
"""
_ACTIVATION = """
relu relu_ relu6 relu6_ leaky_relu leaky_relu_ rrelu rrelu_ prelu _prelu_kernel gelu gelu_ silu
silu_ mish mish_ sigmoid sigmoid_ tanh tanh_ hardtanh hardtanh_ hardsigmoid hardsigmoid_
hardswish hardswish_ hardshrink softshrink elu elu_ selu selu_ celu celu_ softplus
glu threshold threshold_ softmax _softmax log_softmax _log_softmax
_safe_softmax
"""
_POINTWISE = """
add add_ sub sub_ rsub mul mul_ div div_ true_divide floor_divide floordiv remainder fmod neg
neg_ abs abs_ sign sgn exp exp_ exp2 expm1 log log_ log2 log10 log1p sqrt sqrt_ rsqrt rsqrt_
pow pow_ square reciprocal reciprocal_ sin cos tan asin acos atan atan2 sinh cosh asinh acosh
atanh erf erfc erfinv floor floor_ ceil ceil_ round round_ trunc trunc_ frac clamp clamp_
clamp_min clamp_min_ clamp_max clamp_max_ clip clip_ maximum minimum fmax fmin lerp lerp_
addcmul addcmul_ addcdiv addcdiv_ where eq ne lt le gt ge eq_ ne_ logical_and logical_or
logical_not logical_xor bitwise_and bitwise_or bitwise_xor bitwise_not __and__ __or__ __xor__
__not__ __lshift__ __rshift__ isnan isinf isfinite nan_to_num nan_to_num_ sigmoid_backward
xlogy hypot logaddexp logit polar angle real imag conj copysign heaviside deg2rad rad2deg
"""
_REDUCTION = """
sum mean var std var_mean std_mean amax amin aminmax max min argmax argmin norm
linalg_vector_norm frobenius_norm nuclear_norm prod cumsum cumprod logsumexp all any median
nanmean nansum count_nonzero topk sort argsort kthvalue
"""
_SHAPE = """
view view_as reshape reshape_as _reshape_alias _unsafe_view flatten unflatten permute
transpose transpose_ t t_ contiguous clone expand expand_as expand_copy repeat
repeat_interleave tile unsqueeze unsqueeze_ squeeze squeeze_ narrow select select_copy slice
slice_copy split split_with_sizes unsafe_split tensor_split chunk unsafe_chunk unbind
stack hstack vstack cat concat concatenate flip fliplr flipud roll rot90 movedim moveaxis
swapaxes swapdims diagonal diag diag_embed tril triu view_copy permute_copy
alias alias_copy detach detach_ detach_copy lift_fresh lift_fresh_copy masked_fill masked_fill_
masked_select masked_scatter index index_select index_put index_put_ _index_put_impl_
index_add index_copy index_fill gather scatter scatter_ scatter_add scatter_add_ scatter_reduce
take take_along_dim embedding embedding_bag _embedding_bag one_hot meshgrid cartesian_prod
broadcast_to broadcast_tensors atleast_1d atleast_2d atleast_3d nonzero where unique_consecutive
"""
_RESAMPLE = """
pad constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d
replication_pad2d replication_pad3d _pad_circular _pad_enum
pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle upsample_nearest1d
upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d _upsample_nearest_exact2d
_upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d upsample_trilinear3d
upsample_bicubic2d _upsample_bilinear2d_aa _upsample_bicubic2d_aa _upsample_lanczos2d_aa
grid_sampler grid_sampler_2d grid_sampler_3d affine_grid_generator avg_pool1d avg_pool2d
avg_pool3d max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices
max_pool3d_with_indices adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
_adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d
adaptive_max_pool3d unfold im2col col2im
"""
_ATTENTION = """
scaled_dot_product_attention _scaled_dot_product_attention_math
_scaled_dot_product_flash_attention _scaled_dot_product_flash_attention_for_cpu
_scaled_dot_product_efficient_attention _native_multi_head_attention _transform_bias_rescale_qkv
_masked_softmax
"""
_DROPOUT = """
dropout dropout_ feature_dropout feature_dropout_ alpha_dropout alpha_dropout_
feature_alpha_dropout feature_alpha_dropout_ native_dropout
"""
_CREATE = """
zeros zeros_like ones ones_like full full_like empty empty_like empty_strided new_zeros new_ones
new_full new_empty new_empty_strided arange linspace logspace eye scalar_tensor tensor
as_tensor randn randn_like rand rand_like randint randint_like randperm normal normal_
uniform_ bernoulli bernoulli_ multinomial exponential_ fill fill_ zero_ copy copy_
_to_copy to type_as _cast_Float _cast_Long _cast_Int _cast_Half _cast_Double
"""
_SCALAR = """
size sym_size sym_numel sym_stride sym_storage_offset stride numel dim len item
_local_scalar_dense is_floating_point is_complex is_nonzero is_contiguous is_same_size
is_autocast_enabled is_autocast_cpu_enabled is_grad_enabled get_autocast_dtype
__getitem__ _set_item __contains__ __is__ __isnot__ __range_length __derive_index
__interpolate __upsample __upsample_bilinear __round_to_zero_floordiv append insert pop
extend clear reverse index count keys values items get setdefault update copy_
list dict str format warn Int Float Bool Complex ScalarImplicit IntImplicit
FloatImplicit ComplexImplicit _assert_scalar _assert_async _assert_tensor_metadata
_functional_assert_async _functional_assert_scalar sym_constrain_range
sym_constrain_range_for_size result_type can_cast promote_types
percentFormat splitlines strip join startswith endswith lower upper isdigit replace split
floor ceil sqrt log exp sin cos pow abs neg gcd factorial isnan trunc
_shape_as_tensor _unwrap_optional device cpu
"""

#: ATen base names (and the TorchScript ``torch.X`` builtins they compile to) allowed without trust.
PURE_TENSOR_OPS: frozenset[str] = frozenset(
    " ".join(
        (
            _LINEAR,
            _NORM,
            _ACTIVATION,
            _POINTWISE,
            _REDUCTION,
            _SHAPE,
            _RESAMPLE,
            _ATTENTION,
            _DROPOUT,
            _CREATE,
            _SCALAR,
        )
    ).split()
)

#: Ops that must never be allowed whatever the lists above say (checked by a test): they
#: read or write files, share memory with a file, save or load, or reach other processes.
FORBIDDEN_OPS: frozenset[str] = frozenset(
    """from_file save load _save_jit_module _load_for_mobile set_ _set_storage _pin_memory
    pin_memory share_memory_ _share_memory_ fork wait _wait sleep to_mkldnn
    _nested_tensor_from_mask as_strided as_strided_ as_strided_scatter resize_ resize_as_
    _resize_output_ record_stream _unsafe_index _fused_sdp_choice""".split()
)

#: TorchScript ``prim::`` node kinds allowed: constants, attribute access, containers,
#: control flow, casts and exceptions.
PRIM_OPS: frozenset[str] = frozenset(
    """Constant GetAttr SetAttr If Loop ListConstruct ListUnpack ListIndex TupleConstruct
    TupleUnpack TupleIndex TupleSlice DictConstruct DictIndex RaiseException Uninitialized
    unchecked_cast NumToTensor device dtype layout is_cuda is_cpu is_nested is_mkldnn is_xpu
    is_mps is_meta is_quantized is_sparse requires_grad type data shape min max abs isinstance
    EnumValue EnumName AutogradAdd AutogradZero ImplicitTensorToNum IgnoredPythonOp
    unchecked_unwrap_optional rangelist StringIndex Print""".split()
)

#: Python builtins TorchScript source may call by name.
TORCHSCRIPT_BUILTINS: frozenset[str] = frozenset(
    """annotate unchecked_cast uninitialized getattr hasattr isinstance range int float bool str
    len list tuple dict min max abs round enumerate zip divmod ord chr hash all any sorted
    reversed print sum complex""".split()
)

#: ``_operator`` / ``math`` / ``torch.sym_*`` callables a ``torch.export`` graph may call.
PROGRAM_PYTHON_OPS: frozenset[str] = frozenset(
    """_operator.getitem _operator.add _operator.sub _operator.mul _operator.truediv
    _operator.floordiv _operator.mod _operator.pow _operator.neg _operator.pos _operator.abs
    _operator.eq _operator.ne _operator.lt _operator.le _operator.gt _operator.ge _operator.and_
    _operator.or_ _operator.xor _operator.not_ _operator.invert _operator.lshift _operator.rshift
    math.ceil math.floor math.trunc math.sqrt torch.sym_float torch.sym_int torch.sym_max
    torch.sym_min torch.sym_not torch.sym_ite torch.sym_sum torch._sym_sqrt
    torch.sym_sqrt""".split()
)


def op_allowed(name: str) -> bool:
    """Whether an ATen base name (``conv2d``, ``upsample_nearest2d``) is a pure tensor op here."""
    return name in PURE_TENSOR_OPS and name not in FORBIDDEN_OPS


__all__ = [
    "FORBIDDEN_OPS",
    "PRIM_OPS",
    "PROGRAM_PYTHON_OPS",
    "PURE_TENSOR_OPS",
    "TORCHSCRIPT_BUILTINS",
    "op_allowed",
]
