"""pytorch-fast-transformers (PyPI ``pytorch-fast-transformers``) feature maps as audit targets.

Audited: version 0.4.0. Two targets share this adapter:

* ``pytorch-fast-transformers``: the ``Favor`` feature map, φ(x) = [exp(ωᵀx − ‖x‖²/2),
  exp(−ωᵀx − ‖x‖²/2)]/√r with r = ``n_dims`` features from r/2 projections: the hyperbolic
  (antithetic) positive map of Performers §2.3, on block-orthogonal ω with χ(d) norms, so it claims
  registry row ``hyperbolic-ort`` (m = r/2 projections);
* ``pytorch-fast-transformers:grf``: ``GeneralizedRandomFeatures`` with its default ReLU, φ(x) =
  ReLU(ωᵀx) on the same sampler: registry row ``relu-ort``.

On a CPU-only machine. The package is an sdist whose setup.py compiles C++ (and, where ``nvcc``
is found, CUDA) extensions. They implement attention kernels only: the feature maps
(``fast_transformers/feature_maps``), the masks and ``LinearAttention`` are pure PyTorch. Either

* install it with a C++ compiler, ``pip install --no-build-isolation pytorch-fast-transformers==0.4.0``
  (its seven CPU extensions took 34 minutes on a shared 2-core machine; hide ``nvcc`` from PATH
  on a machine without a CUDA toolkit), which also gives ``CausalLinearAttention`` its
  ``causal_product_cpu`` kernel; or
* put the unpacked sdist on ``PYTHONPATH`` without building anything
  (``pip download --no-deps --no-binary :all: pytorch-fast-transformers==0.4.0`` and untar it).

Either way this adapter imports ``fast_transformers.feature_maps`` and ``fast_transformers.masking``
as usual, and ``fast_transformers/attention/linear_attention.py`` as a submodule of its package
without running the package's ``__init__`` (which imports every attention, including the compiled
ones). ``causal_linear_attention`` is imported the same way and is used only if its compiled
``causal_product`` imports; otherwise the target declares no causal mode.

Every capability calls the library's code: projections from ``new_feature_map`` (its
``orthogonal_random_matrix_``, seeded through ``torch.manual_seed``; W = ωᵀ); one feature map, so
one W, per attention layer for every head; redraws are successive ``new_feature_map`` calls (a
training forward makes one); the kernel estimate is the feature map's ``forward`` with
``softmax_temp = 1`` (inputs as given) and a batch of ω, one per pair (ReLU features ×1/m: the map
has no m^{-1/2}, a constant that cancels in attention); attention is ``LinearAttention`` (and
``CausalLinearAttention``) with the feature map in ``deterministic_eval`` mode holding the audit's
W, the key padding given as a ``LengthMask`` (its only mask: prefix lengths).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np

from ..protocol import Adapter
from .torch_arrays import seeded, single_thread, to_host, to_torch

PACKAGE = "pytorch-fast-transformers"
VARIANTS = {"favor": ("Favor", "hyperbolic-ort"), "grf": ("GeneralizedRandomFeatures", "relu-ort")}


def _library():
    """(feature_maps, masking, LinearAttention, CausalLinearAttention or None)."""
    try:
        import fast_transformers
        from fast_transformers import feature_maps, masking
    except ImportError as error:
        raise ImportError(
            "the pytorch-fast-transformers audit needs fast_transformers 0.4.0, installed (pip install "
            "--no-build-isolation pytorch-fast-transformers==0.4.0, which compiles C++) or its unpacked "
            "sdist on PYTHONPATH; see studies/audit/adapters/fast_transformers.py"
        ) from error
    package = "fast_transformers.attention"
    if package not in sys.modules:
        bare = types.ModuleType(package)
        bare.__path__ = [str(Path(fast_transformers.__file__).parent / "attention")]
        sys.modules[package] = bare
    linear = importlib.import_module(f"{package}.linear_attention").LinearAttention
    try:
        causal = importlib.import_module(f"{package}.causal_linear_attention").CausalLinearAttention
    except ImportError:
        causal = None
    return feature_maps, masking, linear, causal


def _feature_map(variant, d, m, **options):
    """The variant's feature map for head dimension d with m projections (ω of shape (d, m))."""
    feature_maps = _library()[0]
    cls = getattr(feature_maps, VARIANTS[variant][0])
    width = 2 * m if variant == "favor" else m
    return cls(int(d), n_dims=width, **options)


