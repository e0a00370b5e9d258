"""srf-attention (simplex random features, PyPI ``srf-attention``) as an audit target.

Audited: version 1.0.16 (``pip install 'favor-bench[audit]'``; pure PyTorch, runs on CPU as is).
The package implements SimRFs (Reid et al. 2023, "Simplex Random Features", ICML): positive
features (Performers Lemma 1) with the m = d rows of each block pointing along a randomly rotated
regular simplex, so it claims registry row ``positive-simplex``. Every capability calls its code:

* projections: ``simplex_random_matrix(nb_rows=d, nb_columns=d)`` exactly as ``Attention.__init__``
  calls it (``nb_rows = d``, ``nb_columns = n_features``), seeded through ``torch.manual_seed``.
  The result has shape (d, n_features) and ``softmax_kernel_bhld`` contracts its last axis with the
  head dimension, so only n_features = d works (declared ``square_only``); the rotation uses
  ``scipy.linalg.hadamard(d)``, so d must be a power of two (declared ``head_dims``);
* heads and redraws: ``Attention`` registers one projection shared by every head; ``redraw_()``
  draws the next one from the global torch stream;
* kernel estimate: ``softmax_kernel_bhld(is_query=True, normalize_data=False, eps=0)`` of x and of
  y, times exp of the row max the library subtracted (a per-row factor it adds and we undo);
* features: ``softmax_kernel_bhld`` as ``Attention.forward_train_torch`` calls it (d^{-1/4}
  scaling, per-row max for queries, max over sequence and features for keys, ``eps = 1e-4``);
* attention: ``Attention(d, causal, n_features=d).forward(q, k, v, mode="train", attn_fn="torch")``
  with the audit's W in its buffer. Its ``low_mem_attn`` casts to float32 whatever it is given
  (declared ``precision``); it takes no mask.
"""

from __future__ import annotations

import math

import numpy as np

from ..protocol import Adapter
from . import pairwise
from .torch_arrays import seeded, single_thread, to_host, to_torch

PACKAGE = "srf-attention"
POWERS_OF_TWO = tuple(2**k for k in range(1, 11))


def _library():
    try:
        import srf_attention
    except ImportError as error:
        raise ImportError(
            "the srf-attention audit needs the package: pip install 'favor-bench[audit]' "
            "(or pip install srf-attention==1.0.16)"
        ) from error
    return srf_attention


def sample_projection(m, d, seed):
    """W (d, d) from ``simplex_random_matrix(nb_rows=d, nb_columns=d)`` after ``torch.manual_seed(seed)``."""
    _square(m, d)
    seeded(seed)
    return to_host(_library().simplex_random_matrix(nb_rows=int(d), nb_columns=int(d)))


def _square(m, d):
    if int(m) != int(d):
        raise ValueError(f"srf-attention builds only m = d projections (n_features = d), got m={m}, d={d}")


def head_projections(m, d, heads, seed):
    """(heads, d, d): ``Attention`` registers one W and uses it for every head."""
    W = to_host(_attention_module(int(d), int(m), seed, causal=False).projection_matrix)
    return np.repeat(W[None], int(heads), axis=0)


def redraw_projections(m, d, count, seed):
    """(count, d, d): the initial W and the W after each ``Attention.redraw_()``."""
    module = _attention_module(int(d), int(m), seed, causal=False)
    draws = [to_host(module.projection_matrix)]
    for _ in range(int(count) - 1):
        module.redraw_()
        draws.append(to_host(module.projection_matrix))
    return np.stack(draws)


def _attention_module(d, m, seed, causal):
    _square(m, d)
    seeded(seed)
    return _library().Attention(d, causal, n_features=m)


def kernel_estimate(x, y, W):
    """K̂(x, y) from ``softmax_kernel_bhld`` (eps = 0, unscaled inputs, row max undone), (…) pairs."""
    return pairwise.estimate(_feature_rows, x, y, W)


def _feature_rows(rows, W):
    """Each row's query features (C, m) under its own W (C, m, d), through ONE library call on the
    stacked projections (C·m, d): its scale (C·m)^{-1/2} becomes m^{-1/2} after a factor √C, and
    its row max is undone."""
    import torch

    count, m, d = W.shape
    stacked = to_torch(W.reshape(count * m, d))
    data = to_torch(rows)[None, None]
    phi = _library().softmax_kernel_bhld(
        data, projection_matrix=stacked, is_query=True, normalize_data=False, eps=0.0
    )
    row_max = torch.amax(data @ stacked.T, dim=-1, keepdim=True)
    phi = (phi * torch.exp(row_max) * math.sqrt(count))[0, 0]
    return pairwise.diagonal_blocks(to_host(phi), count, m)


def features(x, W, role):
    """``softmax_kernel_bhld`` as ``Attention.forward_train_torch`` calls it (defaults, eps = 1e-4)."""
    x = np.asarray(x)
    rows = to_torch(x.reshape(-1, 1, *x.shape[-2:]))
    phi = _library().softmax_kernel_bhld(rows, projection_matrix=to_torch(W), is_query=role == "query")
    phi = phi if role == "query" else phi[0]
    return to_host(phi).reshape(*x.shape[:-1], -1)


def attention(q, k, v, W, causal=False, mask=None, dtype="float64"):
    """``Attention.forward(mode="train", attn_fn="torch")`` on (B, H, L, d) inputs → float64."""
    import torch

    if mask is not None:
        raise ValueError("srf-attention has no mask argument (declared mask='none')")
    W = np.asarray(W)
    module = _attention_module(W.shape[-1], W.shape[0], 0, causal=bool(causal))
    module.projection_matrix = to_torch(W, dtype)
    with torch.no_grad():
        out = module(*(to_torch(a, dtype) for a in (q, k, v)), mode="train", attn_fn="torch")
    return to_host(out)


def adapter() -> Adapter:
    """The srf-attention adapter (claims ``positive-simplex``: SimRF with χ(d) norms)."""
    from importlib.metadata import version

    _library()
    single_thread()
    return Adapter(
        name=PACKAGE,
        claims="positive-simplex",
        layout="(B, H, L, d) torch tensors",
        version=version(PACKAGE),
        sample_projection=sample_projection,
        head_projections=head_projections,
        redraw_projections=redraw_projections,
        kernel_estimate=kernel_estimate,
        features=features,
        attention=attention,
        dtypes=("float16", "bfloat16"),
        precision="float32",
        mask="none",
        square_only=True,
        head_dims=POWERS_OF_TWO,
        notes=(
            "defaults audited: Attention(d, causal, n_features=d), softmax_kernel_bhld eps=1e-4, "
            "attn_fn='torch' (low_mem_attn computes in float32)",
            "projection: simplex directions (compute_simplex_dir) with norms sqrt(Chi2(df=1)) "
            "per row, rotated by a product of three Hadamard-sign blocks (orthogonal_matrix_chunk_hadamard)",
            "key stabilizer: max over sequence and features per (batch, head), ε = 1e-4 after the shift",
            "Attention.forward with redraw_on_call_(True) calls redraw_(device=...), which takes no argument",
        ),
    )
