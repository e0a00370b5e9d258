"""One table of every estimator: studies, statistical tests and benchmarks iterate it.

A row names a feature map, a projection law and the kernel its expectation equals. Adding an
estimator means adding one row here (plus its feature/projection code and its theory in
``estimators.theory``); nothing else needs editing.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import features as feature_maps
from . import hybrid_features, kernels, projections
from .backends import namespace
from .validation import check_choice, check_prefix_sizes

NESTED_PROJECTIONS = ("iid", "orthogonal", "simplex", "sorf", "uniform")
"""Samplers whose rows are drawn independently or in independent blocks (see :attr:`Estimator.nests`)."""


@dataclass(frozen=True)
class Estimator:
    """A random-feature kernel estimator K̂(x, y) = φ(x)ᵀφ(y) with φ built from W.

    Attributes
    ----------
    name : str
        Registry key, ``<feature>-<projection>[-<variant>]``.
    feature : str
        Feature map in :data:`estimators.features.FEATURES`.
    projection : str
        A sampler in :data:`estimators.projections.SAMPLERS`: ``"iid"``, ``"orthogonal"`` (Haar
        blocks), ``"simplex"``, ``"sorf"``, ``"qmc"``, ``"qmc-halton"`` or ``"uniform"`` (discrete maps).
    norms : str
        Row norms of W: ``"chi"`` (rows marginally N(0, I)) or ``"fixed"`` (√d).
    kernel : str
        The kernel E[K̂] equals, in :data:`estimators.kernels.KERNELS`.
    description : str
        One line for tables and legends, with the source.
    family : str
        A key of :data:`FAMILIES`: the group a figure shows the row in.
    """

    name: str
    feature: str
    projection: str
    norms: str
    kernel: str
    description: str
    family: str

    @property
    def features_per_projection(self) -> int:
        """r/m: 2 for trig and hyperbolic, 1 otherwise (``ValueError`` for the hybrid maps)."""
        return feature_maps.features_per_projection(self.feature)

    def feature_width(self, m: int) -> int:
        """r, the width of φ with m projection rows (4k(n + 1) for the hybrid maps)."""
        return feature_maps.feature_width(self.feature, m)

    def draw(self, m, d, **kwargs):
        """Projection W (*batch_shape, m, d); keywords as in :mod:`estimators.projections`."""
        if self.projection == "iid":
            W = projections.iid(m, d, **kwargs)
            if self.norms == "fixed":
                xp = namespace(W)
                W = W * (d**0.5 / xp.linalg.vector_norm(W, axis=-1, keepdims=True))
            return W
        if self.projection == "orthogonal":
            return projections.orthogonal(m, d, norms=self.norms, **kwargs)
        return projections.sampler(self.projection)(m, d, norms=self.norms, **kwargs)

    def features(self, x, W, **kwargs):
        """φ(x) (…, L, r) for inputs (…, L, d); keywords as in :mod:`estimators.features`."""
        return feature_maps.feature_map(self.feature)(x, W, **kwargs)

    def estimate(self, x, y, W):
        """K̂(x, y) for pairs x, y (…, d) → (…); W (m, d) or (…, m, d) broadcasting.

        Hybrid rows use their direct form (:func:`estimators.hybrid_features.gram` of the pair, O(m)
        per pair instead of the 4k(n + 1)-wide features)."""
        x, y = x[..., None, :], y[..., None, :]
        if self.feature in hybrid_features.ORIENTATION:
            return hybrid_features.gram(self.feature, x, y, W)[..., 0, 0]
        phi_x, phi_y = self._pair_features(x, y, W)
        return kernels.estimate(phi_x, phi_y)[..., 0]

    def _pair_features(self, x, y, W):
        """φ(x), φ(y) (…, 1, r) for x, y (…, 1, d) and W (…, m, d).

        Where both sides take the same options, one call on x and y stacked along a new batch axis
        (…, 2, 1, d), with W and the options given a unit axis there, computes what depends on W
        alone (its checks, the discrete maps' counts) once; each side's values are those of its own
        call bit for bit (every operation acts on each batch index alone).
        """
        x_options, y_options = feature_maps.data_options(self.feature, x, y)
        if x_options is not y_options and (x_options or y_options):
            return self.features(x, W, **x_options), self.features(y, W, **y_options)
        xp = namespace(x)
        sides = xp.stack(xp.broadcast_arrays(x, y), axis=-3)
        options = {key: _side_axis(value) for key, value in x_options.items()}
        both = self.features(sides, W[..., None, :, :], **options)
        return both[..., 0, :, :], both[..., 1, :, :]

    @property
    def counts(self) -> bool:
        """Whether φ reads W through integer counts (the discretely-induced maps' inverse CDFs): a step
        function of W, so rounding W to a narrower dtype can move a count, and the estimate by far
        more than the rounding (studies that compute in float32 keep these rows in float64)."""
        return self.projection == "uniform"

    @property
    def nests(self) -> bool:
        """Whether the first m' rows of a draw of m rows are a draw of m' rows, so one draw serves every
        m' ≤ m (:meth:`estimate_prefixes`): iid rows, and independent blocks whose law does not depend
        on m (Haar, simplex: blocks of d rows; SORF: blocks of 2^⌈log₂ d⌉ rows), where a prefix is its
        first blocks with the last truncated, as ``draw(m')`` builds it. Not QMC (a point set's
        randomization depends on its size) nor the hybrid maps (their ω/ξ split depends on m)."""
        return self.projection in NESTED_PROJECTIONS and self.feature not in hybrid_features.ORIENTATION

    def estimate_prefixes(self, x, y, W, ms):
        """K̂(x, y) from the first m' rows of W for each m' in ``ms``: pairs (…, d) → (…, len(ms)).

        Equal to ``estimate(x, y, W[..., :m', :])`` for each m': a map's only dependence on m is its
        scale (φ(x)ᵀφ(y) = (1/m) Σ_i g_i(x, y), g_i the terms of projection i), so the terms of one
        feature computation are summed by projection and their prefix sums rescaled by m/m'.
        """
        if not self.nests:
            raise ValueError(f"estimator {self.name!r} does not nest: its W for m' rows is not a prefix")
        xp = namespace(x)
        m = W.shape[-2]
        ms = check_prefix_sizes(ms, m)
        x, y = x[..., None, :], y[..., None, :]
        x_options, y_options = feature_maps.data_options(self.feature, x, y)
        terms = self.features(x, W, **x_options) * self.features(y, W, **y_options)
        per_row = xp.sum(xp.reshape(terms[..., 0, :], (*terms.shape[:-2], -1, m)), axis=-2)
        running = xp.cumulative_sum(per_row, axis=-1)
        return xp.stack([running[..., size - 1] * (m / size) for size in ms], axis=-1)

    def gram_prefixes(self, x, y, W, ms):
        """Yield ``(m', Â)`` for each m' in ``ms`` (ascending), Â (…, L, M) from the first m' rows of W.

        Each Â equals ``estimate_gram(x, y, W[..., :m', :])``; the features are computed once and the
        Gram accumulated over the projections between consecutive m', so every prefix together costs
        one Gram of all m rows. Nesting rows only (:attr:`nests`).
        """
        if not self.nests:
            raise ValueError(f"estimator {self.name!r} does not nest: its W for m' rows is not a prefix")
        xp = namespace(x)
        m = W.shape[-2]
        ms = check_prefix_sizes(ms, m)
        x_options, y_options = feature_maps.data_options(self.feature, x, y)
        by_projection = []
        for rows, options in ((x, x_options), (y, y_options)):
            phi = self.features(rows, W, **options)
            by_projection.append(xp.reshape(phi, (*phi.shape[:-1], -1, m)))
        running, done = 0.0, 0
        for size in ms:
            blocks = [phi[..., done:size] for phi in by_projection]
            flat = [xp.reshape(block, (*block.shape[:-2], -1)) for block in blocks]
            running = running + xp.matmul(flat[0], xp.matrix_transpose(flat[1]))
            done = size
            yield size, running * (m / size)

    def estimate_gram(self, x, y, W):
        """Â (…, L, M) for x (…, L, d), y (…, M, d); data-dependent options by the homogeneity rule.

        Hybrid rows compute Â directly (:func:`estimators.hybrid_features.gram`, equal to the inner
        products of their 4k(n + 1)-wide features)."""
        if self.feature in hybrid_features.ORIENTATION:
            return hybrid_features.gram(self.feature, x, y, W)
        x_options, y_options = feature_maps.data_options(self.feature, x, y)
        return kernels.estimate_gram(self.features(x, W, **x_options), self.features(y, W, **y_options))

    def exact(self, x, y):
        """The kernel this estimator is unbiased for, on pairs (…, d) → (…)."""
        return kernels.exact(self.kernel, x, y)

    def theory_mean(self, x, y):
        """E[K̂(x, y)] from :func:`estimators.theory.mean` (float64 numpy)."""
        from . import theory

        return theory.mean(self.name, x, y)

    def theory_mse(self, x, y, m):
        """MSE of K̂(x, y) with m projections from :func:`estimators.theory.mse`."""
        from . import theory

        return theory.mse(self.name, x, y, m)


def _side_axis(option):
    """A per-pair option (…, 1, 1) with a unit axis before its last two (…, 1, 1, 1); floats as given."""
    return option[..., None, :, :] if hasattr(option, "shape") else option


FAMILIES = {
    "performers": "FAVOR / FAVOR+ (Performers)",
    "gerf": "FAVOR++ / FAVOR# (CRT, DERF)",
    "couplings": "couplings and norms: simplex, SORF, QMC, √d",
    "discrete": "discretely-induced (CRT)",
    "hybrid": "hybrid random features (HRF)",
    "arccos": "arc-cosine kernel (ReLU features)",
}
"""Estimator families (key → label for figures), in the order figures show them."""

_ROWS = [
    Estimator(
        "trig-iid", "trig", "iid", "chi", "softmax", "SM^trig_m, iid Gaussian ω (Perf. §2.3)", "performers"
    ),
    Estimator(
        "trig-ort", "trig", "orthogonal", "chi", "softmax", "SM^trig_m, block-ORF (Perf. §2.4)", "performers"
    ),
    Estimator(
        "positive-iid", "positive", "iid", "chi", "softmax", "SM^+_m, PRF iid (Perf. Lemma 1)", "performers"
    ),
    Estimator(
        "positive-ort", "positive", "orthogonal", "chi", "softmax", "SM^+_m, PRF + ORF (FAVOR+)", "performers"
    ),
    Estimator(
        "hyperbolic-iid", "hyperbolic", "iid", "chi", "softmax", "SM^hyp+_m, iid (Lemma 1)", "performers"
    ),
    Estimator(
        "hyperbolic-ort", "hyperbolic", "orthogonal", "chi", "softmax", "SM^hyp+_m, block-ORF", "performers"
    ),
    Estimator(
        "positive-iid-fixed", "positive", "iid", "fixed", "smreg", "SMREG^+_m, ω ~ U(√d S) iid", "couplings"
    ),
    Estimator(
        "positive-ort-fixed",
        "positive",
        "orthogonal",
        "fixed",
        "smreg",
        "SMREG^ort+_m (√d norms)",
        "couplings",
    ),
    Estimator(
        "relu-iid", "generalized", "iid", "chi", "arccos", "ReLU(Wx), iid (arc-cosine kernel)", "arccos"
    ),
    Estimator("relu-ort", "generalized", "orthogonal", "chi", "arccos", "ReLU(Wx), block-ORF", "arccos"),
    Estimator("oprf-iid", "oprf", "iid", "chi", "softmax", "OPRF (GERF s=+1, A*), iid (CRT 2022)", "gerf"),
    Estimator(
        "oprf-ort", "oprf", "orthogonal", "chi", "softmax", "OPRF + block-ORF, FAVOR++ (CRT 2022)", "gerf"
    ),
    Estimator("oprf-simplex", "oprf", "simplex", "chi", "softmax", "OPRF + simplex coupling", "couplings"),
    Estimator(
        "gerf-trig-iid", "gerf-trig", "iid", "chi", "softmax", "GERF s=−1, A=0.05, iid (CRT 2022)", "gerf"
    ),
    Estimator("saderf-iid", "saderf", "iid", "chi", "softmax", "SADERF (Ψ* then OPRF), iid (FAVOR#)", "gerf"),
    Estimator("saderf-ort", "saderf", "orthogonal", "chi", "softmax", "SADERF + block-ORF (FAVOR#)", "gerf"),
    Estimator(
        "positive-simplex",
        "positive",
        "simplex",
        "chi",
        "softmax",
        "SimRF: PRF + simplex (Reid 2023)",
        "couplings",
    ),
    Estimator(
        "positive-sorf-chi",
        "positive",
        "sorf",
        "chi",
        "softmax",
        "PRF + SORF, χ(d) norms (≈unbiased)",
        "couplings",
    ),
    Estimator(
        "positive-sorf-fixed",
        "positive",
        "sorf",
        "fixed",
        "smreg",
        "PRF + SORF, √d norms (≈SMREG, biased)",
        "couplings",
    ),
    Estimator(
        "positive-qmc", "positive", "qmc", "chi", "softmax", "PRF + scrambled Sobol' RQMC", "couplings"
    ),
    Estimator(
        "positive-qmc-halton",
        "positive",
        "qmc-halton",
        "chi",
        "softmax",
        "PRF + scrambled Halton",
        "couplings",
    ),
    Estimator(
        "poisson-iid", "poisson", "uniform", "chi", "softmax", "Poisson DIRF, rate λ* (CRT 2022)", "discrete"
    ),
    Estimator(
        "geometric-iid", "geometric", "uniform", "chi", "softmax", "geometric DIRF (CRT 2022)", "discrete"
    ),
    Estimator(
        "hybrid-iid",
        "hybrid",
        "iid",
        "chi",
        "softmax",
        "HRF angular hybrid, trig weight 1 − θ/π, exact at θ = 0, π (HRF 2022)",
        "hybrid",
    ),
    Estimator(
        "hybrid-notebook-iid",
        "hybrid-notebook",
        "iid",
        "chi",
        "softmax",
        "HRF angular hybrid as in the public notebook, trig weight θ/π",
        "hybrid",
    ),
]
_REGISTRY = {row.name: row for row in _ROWS}


def check_families() -> None:
    """``ValueError`` if a row names a family outside :data:`FAMILIES` (checked at import)."""
    unknown = sorted({row.family for row in _ROWS} - set(FAMILIES))
    if unknown:
        raise ValueError(f"family must be one of {tuple(FAMILIES)}, got {unknown}")


check_families()


def names() -> list[str]:
    """Registry keys in table order."""
    return list(_REGISTRY)


def get(name: str) -> Estimator:
    """The registry row ``name``; ``ValueError`` listing the known names otherwise."""
    check_choice(name, "estimator", _REGISTRY)
    return _REGISTRY[name]


def rows() -> list[Estimator]:
    """Every registry row in table order."""
    return list(_ROWS)


def feature_map_of(feature) -> str:
    """The feature-map name for ``feature``: a name in :data:`estimators.features.FEATURES`, or a
    registry estimator name (its feature map); ``ValueError`` naming both lists otherwise."""
    if isinstance(feature, str) and feature in feature_maps.FEATURES:
        return feature
    if isinstance(feature, str) and feature in _REGISTRY:
        return _REGISTRY[feature].feature
    raise ValueError(
        f"feature must be one of {tuple(feature_maps.FEATURES)} or a registry estimator "
        f"{tuple(_REGISTRY)}, got {feature!r}"
    )