def adapter(variant: str = "favor") -> Adapter:
    """The adapter for ``variant``: ``favor`` (hyperbolic-ort) or ``grf`` (ReLU, relu-ort)."""
    from importlib.metadata import PackageNotFoundError, version

    if variant not in VARIANTS:
        raise ValueError(
            f"pytorch-fast-transformers variant must be one of {tuple(VARIANTS)}, got {variant!r}"
        )
    _, masking, linear_attention, causal_attention = _library()
    single_thread()
    claims = VARIANTS[variant][1]

    def sample_projection(m, d, seed):
        feature_map = _feature_map(variant, d, m)
        seeded(seed)
        feature_map.new_feature_map("cpu")
        return to_host(feature_map.omega).T

    def head_projections(m, d, heads, seed):
        return np.repeat(sample_projection(m, d, seed)[None], int(heads), axis=0)

    def redraw_projections(m, d, count, seed):
        feature_map = _feature_map(variant, d, m)
        seeded(seed)
        draws = []
        for _ in range(int(count)):
            feature_map.new_feature_map("cpu")
            draws.append(to_host(feature_map.omega).T)
        return np.stack(draws)

    def kernel_estimate(x, y, W):
        x, y, W = (np.asarray(a, dtype=np.float64) for a in (x, y, W))
        batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1], W.shape[:-2])
        m, d = W.shape[-2:]
        feature_map = _feature_map(variant, d, m, softmax_temp=1.0)
        feature_map.omega = to_torch(np.swapaxes(np.broadcast_to(W, (*batch, m, d)), -1, -2))
        phi_x, phi_y = (to_host(feature_map(to_torch(np.broadcast_to(a, (*batch, d))))) for a in (x, y))
        scale = 1.0 if variant == "favor" else 1.0 / m
        return scale * np.sum(phi_x * phi_y, axis=-1)

    def features(x, W, role):
        W = np.asarray(W)
        feature_map = _feature_map(variant, W.shape[1], W.shape[0])
        feature_map.omega = to_torch(W.T)
        forward = feature_map.forward_queries if role == "query" else feature_map.forward_keys
        return to_host(forward(to_torch(x)))

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        import torch

        q, k, v, W = (np.asarray(a) for a in (q, k, v, W))
        batch, _, length, d = q.shape
        if causal and causal_attention is None:
            raise ValueError("CausalLinearAttention needs the compiled causal_product kernel")
        module_class = causal_attention if causal else linear_attention
        work_dtype = "float32" if causal else dtype
        feature_map = _feature_map(variant, d, W.shape[0], deterministic_eval=True)
        module = module_class(d, feature_map=lambda _: feature_map).eval()
        feature_map.omega = to_torch(W.T, work_dtype)
        lengths = np.full(batch, length) if mask is None else _lengths(mask)
        attn_mask = masking.TriangularCausalMask(length) if causal else masking.FullMask(length)
        query_lengths = masking.LengthMask(torch.full((batch,), length, dtype=torch.int64), max_len=length)
        key_lengths = masking.LengthMask(torch.from_numpy(lengths), max_len=length)
        layout = (to_torch(np.transpose(a, (0, 2, 1, 3)), work_dtype) for a in (q, k, v))
        with torch.no_grad():
            out = module(*layout, attn_mask, query_lengths, key_lengths)
        return np.transpose(to_host(out), (0, 2, 1, 3))

    try:
        installed = version(PACKAGE)
    except PackageNotFoundError:
        installed = "0.4.0 (unpacked sdist on PYTHONPATH)"
    return Adapter(
        name=PACKAGE if variant == "favor" else f"{PACKAGE}:{variant}",
        claims=claims,
        layout="(N, L, H, E) torch tensors",
        version=installed,
        sample_projection=sample_projection,
        head_projections=head_projections,
        redraw_projections=redraw_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        dtypes=("float32",),
        precision=None,
        mask="length",
        causal=causal_attention is not None,
        notes=(
            f"feature map audited: {VARIANTS[variant][0]} with its defaults "
            + (
                "(orthogonal=True, stabilize=False, softmax_temp=d^{-1/2}: inputs scaled by d^{-1/4})"
                if variant == "favor"
                else "(orthogonal=True, kernel_fn=relu, softmax_temp=1)"
            ),
            "projection blocks (orthogonal_random_matrix_): Q of torch.qr(block) with no sign(diag R) "
            "correction, column j scaled by the norm of row j of the same Gaussian block",
            "attention: LinearAttention / CausalLinearAttention with eps = 1e-6 added to the denominator",
            "causal attention: "
            + (
                "the compiled causal_product kernel (float32 only)"
                if causal_attention is not None
                else "n-a here (causal_product is not compiled)"
            ),
        ),
    )


def _lengths(mask) -> np.ndarray:
    """Prefix lengths (B,) of a keep-mask (B, L) that keeps a prefix of each row; ValueError otherwise."""
    keep = np.asarray(mask, dtype=bool)
    lengths = keep.sum(axis=-1)
    prefix = np.arange(keep.shape[-1])[None, :] < lengths[:, None]
    if not np.array_equal(keep, prefix):
        raise ValueError("pytorch-fast-transformers masks keys by length only (a kept prefix per row)")
    return lengths.astype(np.int64)
