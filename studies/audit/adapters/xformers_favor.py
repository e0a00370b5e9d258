"""xformers' FAVOR feature maps and ``FavorAttention`` (PyPI ``xformers``, release 0.0.20) as audit targets.

Audited: xformers 0.0.20, the last releases that ship ``xformers.components.attention.favor`` and
its ``feature_maps`` (later releases removed them). Its wheel pins torch 2.0.1 and carries CUDA
extensions; the feature maps and ``FavorAttention`` are pure PyTorch, so on a CPU machine with
another torch install the wheel without its dependencies, where it does not replace torch:
``pip install --no-deps --target /some/dir xformers==0.0.20`` and put that folder on
``PYTHONPATH`` (xformers then warns that its C++/CUDA extensions cannot load; nothing audited
uses them). Not installed by ``make setup`` nor run in CI (a 109 MB wheel).

Two targets:

* ``xformers``: ``FeatureMapType.SMOrf``, φ(x) = exp(ωᵀx − ‖x‖²/2)/√m on ``_get_random_ortho_matrix``
  with ``NormDistribution.Xi``: FAVOR+, registry row ``positive-ort``;
* ``xformers:hyperbolic``: ``FeatureMapType.SMHyp``, [exp(ωᵀx − ‖x‖²/2), exp(−ωᵀx − ‖x‖²/2)]/√(2m):
  registry row ``hyperbolic-ort``.

(``FavorAttention``'s default ``SMReg`` is the hyperbolic map with fixed √d norms, an estimator of
the regularized softmax kernel that favor-bench's registry has only for the positive map.)

Every capability calls its code: projections are ``_get_feature_map(d, m)`` (the draw its
``pre_scale`` makes, from the global torch stream seeded by ``torch.manual_seed``; W = ωᵀ: its
matrix is (d, m) and inputs multiply it on the left); one feature map per ``FavorAttention``, used
by every head (heads are folded into the batch); redraws are successive draws; the kernel estimate
is the feature map's ``forward`` with ``softmax_temp = 1`` (inputs as given), ``epsilon = 0`` and
a batch of ω, one per pair; features are ``forward`` with the defaults (ε = 1e-6 inside the
exponent, inputs scaled by d^{-1/4}); attention is ``FavorAttention.forward`` on (B·H, L, d) with
the audit's ω in its feature map (no redraw: ``iter_before_redraw=None``). It takes no mask.
"""

from __future__ import annotations

import numpy as np

from ..protocol import Adapter
from .torch_arrays import seeded, single_thread, to_host, to_torch

PACKAGE = "xformers"
VARIANTS = {
    "orf": ("SMOrf", "SMOrf", "positive-ort"),
    "hyperbolic": ("SMHyp", "SMHyperbolic", "hyperbolic-ort"),
}


def _library():
    try:
        from xformers.components.attention import favor, feature_maps
    except ImportError as error:
        raise ImportError(
            "the xformers audit needs xformers 0.0.20 without its dependencies: pip install --no-deps "
            "--target DIR xformers==0.0.20, then DIR on PYTHONPATH (see this adapter's docstring)"
        ) from error
    return favor, feature_maps


def adapter(variant: str = "orf") -> Adapter:
    """The adapter for ``variant``: ``orf`` (SMOrf, positive-ort) or ``hyperbolic`` (SMHyp)."""
    from importlib.metadata import PackageNotFoundError, version

    if variant not in VARIANTS:
        raise ValueError(f"xformers variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    favor, feature_maps = _library()
    single_thread()
    type_name, class_name, claims = VARIANTS[variant]
    map_type = getattr(feature_maps.FeatureMapType, type_name)
    per_projection = 2 if variant == "hyperbolic" else 1

    def feature_map(m, **options):
        return getattr(feature_maps, class_name)(
            dim_features=per_projection * int(m), iter_before_redraw=None, **options
        )

    def sample_projection(m, d, seed):
        seeded(seed)
        return to_host(feature_map(m)._get_feature_map(int(d), int(m), "cpu")).T

    def head_projections(m, d, heads, seed):
        return np.repeat(sample_projection(m, d, seed)[None], int(heads), axis=0)

    def redraw_projections(m, d, count, seed):
        seeded(seed)
        state = feature_map(m)
        return np.stack([to_host(state._get_feature_map(int(d), int(m), "cpu")).T for _ in range(int(count))])

    def kernel_estimate(x, y, W):
        x, y, W = (np.asarray(a, dtype=np.float64) for a in (x, y, W))
        batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1], W.shape[:-2])
        m, d = W.shape[-2:]
        state = feature_map(m, epsilon=0.0, softmax_temp=1.0)
        state.features = to_torch(np.swapaxes(np.broadcast_to(W, (*batch, m, d)), -1, -2))
        phi_x, phi_y = (
            to_host(state(to_torch(np.broadcast_to(a, (*batch, d))[..., None, :])))[..., 0, :] for a in (x, y)
        )
        return np.sum(phi_x * phi_y, axis=-1)

    def features(x, W, role):
        W = np.asarray(W)
        state = feature_map(W.shape[0])
        state.features = to_torch(W.T)
        return to_host(state(to_torch(x)))

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        import torch

        if mask is not None:
            raise ValueError("FavorAttention takes no mask (declared mask='none')")
        q, k, v, W = (np.asarray(a) for a in (q, k, v, W))
        batch, heads, length, _ = q.shape
        module = favor.FavorAttention(
            causal=bool(causal), dim_features=per_projection * W.shape[0], feature_map_type=map_type
        ).eval()
        module.feature_map.features = to_torch(W.T, dtype)
        folded = (to_torch(a.reshape(batch * heads, length, a.shape[-1]), dtype) for a in (q, k, v))
        with torch.no_grad():
            out = module(*folded)
        return to_host(out).reshape(batch, heads, length, v.shape[-1])

    try:
        installed = version(PACKAGE)
    except PackageNotFoundError:
        installed = "unknown"
    return Adapter(
        name=PACKAGE if variant == "orf" else f"{PACKAGE}:{variant}",
        claims=claims,
        layout="(B·H, L, d) torch tensors",
        version=installed,
        sample_projection=sample_projection,
        head_projections=head_projections,
        redraw_projections=redraw_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        dtypes=("float32", "float16", "bfloat16"),
        precision=None,
        mask="none",
        notes=(
            f"feature map audited: {class_name} (FeatureMapType.{type_name}), epsilon=1e-6 "
            "inside the exponent, normalize_inputs=False",
            "projection (_get_random_ortho_matrix): Haar blocks (sign(diag R) fix applied) of size m × m, "
            "ROWS scaled by χ(m) norms of the Gaussian block, the first d rows kept; "
            "projections are its columns",
            "FavorAttention causal path (_causal_attention): cumulative sums over dim 2 of (B, L, E) tensors",
        ),
    )
