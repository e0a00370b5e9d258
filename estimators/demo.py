"""Print, for every registry estimator and every installed backend, K̂(x, y) against the exact kernel.

Run ``python -m estimators.demo``. One fixed pair (x, y) in d = 16, m = 256 projections, averaged
over 200 independent draws of W (portable RNG: identical W on every backend).
"""

from __future__ import annotations

import numpy as np

from . import registry
from .backends import available_backends, resolve_target


def main(d: int = 16, m: int = 256, replicates: int = 200, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(d) * 0.3
    y = rng.standard_normal(d) * 0.3
    print(f"{'estimator':<20} {'backend':<8} {'kernel':<8} {'exact':>10} {'estimate':>10} {'rel.err':>9}")
    for row in registry.rows():
        for backend in available_backends():
            target = resolve_target(backend=backend, dtype="float64")
            W = row.draw(m, d, batch_shape=(replicates,), seed=seed, like=target.asarray(x))
            xs, ys = target.asarray(x), target.asarray(y)
            estimate = float(np.mean(np.asarray(row.estimate(xs, ys, W))))
            exact = float(np.asarray(row.exact(xs, ys)))
            print(
                f"{row.name:<20} {backend:<8} {row.kernel:<8} {exact:>10.5f} {estimate:>10.5f} "
                f"{(estimate - exact) / exact:>+9.2e}"
            )


if __name__ == "__main__":
    main()
