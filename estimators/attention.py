"""Softmax attention and its FAVOR random-feature estimate, bidirectional and causal.

Shapes: queries ``q`` (…, L, d), keys ``k`` (…, M, d), values ``v`` (…, M, d_v), any leading
batch/head dims (broadcasting); outputs (…, L, d_v) in the backend, device and dtype of ``q``.

* :func:`exact`: ``Att = D⁻¹ A V`` with ``A = exp(Q Kᵀ/√d)`` and ``D = diag(A 1)`` (Performers
  Eq. 1); causal: ``A → tril(A)`` (Eq. 2). Computed as a row-stable softmax.
* :func:`favor`: ``Att^ = D̂⁻¹ (Q'((K')ᵀ V))``, ``D̂ = diag(Q'((K')ᵀ 1))`` (Eq. 4) with feature rows
  ``Q'_i = φ(q_i d^{-1/4})``, ``K'_j = φ(k_j d^{-1/4})`` from the same projection W (chunked key sums,
  :mod:`estimators.bidirectional`); causal by chunked prefix sums (App. B.1, Eq. 11;
  :mod:`estimators.causal`). Both compute features chunk by chunk (C positions): forward memory per
  head O(L·(d + d_v) + C·(C + m) + m·d_v), never an (L, m) feature matrix and never O(L·m·d).
* :func:`favor_from_features`: the same algebra on precomputed features.

Masks. ``key_padding_mask`` (…, M), boolean, True = keep: a removed key leaves numerator and
denominator. A query with no visible key (every key removed, or in causal mode every key up to its
position) gets a **zero** output row in both :func:`exact` and :func:`favor`.

Stabilizers (theory.md §8). Features are computed in log space and shifted before exponentiation:

* ``"auto"`` (default): each query row by its own largest log-amplitude; keys by one shift per
  leading index (bidirectional) or, in causal mode, by the running maximum over the keys seen so far,
  with the carried state rescaled (:mod:`estimators.causal`), so no output depends on a later position.
  With ``eps = 0`` every shift cancels exactly in the normalized output.
* ``"global"``: as the public Performer code, one key shift per leading index taken over the *whole*
  sequence. Bidirectional this equals ``"auto"``; causal it **leaks the future** (a later outlier key
  changes earlier outputs through underflow, and through ``eps``). Kept only to study that leak.
* ``"none"``: no shift (overflows for large inputs).

Shifts are constants for differentiation (stop-gradient; exact when ``eps = 0``, where the output
does not depend on them). ``eps`` > 0 adds ``eps · m^{-1/2}`` to every shifted exponential feature as
the public code does; it biases every output (towards the plain mean of the visible values) by an
amount that depends on the shifts, so it defaults to 0. Bidirectional, eps is added at the
whole-sequence key shift exactly as in the public code; causal with ``"auto"``, at each key's own
running shift (the public code's whole-sequence shift would see the future: ``"global"``).

Denominators. If a visible row's D̂_i underflows to 0 or is not positive (trigonometric features can
give D̂_i ≤ 0, Performers §2.3), ``denominator="raise"`` (default) raises :class:`DenominatorError`;
``"zero"`` returns a zero row there; ``"raw"`` returns N̂_i / D̂_i as computed (possibly ±Inf/NaN, on
request only). Inside ``jax.jit``/``jax.grad`` nothing can be raised, so ``"raise"`` acts as ``"zero"``.

Precision: float16/bfloat16 inputs are computed and accumulated in float32 and returned in the
input dtype.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import warnings

import numpy as np

from . import regime, registry
from .attention_inputs import check_finite_inputs, check_inputs, check_projection
from .attention_options import feature_map, side_options
from .backends import dtype_name, framework, is_tracer, namespace, to_host
from .favor_algebra import (
    Constants,
    DenominatorError,
    GivenFeatures,
    allowed_pairs,
    keep_rows,
    restore_dtype,
    run,
    working_dtype,
)
from .validation import check_choice, check_eps, check_positive_int

STABILIZERS = ("auto", "global", "none")
DENOMINATORS = ("raise", "zero", "raw")
IMPLS = ("auto", "reference", "compiled", "triton")


def exact(q, k, v, causal=False, key_padding_mask=None):
    """Softmax attention ``softmax(q kᵀ/√d) v`` (Performers Eq. 1; causal: Eq. 2).

    Parameters
    ----------
    q : array (…, L, d)
    k : array (…, M, d)
    v : array (…, M, d_v)
    causal : bool
        Query i sees keys j ≤ i (needs L == M).
    key_padding_mask : bool array (…, M) or None
        True keeps a key.

    Returns
    -------
    array (…, L, d_v)
        Row i is ``Σ_j w_ij v_j`` with ``w_ij = exp(q_iᵀk_j/√d − μ_i) / Σ_j' exp(q_iᵀk_j'/√d − μ_i)``
        over visible keys (μ_i the row maximum, which cancels); zero if no key is visible.
    """
    check_inputs(q, k, v, key_padding_mask, causal)
    core = framework(q).compiled(_exact_arrays, (4,))
    return core(q, k, v, key_padding_mask, causal)


def _exact_arrays(q, k, v, key_padding_mask, causal):
    xp = namespace(q)
    dtype = dtype_name(q)
    q, k, v = (working_dtype(xp, a) for a in (q, k, v))
    logits = xp.matmul(q, xp.matrix_transpose(k)) / math.sqrt(q.shape[-1])
    allowed = allowed_pairs(xp, key_padding_mask, causal, logits.shape[-2], logits.shape[-1], q)
    if allowed is not None:
        logits = xp.where(allowed, logits, -math.inf)
    row_max = framework(q).stop_gradient(xp.max(logits, axis=-1, keepdims=True))
    weights = xp.exp(logits - xp.where(row_max > -math.inf, row_max, 0.0))
    total = xp.sum(weights, axis=-1, keepdims=True)
    out = xp.matmul(weights, v) / xp.where(total > 0, total, 1.0)
    return restore_dtype(xp, out, dtype)


def favor(
    q,
    k,
    v,
    W,
    feature="positive",
    causal=False,
    key_padding_mask=None,
    *,
    stabilizer="auto",
    eps=0.0,
    chunk_size=None,
    impl="auto",
    denominator="raise",
    feature_options=None,
    predict_error=False,
):
    """FAVOR attention: softmax attention with exp(q·k/√d) estimated by φ(q)ᵀφ(k) (Performers Eq. 4).

    Parameters
    ----------
    q, k, v : arrays (…, L, d), (…, M, d), (…, M, d_v)
    W : array (m, d) or (…, H, m, d)
        Projection shared by all heads or one per head; the same W is used for q and k.
    feature : str
        A feature map in :data:`estimators.features.FEATURES` or a registry estimator name (its feature
        map is used). Maps are applied with ``scale_inputs=True``, so ``φ(q)ᵀφ(k) ≈ exp(qᵀk/√d)``.
    causal : bool
        Query i sees keys j ≤ i (needs L == M); chunked prefix sums.
    key_padding_mask : bool array (…, M) or None
        True keeps a key.
    stabilizer : {"auto", "global", "none"}
        Log-space shifts (module docstring); ``"global"`` leaks the future in causal mode.
    eps : float
        Added to every shifted exponential feature (× m^{-1/2}); > 0 biases the output.
    chunk_size : int or None
        Positions per chunk C (default 64 causal, 1024 bidirectional); causal work inside a chunk is
        quadratic in C.
    impl : {"auto", "reference", "compiled", "triton"}
        ``"auto"`` uses :mod:`estimators.triton_favor` for CUDA torch tensors when Triton is importable,
        the call uses the defaults it implements, and its ``supports`` accepts the call; otherwise the
        reference path here. ``"triton"`` demands the kernel and raises ``ValueError`` if it cannot run.
        ``"compiled"`` runs the reference path with each chunk or block step compiled: torch tensors
        through ``torch.compile`` (Inductor; compiled on first use, which takes seconds to a minute and
        needs a C++ compiler on a CPU), JAX arrays as always (the whole call is jitted); other arrays
        raise ``ValueError``. Same algebra, same outputs up to rounding. A graph is specialized to its
        pieces' shapes and strides, which depend on L: it pays for many calls of one shape, and each
        new length compiles again until torch's limit of graphs per function
        (``torch._dynamo.config.cache_size_limit``), after which torch warns and runs further shapes
        uncompiled.
    denominator : {"raise", "zero", "raw"}
        What a visible row with an underflowed or non-positive D̂_i gets (module docstring).
    feature_options : dict, (dict, dict) or None
        Parameters of the feature map (:func:`estimators.features.feature_parts`), one dict for q
        and k or a ``(query_options, key_options)`` pair; ``{}`` gives the map's plain defaults
        (e.g. OPRF's A = 0, which is the positive map). ``None`` with a data-tuned map
        (:data:`estimators.features.DATA_TUNED`: OPRF, SADERF, Poisson, geometric): bidirectionally
        ``features.data_options(name, q, k, scale_inputs=True)`` (the papers' attention rules, read
        from every query and key, masked keys included); causal raises ``ValueError``, since those
        rules read later positions: pass options explicitly there.
    predict_error : bool
        Also return the delta-method relative error e that m = W.shape[-2] projections give at these
        inputs (:func:`estimators.regime.predicted_error`: the RMS error of the output relative to its
        size; positive, hyperbolic and trigonometric features only), and warn
        (:class:`estimators.regime.RegimeWarning`) when e > :data:`estimators.regime.ERROR_THRESHOLD`
        (0.5): the inputs are then outside the estimator's useful regime. Costs O(64 · M² · d) on the
        host in float64 (64 query rows) and reads q, k, v back from the device.

    Returns
    -------
    array (…, L, d_v), or (array, float) with ``predict_error``
        ``D̂⁻¹ Q'((K')ᵀ V)`` (causal: ``D̃⁻¹ tril(Q'(K')ᵀ) V``); zero rows where no key is visible;
        with ``predict_error``, e as well.
    """
    name = registry.feature_map_of(feature)
    check_choice(stabilizer, "stabilizer", STABILIZERS)
    check_choice(denominator, "denominator", DENOMINATORS)
    check_choice(impl, "impl", IMPLS)
    if impl == "compiled" and not framework(q).compiles_steps:
        raise ValueError(
            f"impl='compiled' needs torch or JAX arrays, got {type(q).__name__}; use impl='reference'"
        )
    eps = check_eps(eps)
    chunk_size = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    check_inputs(q, k, v, key_padding_mask, causal, finite=False)
    check_projection(W, q, k)
    if not isinstance(predict_error, bool):
        raise TypeError(f"predict_error must be a bool, got {predict_error!r}")
    if predict_error and name not in regime.DELTA_FEATURES:
        raise ValueError(
            f"predict_error needs a feature with a delta method {tuple(regime.DELTA_FEATURES)}, got {name!r}"
        )
    if predict_error and any(is_tracer(a) for a in (q, k, v)):
        raise ValueError("predict_error reads q, k and v on the host: call favor outside jax.jit/grad for it")
    query_options, key_options = side_options(name, feature_options, q, k, causal)
    call = (q, k, v, W, name, causal, key_padding_mask)
    kernel = _triton_kernel(impl, call, stabilizer, eps, bool(query_options or key_options))
    if kernel is not None or denominator != "raise":
        check_finite_inputs(q, k, v)
    if kernel is not None:
        out = kernel.favor_triton(q, k, v, W, feature=name, causal=causal)
    else:
        featurizer, constants = feature_map(name, stabilizer, eps, query_options, key_options, W)
        mask = keep_rows(key_padding_mask)
        compiled = impl == "compiled"
        out = run(featurizer, constants, q, k, v, mask, causal, chunk_size, denominator, compiled)
    if not predict_error:
        return out
    return out, _predicted_error(q, k, v, W, name, causal, key_padding_mask)


def _predicted_error(q, k, v, W, name, causal, key_padding_mask):
    """The delta-method relative error of this call, with a :class:`RegimeWarning` above the threshold."""
    error = regime.predicted_error(q, k, v, W.shape[-2], name, causal, key_padding_mask)
    if error > regime.ERROR_THRESHOLD:
        norms = [float(np.max(np.linalg.norm(to_host(a).astype(np.float64), axis=-1))) for a in (q, k)]
        warnings.warn(
            f"FAVOR ({name} features, m={W.shape[-2]}) is outside its useful regime: the delta-method "
            f"relative error is {error:.3g} > {regime.ERROR_THRESHOLD} at max ‖q‖ = {norms[0]:.3g}, "
            f"max ‖k‖ = {norms[1]:.3g} (d = {q.shape[-1]}); the error grows like e^(‖q + k‖²/√d): rescale "
            "q and k (e.g. normalize them, or lower a temperature), or use exact attention",
            regime.RegimeWarning,
            stacklevel=3,
        )
    return error


def favor_from_features(
    q_features, k_features, v, causal=False, key_padding_mask=None, *, chunk_size=None, denominator="raise"
):
    """The FAVOR algebra on precomputed, unshifted features (Performers Eq. 4, App. B.1 Eq. 11).

    Parameters
    ----------
    q_features : array (…, L, r)
        Rows φ(q_i); any per-row factor cancels.
    k_features : array (…, M, r)
        Rows φ(k_j), used as given (no stabilizer).
    v : array (…, M, d_v)
    causal, key_padding_mask, chunk_size, denominator
        As in :func:`favor`.

    Returns
    -------
    array (…, L, d_v)
        ``diag(Q'(K')ᵀ1)⁻¹ Q'((K')ᵀ V)``, causal with ``tril``; zero rows where no key is visible.
    """
    check_choice(denominator, "denominator", DENOMINATORS)
    chunk_size = None if chunk_size is None else check_positive_int(chunk_size, "chunk_size")
    check_inputs(q_features, k_features, v, key_padding_mask, causal, ("q_features", "k_features", "v"))
    return run(
        GivenFeatures(),
        Constants(None),
        q_features,
        k_features,
        v,
        keep_rows(key_padding_mask),
        causal,
        chunk_size,
        denominator,
    )


def _triton_kernel(impl, call, stabilizer, eps, has_options):
    """The Triton module if ``impl`` selects it for ``call``, else None (``"triton"``: ValueError)."""
    if impl in ("reference", "compiled"):
        return None
    reason = _triton_unavailable(call, stabilizer, eps, has_options)
    if reason is None:
        return importlib.import_module("estimators.triton_favor")
    if impl == "triton":
        raise ValueError(f"impl='triton' cannot run this call: {reason}; use impl='reference'")
    return None


def _triton_unavailable(call, stabilizer, eps, has_options):
    q = call[0]
    if not framework(q).is_cuda_tensor(q):
        return "it needs CUDA torch tensors"
    if stabilizer != "auto" or eps != 0 or has_options:
        return "it implements only stabilizer='auto', eps=0 and no feature_options"
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    try:
        module = importlib.import_module("estimators.triton_favor")
    except ImportError as error:
        return f"estimators.triton_favor could not be imported ({error})"
    if not module.supports(*call):
        explain = getattr(module, "unsupported_reason", None)
        return explain(*call) if explain is not None else "estimators.triton_favor.supports() rejects it"
    return None


__all__ = [
    "DENOMINATORS",
    "IMPLS",
    "STABILIZERS",
    "DenominatorError",
    "exact",
    "favor",
    "favor_from_features",
]
