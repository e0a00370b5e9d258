"""performer-pytorch (lucidrains, PyPI ``performer-pytorch``) as an audit target.

Every capability calls the library's own code path:

* precision: detected per call (the sampler computes in float32, attention in the dtype asked for);
* projections: ``gaussian_orthogonal_random_matrix(m, d)`` (``FastAttention``'s sampler, default
  ``ortho_scaling=0``: χ(d) norms, so it claims to be FAVOR+, registry row ``positive-ort``), seeded
  through ``torch.manual_seed``; one matrix is registered per ``FastAttention`` and repeated over
  batch and heads; ``redraw_projection_matrix`` draws the next one from the global torch stream;
* features: ``softmax_kernel`` with its defaults (d^{-1/4} input scaling, per-row max for queries,
  max over sequence and features for keys, ``eps = 1e-4``);
* kernel estimate: ``softmax_kernel(is_query=True, eps=0)`` of x and of y, times exp of the row max
  the library subtracted (a per-row constant that it adds and we undo; nothing else is changed);
* attention: the public ``SelfAttention`` module with identity projections (the input is the
  concatenation [q, k, v] and ``to_q``, ``to_k``, ``to_v`` select its thirds), so masks and the
  causal path (the non-CUDA prefix-sum fallback on CPU) run exactly as in a model.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np

from ..protocol import Adapter

PACKAGE = "performer-pytorch"
CHUNK = 64


def _library():
    try:
        import performer_pytorch.performer_pytorch as library
    except ImportError as error:
        raise ImportError(
            "the performer-pytorch audit needs the package: pip install 'favor-bench[audit]' "
            "(or pip install --no-deps performer-pytorch einops local-attention axial-positional-embedding "
            "hyper-connections torch-einops-utils)"
        ) from error
    return library


def _to_torch(array, dtype="float64"):
    import torch

    return torch.from_numpy(np.array(array, dtype=np.float64, order="C")).to(getattr(torch, dtype))


def _to_host(tensor):
    return tensor.detach().to(dtype=_torch_float64()).cpu().numpy()


def _torch_float64():
    import torch

    return torch.float64


def sample_projection(m, d, seed):
    """W (m, d) from ``gaussian_orthogonal_random_matrix`` with the global torch seed set to ``seed``."""
    import torch

    torch.manual_seed(int(seed))
    return _to_host(_library().gaussian_orthogonal_random_matrix(int(m), int(d)))


def head_projections(m, d, heads, seed):
    """(heads, m, d): ``FastAttention`` registers one W and repeats it over batch and heads."""
    module = _fast_attention(int(d), int(m), seed)
    W = _to_host(module.projection_matrix)
    return np.repeat(W[None], int(heads), axis=0)


def redraw_projections(m, d, count, seed):
    """(count, m, d): the initial W and the W of each ``redraw_projection_matrix`` call after it."""
    import torch

    module = _fast_attention(int(d), int(m), seed)
    draws = [_to_host(module.projection_matrix)]
    for _ in range(int(count) - 1):
        module.redraw_projection_matrix(torch.device("cpu"))
        draws.append(_to_host(module.projection_matrix))
    return np.stack(draws)


def _fast_attention(d, m, seed):
    import torch

    torch.manual_seed(int(seed))
    return _library().FastAttention(dim_heads=d, nb_features=m)


def kernel_estimate(x, y, W):
    """K̂(x, y) = φ(x)ᵀφ(y) from ``softmax_kernel`` (eps = 0, row max undone), pairs (…, d) → (…).

    Many projections go through ONE ``softmax_kernel`` call on their stack (n·m, d): its feature
    scale (n·m)^{-1/2} becomes m^{-1/2} after a factor √n, and its single row max is undone, so each
    block of m features is exactly the library's φ for that W.
    """
    x, y, W = (np.asarray(a, dtype=np.float64) for a in (x, y, W))
    batch = np.broadcast_shapes(x.shape[:-1], y.shape[:-1], W.shape[:-2])
    m, d = W.shape[-2:]
    x, y = (np.broadcast_to(a, (*batch, d)).reshape(-1, d) for a in (x, y))
    W = np.broadcast_to(W, (*batch, m, d)).reshape(-1, m, d)
    estimates = np.empty(W.shape[0])
    for start in range(0, W.shape[0], CHUNK):
        rows = slice(start, start + CHUNK)
        phi_x, phi_y = (_stacked_features(a[rows], W[rows]) for a in (x, y))
        estimates[rows] = np.sum(phi_x * phi_y, axis=-1)
    return estimates.reshape(batch)


def _stacked_features(rows, W):
    """φ_{W_b}(rows_b) for each b: (n, d) rows and (n, m, d) projections → (n, m), via the library."""
    import torch

    n, m, d = W.shape
    stacked = _to_torch(W.reshape(n * m, d))
    data = _to_torch(rows)[None, None]
    features = _library().softmax_kernel(
        data, projection_matrix=stacked, is_query=True, normalize_data=False, eps=0.0
    )
    row_max = torch.amax(data @ stacked.T, dim=-1, keepdim=True)
    features = (features * torch.exp(row_max) * math.sqrt(n))[0, 0]
    return _to_host(features).reshape(n, n, m)[np.arange(n), np.arange(n)]


def features(x, W, role):
    """``softmax_kernel`` as ``FastAttention`` calls it (defaults: normalize_data, eps = 1e-4)."""
    library = _library()
    x = np.asarray(x)
    rows = _to_torch(x.reshape(-1, 1, *x.shape[-2:]))
    phi = library.softmax_kernel(rows, projection_matrix=_to_torch(W), is_query=role == "query")
    return _to_host(phi).reshape(*x.shape[:-1], -1)


def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
    """Output of ``SelfAttention`` with identity projections on [q, k, v]: (B, H, L, d_v) float64."""
    import torch

    q, k, v = (np.asarray(a) for a in (q, k, v))
    batch, heads, length, d = q.shape
    layer = _identity_self_attention(heads, d, v.shape[-1], W.shape[0], causal)
    with torch.no_grad():
        layer = layer.to(getattr(torch, dtype))
        layer.fast_attention.projection_matrix.copy_(_to_torch(W, dtype))
        tokens = np.concatenate([_merge_heads(a) for a in (q, k, v)], axis=-1)
        keep = None if mask is None else torch.from_numpy(np.array(mask, dtype=bool))
        with contextlib.redirect_stdout(io.StringIO()):
            out = layer(_to_torch(tokens, dtype), mask=keep)
    out = _to_host(out)[..., : heads * v.shape[-1]].reshape(batch, length, heads, v.shape[-1])
    return np.transpose(out, (0, 2, 1, 3))


def _merge_heads(array):
    """(B, H, L, e) → (B, L, H·e), the library's 'b n (h d)' layout."""
    batch, heads, length, width = array.shape
    return np.transpose(array, (0, 2, 1, 3)).reshape(batch, length, heads * width)


