"""The original Performer JAX code (google-research ``performer/fast_attention/jax/fast_attention.py``)
as an audit target.

That file is on no package index and is not shipped with favor-bench: the user gives its path,
``--target google-research:/path/to/fast_attention.py`` or the environment variable
``GOOGLE_RESEARCH_FAST_ATTENTION``. It needs jax, gin-config and absl-py (all in the ``audit``
extra) and runs on CPU. The adapter records which file was audited by its sha256 (``version``);
the committed report names the upstream commit whose file has that hash.

The module is loaded from the path as ``fast_attention`` and JAX's float64 mode is switched on
(``jax_enable_x64``) so that its arithmetic is float64 (its ``jnp.zeros`` then default to float64).
It claims FAVOR+ (``make_fast_softmax_attention`` defaults: positive features, orthogonal blocks,
``ortho_scaling = 0``: χ(d) norms), registry row ``positive-ort``. Every capability calls its code:

* projections: ``FastAttentionviaLowRankDecomposition.draw_weights(PRNGKey(seed))`` of the object
  behind ``make_fast_softmax_attention(d, nb_features=m)`` (``GaussianOrthogonalRandomMatrix``);
* heads: one ``projection_matrix`` per attention function, broadcast over batch and heads;
* redraws: ``redraw_features=True`` (the default) seeds each call's draw with
  ``ceil(sum(query)·1e7)`` converted to int32: ``data_projections`` runs the attention on each
  input batch (as the query, B = H = 1) and returns the projection it drew;
* kernel estimate: ``nonnegative_softmax_kernel_feature_creator(is_query=True,
  normalize_data=False, eps=0)`` on the rows with their projections stacked (C·m, d) in one call
  (its scale (C·m)^{-1/2} becomes m^{-1/2} after a factor √C), times exp of the row max it
  subtracted (a per-row factor it adds and we undo);
* features: the attention object's ``kernel_feature_creator``, exactly as its attention calls it
  (d^{-1/4} scaling, ``eps = numerical_stabilizer = 1e-6``, per-row max for queries, max over
  sequence and features for keys);
* attention: ``make_fast_softmax_attention(d, nb_features=m, redraw_features=False,
  unidirectional=causal)`` with the audit's W as its ``projection_matrix``; inputs in its
  [batch, length, heads, channels] layout. It takes no mask (its ``bias`` argument is unused).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from ..protocol import Adapter
from . import pairwise

ENVIRONMENT_VARIABLE = "GOOGLE_RESEARCH_FAST_ATTENTION"
UPSTREAM = "google-research/google-research performer/fast_attention/jax/fast_attention.py"


def _load(path: Path):
    """The module at ``path``, loaded as ``fast_attention`` with JAX in float64 mode."""
    import jax

    jax.config.update("jax_enable_x64", True)
    spec = importlib.util.spec_from_file_location("fast_attention", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        raise ImportError(
            f"{path} needs jax, gin-config and absl-py: pip install 'favor-bench[audit]' ({error})"
        ) from error
    return module


def _resolve(path: str | None) -> Path:
    given = path or os.environ.get(ENVIRONMENT_VARIABLE)
    if not given:
        raise ValueError(
            "the google-research target needs the path of fast_attention.py: "
            f"--target google-research:/path/to/fast_attention.py or {ENVIRONMENT_VARIABLE}=/path/to/it "
            f"(the file is {UPSTREAM})"
        )
    resolved = Path(given).expanduser()
    if not resolved.is_file():
        raise ValueError(f"google-research: no file at {resolved} (expected {UPSTREAM})")
    return resolved


def adapter(path: str | None = None) -> Adapter:
    """The adapter for the fast_attention.py at ``path`` (or ``$GOOGLE_RESEARCH_FAST_ATTENTION``)."""
    import jax.numpy as jnp
    from jax import random

    resolved = _resolve(path)
    library = _load(resolved)
    sha256 = hashlib.sha256(resolved.read_bytes()).hexdigest()

    def attention_object(m, d, causal=False, redraw=False):
        function = library.make_fast_softmax_attention(
            int(d), nb_features=int(m), redraw_features=redraw, unidirectional=bool(causal)
        )
        return function, function.__self__

    def sample_projection(m, d, seed):
        _, attention_state = attention_object(m, d)
        return np.asarray(attention_state.draw_weights(random.PRNGKey(int(seed))), dtype=np.float64)

    def head_projections(m, d, heads, seed):
        return np.repeat(sample_projection(m, d, seed)[None], int(heads), axis=0)

    def data_projections(m, d, inputs):
        function, attention_state = attention_object(m, d, redraw=True)
        draws = []
        for batch in np.asarray(inputs, dtype=np.float64):
            query = jnp.asarray(batch[None, :, None, :])
            function(query, query, query)
            draws.append(np.asarray(attention_state.projection_matrix, dtype=np.float64))
        return np.stack(draws)

    def feature_rows(rows, W):
        count, m, d = W.shape
        stacked = W.reshape(count * m, d)
        phi = library.nonnegative_softmax_kernel_feature_creator(
            jnp.asarray(rows[None, None]),
            jnp.asarray(stacked),
            (2,),
            (0, 1),
            None,
            True,
            normalize_data=False,
            eps=0.0,
        )
        row_max = np.max(rows @ stacked.T, axis=-1, keepdims=True)
        phi = np.asarray(phi, dtype=np.float64)[0, 0] * np.exp(row_max) * np.sqrt(count)
        return pairwise.diagonal_blocks(phi, count, m)

    def kernel_estimate(x, y, W):
        return pairwise.estimate(feature_rows, x, y, W)

    def features(x, W, role):
        x = np.asarray(x, dtype=np.float64)
        _, attention_state = attention_object(*np.shape(W))
        data = jnp.asarray(x.reshape(-1, 1, *x.shape[-2:]))
        phi = attention_state.kernel_feature_creator(
            data, jnp.asarray(W), (2,), (0, 1), None, role == "query"
        )
        return np.asarray(phi, dtype=np.float64).reshape(*x.shape[:-1], -1)

    def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
        if mask is not None:
            raise ValueError("fast_attention.py takes no mask (declared mask='none')")
        W = np.asarray(W)
        function, attention_state = attention_object(W.shape[0], W.shape[1], causal=causal)
        attention_state.projection_matrix = jnp.asarray(W, dtype=dtype)
        layout = [jnp.asarray(np.transpose(a, (0, 2, 1, 3)), dtype=dtype) for a in (q, k, v)]
        out = np.asarray(function(*layout), dtype=np.float64)
        return np.transpose(out, (0, 2, 1, 3))

    return Adapter(
        name="google-research",
        claims="positive-ort",
        layout="[batch, length, heads, channels] jax arrays",
        version=f"fast_attention.py sha256 {sha256}",
        sample_projection=sample_projection,
        head_projections=head_projections,
        data_projections=data_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        precision="float64",
        mask="none",
        notes=(
            f"file audited: {resolved.name}, sha256 {sha256} ({UPSTREAM})",
            "defaults audited: make_fast_softmax_attention(nb_features=256, ortho_features=True, "
            "ortho_scaling=0.0, redraw_features=True, numerical_stabilizer=1e-6, used as the features' ε)",
            "projection blocks: jnp.linalg.qr(...) transposed with no sign(diag R) correction",
            "redraw seed: int32(ceil(sum(query)·1e7)); |sum(query)| > 214.75 saturates to 2^31 − 1 or −2^31",
            "key stabilizer: max over sequence and features per (batch, head), then ε = 1e-6 added",
            "JAX float64 mode switched on for the audit (jax_enable_x64)",
        ),
    )
