"""Random feature maps φ with φ(x)ᵀφ(y) ≈ K(x, y) (Performers, Eq. 5 and Lemma 1; theory.md §3).

Every map takes inputs ``x`` of shape (…, L, d) and a projection ``W`` of shape (m, d) or
(…, m, d) (leading dims broadcast against x's) and returns features of shape (…, L, r):

============  ==========================================================  =====  ===========
name          φ(x)                                                        r      E[φ(x)ᵀφ(y)]
============  ==========================================================  =====  ===========
trig          e^{‖x‖²/2} m^{-1/2} [cos(Wx), sin(Wx)]                      2m     exp(xᵀy)
positive      e^{−‖x‖²/2} m^{-1/2} exp(Wx)                                m      exp(xᵀy)
hyperbolic    e^{−‖x‖²/2} (2m)^{-1/2} [exp(Wx), exp(−Wx)]                 2m     exp(xᵀy)
generalized   m^{-1/2} f(Wx) (with W) or f(x) (``W=None``)                m / d  E f(ωᵀx)f(ωᵀy)
============  ==========================================================  =====  ===========

With ``W`` having χ(d)-normed rows the three softmax maps are unbiased; with √d-normed rows the
positive map estimates SMREG (theory.md §6). ``generalized`` with ReLU and a Gaussian W estimates
the order-1 arc-cosine kernel (‖x‖‖y‖/2π)(sin θ + (π − θ) cos θ), not softmax.

Inputs are used as given; ``scale_inputs=True`` first multiplies them by d^{-1/4}, so that
φ(q)ᵀφ(k) estimates exp(qᵀk/√d) as in attention.

Numerics: the exponential maps are computed in log space, ``φ = c · factor · exp(log_amplitude −
shift)``. A *stabilizer* picks the shift: ``"row"`` subtracts each row's largest log-amplitude (for
queries), ``"global"`` one constant per leading index over all rows and features (for keys in
bidirectional attention). Both cancel exactly in normalized attention (theory.md §8) but change
φ(x)ᵀφ(y), so kernel estimates use ``stabilizer=None``. ``eps`` adds a constant to every positive
feature as the public code does; it biases every estimate and defaults to 0.
Half-precision inputs are computed in float32 and returned in their own dtype.

Range check. Without a stabilizer, ``e^{±‖x‖²/2}`` leaves a dtype's exponent range at moderate norms
(``‖x‖²/2 > ln(max)``: 88.7 in float32, 709.8 in float64, 11.1 for a float16 result): trigonometric
features overflow to ±Inf and positive or hyperbolic rows underflow to all zeros. The exponential
maps therefore check their result (``check="warn"``, the default): a row holding a non-finite value,
or whose largest feature is below the dtype's smallest positive number, raises
:class:`FeatureRangeWarning` (``check="raise"``: :class:`FeatureRangeError`) naming the largest input
norm, the dtype and the remedies (a stabilizer, float64, or smaller inputs). The check costs two row
maxima (of |φ| and of the log-amplitudes: 6% of the positive map's time on CPU in float32/64, 12% in
bfloat16, at L = 4096, m = 256, d = 64) and one scalar read back to the host, which is a device
synchronization on a GPU; ``check="off"`` skips it (no read
back), and inside ``jax.jit`` it is skipped. Rows are only counted; the input norms are computed only
when the check fires.
"""

from __future__ import annotations

from functools import partial

from . import discrete_features, gerf, hybrid_features
from .backends import dtype_name, framework, namespace
from .feature_options import DATA_TUNED, SIDED, side_options
from .feature_parts import FeatureParts, assemble, global_shift, row_shift
from .feature_range import RANGE_CHECKS, FeatureRangeError, FeatureRangeWarning, check_range
from .gerf import GERF_TRIG_A, homogeneity_rho, optimal_gerf_A, saderf_psi
from .validation import LOW_PRECISION, check_array, check_choice, check_eps, check_same_d

PARAMETERIZED_PARTS = {
    "oprf": gerf.oprf_parts,
    "gerf-trig": gerf.gerf_trig_parts,
    "saderf": gerf.saderf_parts,
    "poisson": discrete_features.poisson_parts,
    "geometric": discrete_features.geometric_parts,
    **{
        name: partial(hybrid_features.parts, orientation=o) for name, o in hybrid_features.ORIENTATION.items()
    },
}
"""The maps with parameters (GERF family, DIRFs, HRF): name → the function of their :class:`FeatureParts`."""
PARAMETERIZED_FEATURES = tuple(PARAMETERIZED_PARTS)
FEATURES = ("trig", "positive", "hyperbolic", "generalized", *PARAMETERIZED_FEATURES)
SHIFTS = (None, "row", "global")
"""Log-amplitude shifts a feature map subtracts (its ``stabilizer`` argument): none, the largest per row, or
one largest over the whole input; not the attention stabilizers of :mod:`estimators.attention`."""


