"""Randomized quasi-Monte Carlo point sets in [0, 1)^d, many independent randomizations at once.

Both point sets are returned as (count, m, d) float64 arrays on the host, one independent
randomization per leading index, drawn from a numpy ``Generator`` in a fixed number of array calls
(the cost does not grow with a Python loop over ``count``).

* :func:`scrambled_sobol`: the first m points of the Sobol' sequence (direction numbers from
  ``scipy.stats.qmc.Sobol``, unscrambled) under a random linear matrix scramble and digital shift
  (Matoušek 1998, "On the L2-discrepancy for anchored boxes"; the same randomization as
  ``scipy.stats.qmc.Sobol(scramble=True)``), kept to :data:`SOBOL_BITS` binary digits.
* :func:`scrambled_halton`: the first m points of the Halton sequence (bases the first d primes)
  with one random permutation of the digits {0, …, b − 1} per digit position, shared by all points
  (Owen 2017, "A randomized Halton algorithm in R", Algorithm 1; the randomization of
  ``scipy.stats.qmc.Halton(scramble=True)``).

Either way each point is uniform on [0, 1)^d (up to the 2⁻⁵² grid of the Sobol' digits), and the
point set keeps its stratification: for m = 2^k, each coordinate of the Sobol' set has one point in
each interval [t/m, (t + 1)/m); for m = b^k, coordinate j of the Halton set has one point in each
interval of length b_j^−k.
"""

from __future__ import annotations

import numpy as np

SOBOL_BITS = 52
"""Binary digits of a scrambled Sobol' coordinate (a float64 holds 52 fraction bits exactly)."""


def _digit_count(m: int, base: int) -> int:
    """Number of base-``base`` digits of the largest point index m − 1 (0 when m = 1)."""
    count, largest = 0, m - 1
    while largest:
        largest //= base
        count += 1
    return count


def scrambled_sobol(m: int, d: int, count: int, generator: np.random.Generator) -> np.ndarray:
    """``count`` LMS + digital-shift scrambles of the first m Sobol' points: (count, m, d).

    The first m ≤ 2^k points of the Sobol' sequence have k binary digits a_1 … a_k per coordinate
    (k = ⌈log₂ m⌉). Scrambled, digit i of coordinate j is y_i = Σ_{l ≤ min(i, k)} L_il a_l + e_i
    (mod 2), with L a random lower-triangular 0/1 matrix with unit diagonal and e a random shift, both
    independent per coordinate and per randomization. Column l of L read as a binary fraction is
    2^−l plus uniform random digits below it, so y is e XOR the columns of the digits a_l that are 1.
    The point is the midpoint (y + ½)·2^−52 of its grid cell, so 0 and 1 never occur.
    """
    from scipy.stats import qmc as scipy_qmc

    digits = _digit_count(m, 2)
    plain = scipy_qmc.Sobol(d, scramble=False).random_base2(digits)[:m]
    integers = np.rint(plain * 2.0**digits).astype(np.uint64)
    if not np.array_equal(integers / 2.0**digits, plain):
        raise AssertionError("the first m Sobol' points must have ⌈log₂ m⌉ binary digits")
    top = np.uint64(1) << np.uint64(SOBOL_BITS)
    scrambled = generator.integers(0, top, size=(count, 1, d), dtype=np.uint64, endpoint=False)
    scrambled = np.broadcast_to(scrambled, (count, m, d)).copy()
    for digit in range(1, digits + 1):
        lead = np.uint64(1) << np.uint64(SOBOL_BITS - digit)
        column = lead | generator.integers(0, lead, size=(count, 1, d), dtype=np.uint64)
        mask = (integers >> np.uint64(digits - digit)) & np.uint64(1)
        scrambled ^= column * mask
    return (scrambled.astype(np.float64) + 0.5) * 2.0**-SOBOL_BITS


def first_primes(count: int) -> list[int]:
    """The first ``count`` primes (the Halton bases)."""
    primes: list[int] = []
    candidate = 2
    while len(primes) < count:
        if all(candidate % p for p in primes if p * p <= candidate):
            primes.append(candidate)
        candidate += 1
    return primes


def scrambled_halton(m: int, d: int, count: int, generator: np.random.Generator) -> np.ndarray:
    """``count`` random-permutation scrambles of the first m Halton points: (count, m, d).

    Coordinate j of point i is Σ_p π_p(a_p(i)) b^−(p+1), with b the j-th prime, a_p(i) the p-th
    base-b digit of i (least significant first) and π_p a random permutation of {0, …, b − 1}, the
    same for every point. Beyond the K digits of m − 1 every a_p is 0, so the tail Σ_{p ≥ K}
    π_p(0) b^−(p+1) is a sum of iid uniform digits, shared by the points: it is drawn as its limit,
    V·b^−K with V ~ U[0, 1) (the infinite-digit scramble, which makes each point exactly uniform).
    """
    index = np.arange(m)
    points = np.empty((count, m, d))
    for column, base in enumerate(first_primes(d)):
        digits = _digit_count(m, base)
        value = generator.random((count, 1)) * float(base) ** -digits
        if digits:
            identity = np.broadcast_to(np.arange(base), (count, digits, base))
            permutations = generator.permuted(identity, axis=-1)
            place = base ** np.arange(digits)
            digit_of_index = (index[:, None] // place) % base
            weights = float(base) ** -(np.arange(digits) + 1.0)
            permuted = np.take_along_axis(
                permutations, np.broadcast_to(digit_of_index.T[None], (count, digits, m)), axis=-1
            )
            value = value + np.einsum("npi,p->ni", permuted.astype(np.float64), weights)
        points[..., column] = value
    return points
