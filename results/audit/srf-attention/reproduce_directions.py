"""srf-attention 1.0.16: the rotation of the simplex is not Haar, so row directions are not uniform.

Run: python results/audit/srf-attention/reproduce_directions.py (needs srf-attention==1.0.16).
`orthogonal_matrix_chunk_hadamard(d)` is H·D₃·H·D₂·H·D₁ (H the d × d Hadamard matrix) with signs
`sign(randn − 0.5)`, which are +1 with probability P(N(0, 1) > 0.5) = 0.31, not 1/2: a finite set of
rotations, drawn unevenly. Second computation: the library's own simplex directions (its
`compute_simplex_dir`) rotated by a Haar matrix (QR of a Gaussian with the sign(diag R) fix) give
uniform directions, E u_ij² = 1/d.
"""

import numpy as np
import torch
from srf_attention.rfs import compute_simplex_dir, orthogonal_matrix_chunk_hadamard

n = 8000
rng = np.random.default_rng(0)
torch.manual_seed(0)


def haar(d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def largest_second_moment_error(directions, d):
    """max over entries |E u_ij² − 1/d| and its 95% half-width under uniform directions."""
    u = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    half = 1.96 * np.sqrt(2 * (d - 1) / (d * d * (d + 2)) / len(u))
    return float(np.abs((u**2).mean(axis=0) - 1 / d).max()), half


signs = torch.sign(torch.randn(100000) - 0.5)
print(f"P(sign(randn − 0.5) = +1) = {float((signs > 0).double().mean()):.3f} (Rademacher: 0.5)")
for d in (2, 4, 8):
    rotations = np.stack([orthogonal_matrix_chunk_hadamard(d).double().numpy() for _ in range(n)])
    simplex = np.stack([compute_simplex_dir(d).double().numpy() for _ in range(n)])
    distinct = len(np.unique(np.round(rotations, 6).reshape(n, -1), axis=0))
    library, half = largest_second_moment_error((simplex @ rotations)[:, 0], d)
    with_haar, _ = largest_second_moment_error(np.stack([s @ haar(d) for s in simplex])[:, 0], d)
    print(
        f"d={d}: {distinct} distinct rotations in {n} draws; max |E u_0j² − 1/d| = {library:.3f} "
        f"(library), {with_haar:.3f} (same directions, Haar R), 95% half-width {half:.3f}"
    )
