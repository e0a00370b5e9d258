"""TF Model Garden's ``KernelAttention`` (PyPI ``tf-models-official``) as audit targets.

Audited: tf-models-official 2.20.0 with tensorflow-cpu 2.20.0 (the ``tf`` extra:
``pip install 'favor-bench[tf]'``; heavy, not installed by ``make setup`` nor run in CI). Module
``official.nlp.modeling.layers.kernel_attention``. Two targets:

* ``tf-models-official``: ``feature_transform="exp"``, FAVOR+ (Performers Lemma 1: positive
  features on ``create_projection_matrix``'s block-orthogonal rows with χ(d) norms), registry row
  ``positive-ort``;
* ``tf-models-official:expplus``: ``feature_transform="expplus"``, FAVOR++ (OPRF with the
  data-dependent A of Likhosherstov et al. 2022, "Chefs' Random Tables", Eq. 9), registry row
  ``oprf-ort``.

Every capability calls its code:

* projections: ``create_projection_matrix(m, d, seed=[s, s + 1])`` (how the layer draws its fixed
  projection from its ``seed``); heads share the layer's one matrix; redraws are the layer's
  training-time ``create_projection_matrix(m, d)`` calls (no seed: the stateful path) after
  ``tf.random.set_seed(seed)``;
* kernel estimate: the layer's feature transform ``_TRANSFORM_MAP[name]`` on the pairs, all rows in
  one call with their projections stacked (C·m, d) (its scale (C·m)^{-1/2} becomes m^{-1/2} after a
  factor √C), every stabilizer shift undone and ``numerical_stabilizer = 0`` (``exp``: the shift by
  the max over sequence, heads and features is multiplied back; ``expplus``: queries and keys are
  called with each other as ``other_data``, as the layer does, its d^{-1/4} input normalization is
  cancelled by feeding x·d^{1/4}, and ``numerical_renormalizer=False``; its A is computed per batch
  entry, so a chunk of pairs goes in one call as a batch, the projections stacked as for ``exp``);
* features: the transform as ``_compute_attention`` calls it (inputs scaled by (1/√d)^{1/2} first;
  ``expplus`` gets the same inputs as ``other_data``);
* attention: ``KernelAttention._compute_attention`` (everything the layer does after its dense
  projections) with the audit's W as the layer's projection; causal is ``use_causal_windowed`` with
  ``causal_chunk_length = 1`` and a window covering the whole sequence (exact causal attention);
  masks are its ``attention_mask`` (any key mask).

The layer computes in float32 (its projection and feature scale are float32 whatever it is given).
"""

from __future__ import annotations

import numpy as np

from ..protocol import Adapter
from . import pairwise

PACKAGE = "tf-models-official"
VARIANTS = {"exp": "positive-ort", "expplus": "oprf-ort"}


def _library():
    try:
        import tensorflow as tf
        from official.nlp.modeling.layers import kernel_attention
    except ImportError as error:
        raise ImportError(
            "the tf-models-official audit needs TensorFlow and the Model Garden: "
            "pip install 'favor-bench[tf]' (tensorflow-cpu, tf-models-official without its "
            "dependencies, gin-config); see studies/audit/adapters/tf_kernel_attention.py"
        ) from error
    return tf, kernel_attention