def relu(u):
    """ReLU, max(u, 0), on any backend."""
    xp = namespace(u)
    return xp.where(u > 0, u, xp.zeros_like(u))


def features_per_projection(name: str) -> int:
    """r/m: 2 for trig, hyperbolic and gerf-trig (two functions of each projection), else 1; the hybrid
    maps have no fixed ratio (:func:`feature_width`)."""
    check_choice(name, "feature", FEATURES)
    if name in SIDED:
        raise ValueError(f"feature {name!r} has width 4k(n + 1), not a multiple of m: use feature_width")
    return 2 if name in ("trig", "hyperbolic", "gerf-trig") else 1


def feature_width(name: str, m: int) -> int:
    """r: the width of feature ``name`` with m projection rows."""
    check_choice(name, "feature", FEATURES)
    return hybrid_features.width(m) if name in SIDED else m * features_per_projection(name)


def feature_parts(
    name, x, W, *, scale_inputs=False, f=relu, validate=True, defer_row_offset=False, **options
) -> FeatureParts:
    """Compute the parts of feature map ``name`` for ``x`` (…, L, d) and ``W`` (…, m, d).

    ``W`` may be ``None`` only for ``generalized`` (deterministic features f(x)). ``options`` are the
    parameters of the parameterized maps (``A``, ``psi``, ``rate``, ``p``; see :func:`data_options`);
    the four original maps take none. With ``defer_row_offset``, the positive and hyperbolic maps
    keep ``‖x‖²/2`` apart as :attr:`FeatureParts.row_offset` instead of subtracting it from the
    (…, L, r) projections (one pass fewer over them: :func:`assemble` joins it to the shift).
    """
    check_choice(name, "feature", FEATURES)
    if validate:
        check_array(x, "x", min_ndim=2)
        if W is not None:
            check_array(W, "W", min_ndim=2)
            check_same_d(x, W)
    if W is None and name != "generalized":
        raise ValueError(f"W must be a projection (m, d) array for feature {name!r}, got None")
    if W is not None and W.shape[-2] < 1:
        raise ValueError(f"W must have at least one projection row (m >= 1), got shape {tuple(W.shape)}")
    if options and name not in PARAMETERIZED_FEATURES:
        raise TypeError(f"feature {name!r} takes no options, got {sorted(options)}")
    xp = namespace(x)
    dtype = dtype_name(x)
    if dtype in LOW_PRECISION:
        x = xp.astype(x, xp.float32)
    if scale_inputs:
        x = x * x.shape[-1] ** -0.25
    if name in PARAMETERIZED_FEATURES:
        return PARAMETERIZED_PARTS[name](x, xp.astype(W, x.dtype, copy=False), dtype, **options)
    if W is None:
        return FeatureParts(None, f(x), 1.0, dtype)
    W = xp.astype(W, x.dtype, copy=False)
    m = W.shape[-2]
    projected = xp.matmul(x, xp.matrix_transpose(W))
    half_sq_norm = xp.sum(x * x, axis=-1, keepdims=True) / 2
    if name == "positive":
        if defer_row_offset:
            return FeatureParts(projected, None, m**-0.5, dtype, half_sq_norm)
        projected -= half_sq_norm
        return FeatureParts(projected, None, m**-0.5, dtype)
    if name == "hyperbolic":
        both = xp.concat([projected, -projected], axis=-1)
        if defer_row_offset:
            return FeatureParts(both, None, (2 * m) ** -0.5, dtype, half_sq_norm)
        both -= half_sq_norm
        return FeatureParts(both, None, (2 * m) ** -0.5, dtype)
    if name == "trig":
        trig = framework(projected).cos_and_sin(projected)
        return FeatureParts(half_sq_norm, trig, m**-0.5, dtype)
    return FeatureParts(None, f(projected), m**-0.5, dtype)


def _shift_for(parts: FeatureParts, stabilizer):
    check_choice(stabilizer, "stabilizer", SHIFTS)
    if stabilizer is None or parts.log_amplitude is None:
        return None
    return row_shift(parts) if stabilizer == "row" else global_shift(parts)


def _exponential_features(name, x, W, scale_inputs, stabilizer, eps=0.0, check="warn", **options):
    check_choice(check, "check", RANGE_CHECKS)
    eps = check_eps(eps)
    parts = feature_parts(name, x, W, scale_inputs=scale_inputs, **options)
    shift = _shift_for(parts, stabilizer)
    values = assemble(parts, shift, eps)
    if check != "off":
        check_range(name, parts, shift, values, x, scale_inputs, stabilizer, check)
    return values


