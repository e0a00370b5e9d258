"""torch-geometric's ``PerformerAttention`` (PyPI ``torch-geometric``) as an audit target.

Audited: version 2.8.1 (``pip install 'favor-bench[audit]'``; pure Python on top of PyTorch, runs on
CPU as is), module ``torch_geometric.nn.attention.performer``. Its default kernel is generalized
ReLU attention (Performers §2.3 and App. A.4): φ(x) = ReLU(Wx) + 0.001 with block-orthogonal W,
so it claims registry row ``relu-ort`` (ReLU features, Haar blocks, χ(d) norms; E[K̂] is the
order-1 arc-cosine kernel). Every capability calls its code:

* projections: ``orthogonal_matrix(m, d)`` (the sampler of ``PerformerProjection`` and of
  ``redraw_projection_matrix``), seeded through ``torch.manual_seed``. Its rows have unit norm
  (the χ(d) norm multiplier is commented out in the source);
* heads and redraws: one ``projection_matrix`` per layer, expanded over batch and heads;
  ``redraw_projection_matrix()`` draws the next one from the global torch stream;
* kernel estimate: ``generalized_kernel(x, W, epsilon=0)`` of x and of y, times d/m. Both factors
  are constants of the whole estimate that cancel in attention's normalization: 1/m because the
  library does not scale its features by m^{-1/2}, d because its rows have E‖w‖² = 1 instead of d
  (ReLU is homogeneous of degree 1, so ReLU(w·x)ReLU(w·y) scales with ‖w‖²);
* features: ``generalized_kernel`` with its defaults (ReLU, ``epsilon = 0.001``, no input scaling);
* attention: the public ``PerformerAttention`` module with identity projections (its input is the
  concatenation [q, k, v]; ``q``, ``k``, ``v`` select its thirds; ``attn_out`` returns the first),
  so its mask runs as in a model. It has no causal mode.
"""

from __future__ import annotations

import numpy as np

from ..protocol import Adapter
from . import pairwise
from .torch_arrays import seeded, single_thread, to_host, to_torch

PACKAGE = "torch-geometric"


def _library():
    try:
        from torch_geometric.nn.attention import performer
    except ImportError as error:
        raise ImportError(
            "the torch-geometric audit needs the package: pip install 'favor-bench[audit]' "
            "(or pip install torch-geometric==2.8.1)"
        ) from error
    return performer


def sample_projection(m, d, seed):
    """W (m, d) from ``orthogonal_matrix(m, d)`` after ``torch.manual_seed(seed)``."""
    seeded(seed)
    return to_host(_library().orthogonal_matrix(int(m), int(d)))


def head_projections(m, d, heads, seed):
    """(heads, m, d): ``PerformerProjection`` holds one W and expands it over every head."""
    W = to_host(_layer(1, int(d), int(m), seed).fast_attn.projection_matrix)
    return np.repeat(W[None], int(heads), axis=0)


def redraw_projections(m, d, count, seed):
    """(count, m, d): the initial W and the W after each ``redraw_projection_matrix()``."""
    layer = _layer(1, int(d), int(m), seed)
    draws = [to_host(layer.fast_attn.projection_matrix)]
    for _ in range(int(count) - 1):
        layer.redraw_projection_matrix()
        draws.append(to_host(layer.fast_attn.projection_matrix))
    return np.stack(draws)


def _layer(heads, d, m, seed):
    """``PerformerAttention`` over [q, k, v] (width 3·heads·d) with identity projections and m rows.

    The layer sizes its projection int(d ln d) itself; the audit's m is set on its
    ``PerformerProjection`` (``num_rows`` and a fresh ``orthogonal_matrix(m, d)`` draw).
    """
    import torch

    library = _library()
    seeded(seed)
    width = heads * d
    layer = library.PerformerAttention(channels=3 * width, heads=heads, head_channels=d)
    layer.fast_attn.num_rows = m
    seeded(seed)
    layer.fast_attn.projection_matrix = library.orthogonal_matrix(m, d)
    eye = torch.eye(3 * width)
    with torch.no_grad():
        for linear, start in ((layer.q, 0), (layer.k, width), (layer.v, 2 * width)):
            linear.weight.copy_(eye[start : start + width])
        layer.attn_out.weight.zero_()
        layer.attn_out.weight[:width].copy_(torch.eye(width))
        layer.attn_out.bias.zero_()
    return layer.eval()


