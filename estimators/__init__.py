"""favor-bench estimators: random-feature kernel estimators and FAVOR attention on numpy, torch, jax.

Submodules: ``backends`` (namespace, device, dtype, sync, RNG), ``projections`` (W), ``features``
(φ), ``kernels`` (exact kernels and K̂), ``registry`` (the table of estimators), ``theory``
(closed forms) and ``attention``. Importing this package imports neither torch nor jax.
"""

from . import backends, features, kernels, projections, registry

__all__ = ["backends", "features", "kernels", "projections", "registry"]
__version__ = "0.1.0"