def _identity_self_attention(heads, d, d_v, m, causal):
    """``SelfAttention`` whose q/k/v/out projections select and return the blocks unchanged."""
    import torch

    library = _library()
    width = heads * (2 * d + d_v)
    with contextlib.redirect_stdout(io.StringIO()):
        layer = library.SelfAttention(dim=width, heads=heads, dim_head=d, nb_features=m, causal=causal)
    if d_v != d:
        raise ValueError(f"performer-pytorch needs value width = head dimension d={d}, got {d_v}")
    eye = torch.eye(width)
    with torch.no_grad():
        for linear, start in ((layer.to_q, 0), (layer.to_k, heads * d), (layer.to_v, 2 * heads * d)):
            linear.weight.copy_(eye[start : start + heads * d])
        layer.to_out.weight.zero_()
        layer.to_out.weight[: heads * d_v].copy_(torch.eye(heads * d_v))
        layer.to_out.bias.zero_()
    return layer.eval()


def adapter() -> Adapter:
    """The performer-pytorch adapter (claims FAVOR+: positive features, ORF, χ(d) norms).

    Sets torch to one intra-op thread: the audit makes tens of thousands of tiny calls (a d×d QR per
    draw), for which thread pools only add overhead (12× slower on a loaded 2-core machine).
    """
    import torch

    _library()
    torch.set_num_threads(1)
    from importlib.metadata import version

    return Adapter(
        name=PACKAGE,
        claims="positive-ort",
        layout="(B, H, L, d) torch tensors; models take (B, L, H·d)",
        version=version(PACKAGE),
        sample_projection=sample_projection,
        head_projections=head_projections,
        redraw_projections=redraw_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        dtypes=("float32", "float16", "bfloat16"),
        notes=(
            "defaults audited: FastAttention(ortho_scaling=0, generalized_attention=False), "
            "softmax_kernel eps=1e-4",
            f"nb_features default int(d·ln d) = {int(64 * math.log(64))} at d = 64",
            "projection blocks: torch.linalg.qr(...).q.t() with no sign(diag R) correction and no option "
            "to add one (orthogonal_matrix_chunk)",
            "key stabilizer: torch.amax over sequence and features, one per (batch, head); "
            "ε = 1e-4 added after the shift",
            "causal path on CPU: causal_linear_attention_noncuda (the fast_transformers CUDA kernel is not "
            "importable there), with ε = 1e-6 added to the key prefix sums",
            "padding mask (Attention.forward): masked values are zeroed; keys are not removed",
        ),
    )