def kernel_estimate(x, y, W):
    """K̂(x, y) = (d/m)·Σ_j ReLU(w_j·x)ReLU(w_j·y) from ``generalized_kernel(epsilon=0)``, (…) pairs."""
    W = np.asarray(W)
    m, d = W.shape[-2:]
    return (d / m) * pairwise.estimate(_feature_rows, x, y, W)


def _feature_rows(rows, W):
    """Each row's features (C, m) under its own W (C, m, d): one library call on the stacked W."""
    count, m, d = W.shape
    data = to_torch(rows)[None, None]
    phi = _library().generalized_kernel(data, to_torch(W.reshape(count * m, d)), epsilon=0.0)[0, 0]
    return pairwise.diagonal_blocks(to_host(phi), count, m)


def features(x, W, role):
    """``generalized_kernel`` with its defaults (ReLU, ε = 0.001), the same for queries and keys."""
    x = np.asarray(x)
    rows = to_torch(x.reshape(-1, 1, *x.shape[-2:]))
    return to_host(_library().generalized_kernel(rows, to_torch(W))).reshape(*x.shape[:-1], -1)


def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
    """``PerformerAttention.forward`` with identity projections on [q, k, v] → (B, H, L, d) float64."""
    import torch

    if causal:
        raise ValueError("torch-geometric's PerformerAttention has no causal mode (declared causal=False)")
    q, k, v, W = (np.asarray(a) for a in (q, k, v, W))
    batch, heads, length, d = q.shape
    if v.shape[-1] != d:
        raise ValueError(f"PerformerAttention needs value width = head dimension d={d}, got {v.shape[-1]}")
    layer = _layer(heads, d, W.shape[0], 0).to(getattr(torch, dtype))
    layer.fast_attn.projection_matrix = to_torch(W, dtype)
    tokens = np.concatenate([_merge_heads(a) for a in (q, k, v)], axis=-1)
    keep = None if mask is None else torch.from_numpy(np.array(mask, dtype=bool))
    with torch.no_grad():
        out = to_host(layer(to_torch(tokens, dtype), mask=keep))
    out = out[..., : heads * d].reshape(batch, length, heads, d)
    return np.transpose(out, (0, 2, 1, 3))


def _merge_heads(array):
    """(B, H, L, e) → (B, L, H·e), the layer's (batch, nodes, channels) layout."""
    batch, heads, length, width = array.shape
    return np.transpose(array, (0, 2, 1, 3)).reshape(batch, length, heads * width)


def adapter() -> Adapter:
    """The torch-geometric adapter (claims ``relu-ort``: ReLU features on block-orthogonal rows)."""
    from importlib.metadata import version

    _library()
    single_thread()
    return Adapter(
        name=PACKAGE,
        claims="relu-ort",
        layout="(B, N, H·d) node features; heads split inside the layer",
        version=version(PACKAGE),
        sample_projection=sample_projection,
        head_projections=head_projections,
        redraw_projections=redraw_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        dtypes=("float32", "float16", "bfloat16"),
        causal=False,
        notes=(
            "defaults audited: PerformerAttention(kernel=ReLU()), generalized_kernel epsilon=0.001, "
            "m = int(d·ln d) rows (the audit sets m)",
            "projection blocks: torch.linalg.qr(...).q.t() with no sign(diag R) correction; rows of unit "
            "norm (the χ(d) multiplier is commented out)",
            "kernel estimate reported ×d/m: the library's features carry no m^{-1/2} and unit-norm rows; "
            "both constants cancel in attention",
            "padding mask (PerformerAttention.forward): masked values are zeroed; keys are not removed",
        ),
    )