def trig(x, W, *, scale_inputs=False, stabilizer=None, check="warn"):
    """Trigonometric softmax features, (…, L, 2m): e^{‖x‖²/2} m^{-1/2} [cos(Wx), sin(Wx)].

    Unbiased for exp(xᵀy) with Gaussian rows (Performers §2.3); values can be negative.
    ``check`` ("warn", "raise" or "off"): the range check of the module docstring (one host read).
    """
    return _exponential_features("trig", x, W, scale_inputs, stabilizer, check=check)


def positive(x, W, *, scale_inputs=False, stabilizer=None, eps=0.0, check="warn"):
    """Positive random features (PRF, FAVOR+), (…, L, m): e^{−‖x‖²/2} m^{-1/2} exp(Wx).

    Unbiased for exp(xᵀy) with Gaussian rows (Performers, Lemma 1). ``eps`` > 0 biases.
    ``check`` ("warn", "raise" or "off"): the range check of the module docstring (one host read).
    """
    return _exponential_features("positive", x, W, scale_inputs, stabilizer, eps, check)


def hyperbolic(x, W, *, scale_inputs=False, stabilizer=None, eps=0.0, check="warn"):
    """Hyperbolic positive features, (…, L, 2m): e^{−‖x‖²/2} (2m)^{-1/2} [exp(Wx), exp(−Wx)].

    φ(x)ᵀφ(y) = Λ·(1/m)Σ cosh(ω_iᵀ(x+y)), unbiased for exp(xᵀy) (Performers, Lemma 1).
    ``check`` ("warn", "raise" or "off"): the range check of the module docstring (one host read).
    """
    return _exponential_features("hyperbolic", x, W, scale_inputs, stabilizer, eps, check)


def generalized(x, W=None, *, f=relu, eps=0.0, scale_inputs=False):
    """Generalized features (Performers §2.3, App. A.4): m^{-1/2} f(Wx) (…, L, m), or f(x) (…, L, d).

    With ``f = relu`` and Gaussian W, φ(x)ᵀφ(y) is unbiased for the arc-cosine kernel of order 1.
    Without W (the official Performer-ReLU default) the features are deterministic.
    """
    parts = feature_parts("generalized", x, W, scale_inputs=scale_inputs, f=f)
    return assemble(parts, None, check_eps(eps))


def feature_map(name):
    """The public feature function for ``name`` (one of :data:`FEATURES`)."""
    check_choice(name, "feature", FEATURES)
    maps = {
        "trig": trig,
        "positive": positive,
        "hyperbolic": hyperbolic,
        "generalized": generalized,
        "oprf": oprf,
        "gerf-trig": gerf_trig,
        "saderf": saderf,
        "poisson": poisson,
        "geometric": geometric,
        "hybrid": hybrid,
        "hybrid-notebook": partial(hybrid, notebook=True),
    }
    return maps[name]


# --- Parameterized maps (theory.md §10): GERF/OPRF (FAVOR++), SADERF (FAVOR#), discretely-induced ---
#
# Each is unbiased for exp(xᵀy) for any fixed parameters shared by queries and keys; the defaults are
# safe constants (A = 0, Ψ = 1, λ = 1, p = 1/2), not the optima. The variance-optimal parameters
# depend on the query and key sets: :func:`data_options` computes them (per pair for one row each).


def oprf(x, W, *, A=0.0, scale_inputs=False, stabilizer=None, eps=0.0, check="warn"):
    """GERF with s = +1 (CRT, Likhosherstov et al. 2022; theory.md §10.2), (…, L, m).

    ``φ(x) = m^{-1/2} D exp(A‖ω‖² + B ωᵀx − ‖x‖²/2)`` with ``B = √(1 − 4A)``, ``D = (1 − 4A)^{d/4}``;
    unbiased for exp(xᵀy) for A < 1/4, finite variance for A < 1/8. ``A`` is a float or an array
    broadcasting to (…, 1, 1); A = 0 (the default) is FAVOR+'s positive map, ``A = A*``
    (:func:`optimal_gerf_A`, via :func:`data_options`) is OPRF, the FAVOR++ estimator.
    """
    return _exponential_features("oprf", x, W, scale_inputs, stabilizer, eps, check, A=A)


def gerf_trig(x, W, *, A=GERF_TRIG_A, scale_inputs=False, stabilizer=None, check="warn"):
    """GERF with s = −1, real part (theory.md §10.2), (…, L, 2m).

    ``φ(x) = m^{-1/2} D e^{A‖ω‖²} e^{‖x‖²/2} [cos(B ωᵀx), sin(B ωᵀx)]``, ``B = √(1 − 4A)``,
    ``D = (1 − 4A)^{d/4}``, so ``φ(x)ᵀφ(y) = (1/m) Σ D² e^{2A‖ω‖²} cos(B ωᵀ(x − y)) e^{(‖x‖²+‖y‖²)/2}``:
    unbiased for exp(xᵀy) for A < 1/4 (A = 0 is the trigonometric map), finite variance for A < 1/8.
    """
    return _exponential_features("gerf-trig", x, W, scale_inputs, stabilizer, check=check, A=A)


