"""How the m rows of a hybrid-feature projection divide (theory.md §10.5): k rows ω, then n rows ξ."""

from __future__ import annotations

XI_SHARE = 5
"""n = max(1, m // 5) of the m rows are ξ's: the public notebook's 64 ω + 16 ξ at m = 80."""


def split(m: int) -> tuple[int, int]:
    """(k, n): ω rows and ξ rows of a hybrid projection with m ≥ 2 rows (n = max(1, m // 5))."""
    if isinstance(m, bool) or not hasattr(m, "__index__") or int(m) < 2:
        raise ValueError(
            f"m must be an integer >= 2 for hybrid features (k >= 1 ω and n >= 1 ξ rows), got {m!r}"
        )
    n = max(1, int(m) // XI_SHARE)
    return int(m) - n, n


__all__ = ["XI_SHARE", "split"]
