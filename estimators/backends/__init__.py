"""Array backends: namespace, device, dtype, sync, framework operations and random numbers for numpy,
torch and jax.

Every estimator is written once against the array API (``array_api_compat.array_namespace``);
this package is the only place that knows the frameworks apart (``tests/test_architecture.py``
checks it). Neither torch nor jax is imported unless the caller already uses it (asks for that
backend, or passes one of its arrays), so ``import estimators`` stays light.

* :mod:`.arrays`: what an array is (namespace, framework name, device, dtype), host copies, sync;
* :mod:`.operations`: :func:`framework` ``(x)``, the operations the array API lacks
  (stop-gradient, log-gamma, running maximum, row splits, compilation, the CUDA check);
* :mod:`.targets`: :class:`Target` and :func:`resolve_target` (where arrays should live), the
  installed backends and each backend's dtypes;
* :mod:`.rng`: two random-number paths behind one interface (:class:`PortableRng`,
  :class:`TorchRng`, :class:`JaxRng`, built by :func:`make_rng`):

  - **portable**: a numpy ``Generator`` on the host, draws moved to the target afterwards. The same
    seed gives the same numbers on every backend and device; use it for cross-backend equality and
    theory checks.
  - **native**: ``torch.Generator`` or a ``jax.random`` key, drawing directly on the device. Fast for
    large Monte Carlo on a GPU; its streams differ from backend to backend (and from the portable
    stream), which is expected.
"""

from .arrays import (
    BACKENDS,
    DTYPES,
    backend_of,
    device_name,
    dtype_name,
    enable_jax_float64,
    host_float64,
    is_tracer,
    namespace,
    sync,
    to_host,
)
from .operations import framework
from .rng import JaxRng, PortableRng, TorchRng, make_rng, native_rng
from .targets import (
    Target,
    available_backends,
    framework_packages,
    resolve_target,
    supported_dtypes,
)

__all__ = [
    "BACKENDS",
    "DTYPES",
    "JaxRng",
    "PortableRng",
    "Target",
    "TorchRng",
    "available_backends",
    "backend_of",
    "device_name",
    "dtype_name",
    "enable_jax_float64",
    "framework",
    "framework_packages",
    "host_float64",
    "is_tracer",
    "make_rng",
    "namespace",
    "native_rng",
    "resolve_target",
    "supported_dtypes",
    "sync",
    "to_host",
]