def adapter(variant: str = "exp") -> Adapter:
    """The adapter for ``feature_transform=variant``: ``exp`` (FAVOR+) or ``expplus`` (FAVOR++)."""
    from importlib.metadata import version

    if variant not in VARIANTS:
        raise ValueError(f"tf-models-official variant must be one of {tuple(VARIANTS)}, got {variant!r}")
    tf, library = _library()
    transform = library._TRANSFORM_MAP[variant]

    def constant(array):
        return tf.constant(np.asarray(array, dtype=np.float32))

    def sample_projection(m, d, seed):
        seed = int(seed) % 2**31
        projection = library.create_projection_matrix(int(m), int(d), seed=tf.constant([seed, seed + 1]))
        return projection.numpy().astype(np.float64)

    def head_projections(m, d, heads, seed):
        return np.repeat(sample_projection(m, d, seed)[None], int(heads), axis=0)

    def redraw_projections(m, d, count, seed):
        tf.random.set_seed(int(seed) % 2**31)
        draws = [library.create_projection_matrix(int(m), int(d)).numpy() for _ in range(int(count))]
        return np.stack(draws).astype(np.float64)

    def exp_feature_rows(rows, W):
        count, m, d = W.shape
        stacked = W.reshape(count * m, d)
        phi = transform(constant(rows[None, :, None, :]), None, True, constant(stacked)).numpy()[0, :, 0]
        phi = phi.astype(np.float64) * np.exp(np.max(rows @ stacked.T)) * np.sqrt(count)
        return pairwise.diagonal_blocks(phi, count, m)

    def kernel_estimate(x, y, W):
        if variant == "exp":
            return pairwise.estimate(exp_feature_rows, x, y, W)
        return _expplus_estimate(x, y, W)

    def expplus_feature_rows(rows, other, W):
        """Features (C, m) of rows (C, d), row c under W[c] (C, m, d) with ``other[c]`` as its
        ``other_data``: one call, the C projections stacked (C·m, d); A is computed per batch entry."""
        count, m, d = W.shape
        data, other_data = (constant(d**0.25 * a[:, None, None, :]) for a in (rows, other))
        options = {"numerical_stabilizer": 0.0, "numerical_renormalizer": False}
        stacked = constant(W.reshape(count * m, d))
        phi = transform(data, other_data, True, stacked, **options).numpy()[:, 0, 0]
        return pairwise.diagonal_blocks(phi.astype(np.float64) * np.sqrt(count), count, m)

    def _expplus_estimate(x, y, W):
        x, y, W = (np.asarray(a, dtype=np.float64) for a in (x, y, W))
        batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1], W.shape[:-2])
        m, d = W.shape[-2:]
        x, y = (np.broadcast_to(a, (*batch, d)).reshape(-1, d) for a in (x, y))
        W = np.broadcast_to(W, (*batch, m, d)).reshape(-1, m, d)
        estimates = np.empty(W.shape[0])
        for start in range(0, W.shape[0], pairwise.CHUNK):
            rows = slice(start, start + pairwise.CHUNK)
            phi_x = expplus_feature_rows(x[rows], y[rows], W[rows])
            phi_y = expplus_feature_rows(y[rows], x[rows], W[rows])
            estimates[rows] = np.sum(phi_x * phi_y, axis=-1)
        return estimates.reshape(batch)

    def features(x, W, role):
        x = np.asarray(x, dtype=np.float64)
        d = x.shape[-1]
        data = constant(x.reshape(-1, x.shape[-2], 1, d) * d**-0.25)
        phi = transform(data, data, role == "query", constant(W)).numpy()
        return phi.astype(np.float64).reshape(*x.shape[:-1], -1)

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        q, k, v, W = (np.asarray(a) for a in (q, k, v, W))
        _, heads, length, d = q.shape
        options = {}
        if causal:
            options = {"use_causal_windowed": True, "causal_chunk_length": 1, "causal_window_length": length}
        layer = library.KernelAttention(
            feature_transform=variant, num_random_features=W.shape[0], num_heads=heads, key_dim=d, **options
        )
        layer._projection_matrix = constant(W)
        layout = [constant(np.transpose(a, (0, 2, 1, 3))) for a in (q, k, v)]
        keep = None if mask is None else constant(np.asarray(mask, dtype=np.float32))
        out = layer._compute_attention(*layout, variant, False, attention_mask=keep, training=False)
        return np.transpose(out.numpy().astype(np.float64), (0, 2, 1, 3))

    return Adapter(
        name=PACKAGE if variant == "exp" else f"{PACKAGE}:{variant}",
        claims=VARIANTS[variant],
        layout="[B, T, N, H] tf tensors (after the layer's dense projections)",
        version=f"{version(PACKAGE)} (tensorflow {tf.__version__})",
        sample_projection=sample_projection,
        head_projections=head_projections,
        redraw_projections=redraw_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        precision="float32",
        causal=variant == "exp",
        notes=(
            f"defaults audited: KernelAttention(feature_transform={variant!r}, seed=0, redraw=False), "
            "denominator + 1e-6 (_NUMERIC_STABLER)",
            "projection blocks (create_projection_matrix): tf.linalg.qr(...) transposed with no sign(diag R) "
            "correction; without a seed the row norms come from the fixed dummy seed [0, 1]",
            "exp features: exp(Wx − max over sequence, heads and features) · exp(−‖x‖²/2) / √m, the same "
            "shift for queries and keys",
            "expplus features: inputs scaled by (1/√d)^{1/2} in _compute_attention and again by d^{-1/4} "
            "inside expplus (normalize_data=True); feature ε = 1e-6",
        ),
    )