def saderf(x, W, *, psi=1.0, A=0.0, scale_inputs=False, stabilizer=None, eps=0.0, check="warn"):
    """SADERF, the FAVOR# estimator (Likhosherstov et al. 2023; theory.md §10.3), (…, L, m).

    OPRF applied to ``Ψx`` for queries and ``Ψ⁻¹y`` for keys, Ψ diagonal: ``(Ψx)ᵀ(Ψ⁻¹y) = xᵀy`` so the
    estimate stays unbiased. Pass ``psi`` = Ψ's diagonal (…, 1, d) for queries and its reciprocal for
    keys (:func:`data_options` returns both; in attention pass ``feature_options=(query_options,
    key_options)``), and ``A`` as in :func:`oprf`. The defaults (Ψ = 1,
    A = 0) give the positive map.
    """
    return _exponential_features("saderf", x, W, scale_inputs, stabilizer, eps, check, psi=psi, A=A)


def poisson(x, W, *, rate=1.0, scale_inputs=False, stabilizer=None, check="warn"):
    """Poisson discretely-induced features (CRT DIRFs; theory.md §10.2), (…, L, m).

    ``W`` holds Uniform[0, 1) variates (m, d), turned into counts ``ω_il ~ Poisson(rate)`` by the
    inverse CDF; ``φ(u) = m^{-1/2} e^{λd/2} Π_l (u_l/√λ)^{ω_l}``, unbiased for exp(xᵀy) (Taylor
    series of each exp(x_l y_l)). Not positive in general (odd powers of negative coordinates).
    ``rate`` λ > 0 is a float or an array broadcasting to (…, 1, 1); default 1, optimal λ* from
    :func:`data_options`.
    """
    return _exponential_features("poisson", x, W, scale_inputs, stabilizer, check=check, rate=rate)


def geometric(x, W, *, p=0.5, scale_inputs=False, stabilizer=None, check="warn"):
    """Geometric discretely-induced features (CRT DIRFs; theory.md §10.2), (…, L, m).

    ``W`` holds Uniform[0, 1) variates, turned into counts ``ω_il`` with P(k) = p(1 − p)^k;
    ``φ(u) = m^{-1/2} p^{-d/2} Π_l u_l^{ω_l} (ω_l!)^{-1/2} (1 − p)^{-ω_l/2}``, unbiased for exp(xᵀy).
    ``p`` in (0, 1) is a float or an array broadcasting to (…, 1, 1); default 1/2, the data rule in
    :func:`data_options`.
    """
    return _exponential_features("geometric", x, W, scale_inputs, stabilizer, check=check, p=p)


def hybrid(x, W, *, side, notebook=False, scale_inputs=False, stabilizer=None, check="warn"):
    """Angular hybrid random features (HRF; theory.md §10.5), (…, L, 4k(n + 1)) for ``side`` "query"
    or "key" (they differ: φ_q(x)ᵀφ_k(y) = w T + (1 − w) H, :mod:`estimators.hybrid_features`).

    W (…, m, d) holds k ω rows, then n ξ rows; trig weight w = 1 − λ̂ (exact at θ = 0 and π) or, with
    ``notebook``, λ̂ as the public notebook has it. Unbiased for exp(xᵀy) for Gaussian rows.
    """
    name = "hybrid-notebook" if notebook else "hybrid"
    return _exponential_features(name, x, W, scale_inputs, stabilizer, check=check, side=side)


def data_options(name, queries, keys, *, scale_inputs=False):
    """Per-side options ``(query_options, key_options)`` of feature ``name`` for these query/key sets
    (:func:`estimators.feature_options.side_options`: the attention rules of the data-tuned maps, the
    sides of the hybrid maps)."""
    check_choice(name, "feature", FEATURES)
    return side_options(name, queries, keys, scale_inputs=scale_inputs)


__all__ = [
    "DATA_TUNED",
    "FEATURES",
    "GERF_TRIG_A",
    "PARAMETERIZED_FEATURES",
    "RANGE_CHECKS",
    "FeatureParts",
    "FeatureRangeError",
    "FeatureRangeWarning",
    "assemble",
    "data_options",
    "feature_map",
    "feature_parts",
    "feature_width",
    "features_per_projection",
    "generalized",
    "geometric",
    "gerf_trig",
    "global_shift",
    "homogeneity_rho",
    "hybrid",
    "hyperbolic",
    "oprf",
    "optimal_gerf_A",
    "poisson",
    "positive",
    "relu",
    "row_shift",
    "saderf",
    "saderf_psi",
    "trig",
]
