"""Per-side options of the feature maps: the data-tuned parameters of the attention rules and the
sides of the hybrid maps (:func:`side_options`, exposed as :func:`estimators.features.data_options`).
"""

from __future__ import annotations

from . import discrete_features
from .backends import namespace
from .gerf import homogeneity_rho, optimal_gerf_A, saderf_psi
from .hybrid_features import ORIENTATION
from .validation import check_array, check_same_d

DATA_TUNED = ("oprf", "saderf", "poisson", "geometric")
"""Feature maps whose parameters :func:`side_options` chooses from the query and key sets."""
SIDED = tuple(ORIENTATION)
"""Feature maps whose query and key features differ (HRF): their ``side`` option is always set."""


def side_options(name, queries, keys, *, scale_inputs=False):
    """Per-side options ``(query_options, key_options)`` of feature ``name`` for these query/key sets.

    queries (…, L, d), keys (…, M, d); every parameter has shape (…, 1, 1) or (…, 1, d). With one
    row each (pairs) the rules are the exact per-pair optima; with sets they are the attention
    (homogeneity) rules, all O((L + M) d):

    * ``oprf``: ``A = A*(ρ)``, ρ = :func:`homogeneity_rho` (CRT);
    * ``saderf``: Ψ = :func:`saderf_psi`, then ``A*`` at ρ(Ψ) for (Ψx, Ψ⁻¹y) (FAVOR#);
    * ``poisson``: ``λ* = √(Σ_l S_l / d)``, S_l = mean_i x_il² · mean_j y_jl² (per pair the exact
      variance minimizer, claim 22; floored at 1e-12);
    * ``geometric``: ``p = 1 − q``, ``q = (√(S² + 4dS) − S)/(2d)``, S = Σ_l S_l: the minimizer of the
      variance's second-order expansion log I₀(z) ≈ z²/4 (no closed-form optimum; floored at 1e-12);
    * ``hybrid``, ``hybrid-notebook``: ``side = "query"`` and ``"key"`` (:data:`SIDED`: their query
      and key features differ, theory.md §10.5; no parameter is read from the data);
    * every other map: no options.

    The set rules read every key, so in causal attention a parameter chosen this way depends on later
    positions (each output stays an unbiased-kernel FAVOR output, but not a function of the prefix
    alone); use fixed parameters there when that matters.
    """
    check_array(queries, "queries", min_ndim=2)
    check_array(keys, "keys", min_ndim=2)
    check_same_d(queries, keys, "queries", "keys")
    if scale_inputs:
        queries = queries * queries.shape[-1] ** -0.25
        keys = keys * keys.shape[-1] ** -0.25
    d = queries.shape[-1]
    if name in SIDED:
        return {"side": "query"}, {"side": "key"}
    if name == "oprf":
        options = {"A": optimal_gerf_A(homogeneity_rho(queries, keys), d)}
        return options, options
    if name == "saderf":
        psi = saderf_psi(queries, keys)
        A = optimal_gerf_A(homogeneity_rho(queries * psi, keys / psi), d)
        return {"psi": psi, "A": A}, {"psi": 1 / psi, "A": A}
    if name in ("poisson", "geometric"):
        xp = namespace(queries, keys)
        power = xp.mean(queries * queries, axis=-2) * xp.mean(keys * keys, axis=-2)
        S = xp.sum(power, axis=-1)[..., None, None]
        if name == "poisson":
            options = {"rate": discrete_features.poisson_rate(S, d)}
        else:
            options = {"p": discrete_features.geometric_p(S, d)}
        return options, options
    return {}, {}


__all__ = ["DATA_TUNED", "SIDED", "side_options"]
