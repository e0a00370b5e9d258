"""The dense-reference check: a library's FAVOR output equals the dense form D̂⁻¹ÂV of the features
of the same W (stabilizers cancel, ε = 0), and the sub-checks that name the cause of a difference
(a constant ε in the normalizer, a missing normalizer, a shift that does not cancel, the feature
map or the attention sums).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from studies.core import stats

from .attention_calls import (
    attention_features,
    attention_inputs,
    call_attention,
    dense_reference,
    draw_projection,
    no_features,
    roundoff_bound,
    unshifted_features,
)
from .core import Settings, read_only, rng_for, verdict

OUTLIER = 4.0
DENSE_LENGTH = 80


def check_dense_reference(adapter, settings: Settings):
    """Output equals dense FAVOR from the same W: D̂⁻¹ÂV with unshifted, ε = 0 features (claims 15, 16).

    Performers Eq. 4 and App. B.1: bidirectional FAVOR and causal prefix-sum FAVOR equal the quadratic
    form D̂⁻¹ÂV (causal: tril Â) of the same features, and row-wise stabilizer shifts cancel in D̂⁻¹Â
    when ε = 0 (theory.md §8). Inputs: N(0, 1) entries, and the same with one key scaled ×4 (an
    outlier that moves any key maximum), L = 80 (more than one 64-position chunk of a chunked
    prefix sum), d = 8, m = 16 (m = d for a library that builds only that), bidirectional and (when
    supported) causal. Pass when every |o_library − o_reference| is within the round-off bound of the
    working precision
    (:func:`~studies.audit.checks.precision.attention_bound`).

    Diagnosis (sub-checks, per mode, on the failing cells and quoting them): a constant ε added to
    the normalizer, D̂⁻¹ → (D̂ + ε)⁻¹, is named only when the dense form rerun with the ε fitted to
    the output (:func:`denominator_eps`; the library's own features when it has ``features``, else
    favor-bench's) reproduces every cell of that mode within its round-off bound. Otherwise: outputs
    for constant values v ≡ 1 must be 1 (a missing or wrong normalizer fails it, and is named the
    whole difference only when the reference output times that v ≡ 1 output reproduces the
    library's, which holds exactly when the normalizer is all that differs); a deviation that
    grows more than tenfold with the outlier key is reported as a stabilizer shift that does not
    cancel or an ε added after a shift; with the ``features`` capability, the dense form of the
    library's own features on the worst failing cell locates the difference in the feature map (it
    reproduces the output) or in the attention sums (it does not). A mode none of these explains is
    reported as cause not established.
    """
    name, title = "dense-reference", "Equals dense FAVOR from the same W (stabilizers cancel, ε = 0)"
    q, k, v = attention_inputs(rng_for(settings, name), length=DENSE_LENGTH)
    m = attention_features(adapter, q.shape[-1])
    if m is None:
        return no_features(name, title, q.shape[-1])
    W = draw_projection(adapter, settings, name, m, q.shape[-1])
    outlier = k.copy()
    outlier[..., 0, :] *= OUTLIER
    cells, lines = [], []
    for causal in (False, True) if adapter.causal else (False,):
        for label, keys in (("plain", k), ("key outlier", outlier)):
            out = call_attention(adapter, q, keys, v, W, causal=causal)
            reference, gram = dense_reference(adapter.claims, q, keys, v, W, causal)
            bound, precision = roundoff_bound(adapter, out, q, keys, v, W, gram)
            cell = DenseCell(causal, label, keys, out, float(np.abs(out - reference).max()), bound)
            cells.append(cell)
            lines.append(
                f"{cell.mode:13s} {label:11s} max |o − o_ref| = {cell.difference:.2e} "
                f"(bound {bound:.1e}, {precision})"
            )
    worst = max(cell.difference / cell.bound for cell in cells)
    diagnosis = [] if worst <= 1 else _dense_diagnosis(adapter, q, v, W, cells)
    return verdict(
        name,
        title,
        worst <= 1,
        max(cell.difference for cell in cells) / float(np.max(np.abs(v))),
        statistic=f"largest difference / round-off bound = {worst:.2f}",
        effect=", ".join(f"{cell.name}: {cell.difference:.2e}" for cell in cells),
        tolerance="round-off bound 2((d + 2)a + r + L + 2)·u·κ·max|v| of the working precision",
        diagnosis=diagnosis,
        details=lines,
    )


@dataclass(frozen=True)
class DenseCell:
    """One call of the dense-reference check: mode, keys, the library's output (B, H, L, d_v), its
    largest difference from the reference and the round-off bound of that call."""

    causal: bool
    label: str
    keys: np.ndarray
    out: np.ndarray
    difference: float
    bound: float

    @property
    def mode(self) -> str:
        return "causal" if self.causal else "bidirectional"

    @property
    def name(self) -> str:
        return f"{self.mode} {self.label}"

    @property
    def failed(self) -> bool:
        return self.difference > self.bound

    def quote(self) -> str:
        return f"{self.name} ({self.difference:.2e}, bound {self.bound:.1e})"


def _dense_diagnosis(adapter, q, v, W, cells) -> list[str]:
    lines = []
    for causal in sorted({cell.causal for cell in cells if cell.failed}):
        mode_cells = [cell for cell in cells if cell.causal == causal]
        failing = [cell for cell in mode_cells if cell.failed]
        worst = max(failing, key=lambda cell: cell.difference / cell.bound)
        quoted = ", ".join(cell.quote() for cell in failing)
        eps_line = _eps_diagnosis(adapter, q, v, W, mode_cells, quoted)
        if eps_line:
            lines.append(eps_line)
            continue
        found = _normalizer_diagnosis(adapter, q, v, W, worst) + _outlier_diagnosis(mode_cells)
        if adapter.has("features"):
            found.append(_own_features_diagnosis(adapter, q, v, W, worst))
        lines += found or [
            f"{quoted}: no constant ε in the normalizer reproduces it, constant values come back as 1 and "
            "one outlier key does not make it grow: cause not established"
        ]
    return lines


def denominator_eps(gram, v, out) -> float | None:
    """The constant ε for which (Âv)/(D̂ + ε) best matches ``out``: Â = ``gram`` (…, L, L), v (…, L, d_v),
    out (…, L, d_v), D̂ = Â1. Weighted least squares of o(D̂ + ε) = Âv with weights 1/D̂² (each row's
    output-space error to first order); exact when ``out`` is that form. None when no row is visible
    or the outputs are all 0."""
    numerator, total = gram @ v, gram.sum(axis=-1, keepdims=True)
    visible = np.broadcast_to(total > 0, out.shape)
    ratio = np.where(visible, out / np.where(total > 0, total, 1.0), 0.0)
    scale = float(np.sum(ratio**2))
    if scale == 0:
        return None
    residual = np.where(visible, (numerator - total * out) / np.where(total > 0, total, 1.0), 0.0)
    return float(np.sum(ratio * residual) / scale)


def _eps_diagnosis(adapter, q, v, W, mode_cells, quoted) -> str:
    """The ε line when one constant ε in the normalizer reproduces every cell of the mode within its
    round-off bound and the same dense form without it (ε = 0) does not, else ''."""
    own = adapter.has("features")
    grams = [_cell_gram(adapter, q, cell.keys, W, cell.causal, own) for cell in mode_cells]
    eps = denominator_eps(
        np.concatenate(grams, axis=0),
        np.concatenate([v] * len(mode_cells)),
        np.concatenate([cell.out for cell in mode_cells]),
    )
    if eps is None:
        return ""
    without = _eps_residuals(grams, v, mode_cells, 0.0)
    residuals = _eps_residuals(grams, v, mode_cells, eps)
    needed = any(r > cell.bound for r, cell in zip(without, mode_cells, strict=True))
    if not needed or any(r > cell.bound for r, cell in zip(residuals, mode_cells, strict=True)):
        return ""
    features = "the library's own features" if own else "favor-bench's unshifted features (ε in their scale)"
    return (
        f"{quoted}: a constant ε = {eps:.2e} added to the normalizer reproduces it: the dense form "
        f"(Âv)/(D̂ + ε) of {features} matches the output within round-off in every {mode_cells[0].mode} "
        f"cell (largest residual {max(residuals):.1e}, bounds ≥ {min(c.bound for c in mode_cells):.1e})"
    )


def _eps_residuals(grams, v, cells, eps) -> list[float]:
    """max |o − (Âv)/(D̂ + ε)| of each cell."""
    return [
        float(np.abs(cell.out - (gram @ v) / (gram.sum(axis=-1, keepdims=True) + eps)).max())
        for cell, gram in zip(cells, grams, strict=True)
    ]


def _cell_gram(adapter, q, keys, W, causal, own) -> np.ndarray:
    """Â of one cell (tril when causal): from the library's own features when ``own``, else from
    favor-bench's unshifted ones."""
    if own:
        q_read, k_read, W_read = read_only(q, keys, W)
        phi_q = stats.host(adapter.features(q_read, W_read, "query"))
        phi_k = stats.host(adapter.features(k_read, W_read, "key"))
        gram = phi_q @ np.swapaxes(phi_k, -1, -2)
    else:
        gram = unshifted_features(adapter.claims, q, W) @ np.swapaxes(
            unshifted_features(adapter.claims, keys, W), -1, -2
        )
    return np.tril(gram) if causal else gram


def _normalizer_diagnosis(adapter, q, v, W, cell) -> list[str]:
    """Constant values v ≡ 1 on the worst failing cell's keys and mode must come back as 1. When they
    do not, the library's normalizer differs from D̂ by the factor o₁ = D̂/D̂' its v ≡ 1 output gives;
    if that is the only difference, o = o_ref · o₁ exactly, and the check says whether that product
    reproduces the output (within the cell's bound times max(1, max|o₁|), the product's scale)."""
    ones = np.ones_like(v)
    constant = call_attention(adapter, q, cell.keys, ones, W, causal=cell.causal)
    _, gram = dense_reference(adapter.claims, q, cell.keys, ones, W, cell.causal)
    bound, _ = roundoff_bound(adapter, constant, q, cell.keys, ones, W, gram)
    off = float(np.abs(constant - 1).max())
    if off <= bound:
        return []
    reference, _ = dense_reference(adapter.claims, q, cell.keys, v, W, cell.causal)
    residual = float(np.abs(cell.out - reference * constant).max())
    scale = max(1.0, float(np.max(np.abs(constant))))
    found = (
        f"{cell.quote()}: outputs for constant values v ≡ 1 are not 1 "
        f"(largest |o − 1| = {off:.2e}, bound {bound:.1e})"
    )
    if residual <= cell.bound * scale:
        return [
            f"{found}, and the reference output times that v ≡ 1 output reproduces the output "
            f"(residual {residual:.1e}): the normalizer D̂⁻¹ is missing or wrong, and that is the whole "
            "difference"
        ]
    return [
        f"{found}: the normalizer is off too, but the reference output times that v ≡ 1 output leaves "
        f"{residual:.1e} of the difference: a further cause acts, not established by this sub-check"
    ]


def _outlier_diagnosis(mode_cells) -> list[str]:
    plain, spiked = (next(c for c in mode_cells if c.label == label) for label in ("plain", "key outlier"))
    if not spiked.failed or spiked.difference <= 10 * max(plain.difference, np.finfo(float).tiny):
        return []
    return [
        f"{spiked.quote()}: the deviation grows ×{spiked.difference / max(plain.difference, 1e-300):.0f} "
        f"with one outlier key ({plain.difference:.1e} → {spiked.difference:.1e}): a stabilizer shift "
        "that does not cancel, or an ε added after it"
    ]


def _own_features_diagnosis(adapter, q, v, W, cell) -> str:
    """The worst failing cell's output against the dense form D̂⁻¹ÂV (causal: tril Â) of the
    library's OWN features (its stabilizer and ε included) on the same keys: agreement puts the
    difference in the feature map, disagreement in the attention sums."""
    gram = _cell_gram(adapter, q, cell.keys, W, cell.causal, own=True)
    own = (gram @ v) / gram.sum(axis=-1, keepdims=True)
    bound, _ = roundoff_bound(adapter, cell.out, q, cell.keys, v, W, gram)
    difference = float(np.abs(cell.out - own).max())
    if difference <= bound:
        return (
            f"{cell.quote()}: the dense form of the library's own features reproduces its output within "
            f"round-off ({difference:.1e} ≤ {bound:.1e}), so the difference comes from its feature map "
            "(an ε, or a shift that does not cancel), not from the attention sums"
        )
    return (
        f"{cell.quote()}: the output differs from the dense form of the library's own features by "
        f"{difference:.1e} (bound {bound:.1e}), so those attention sums (prefix sums, normalizer, an ε "
        "added to them) do not implement D̂⁻¹ÂV"
    )
