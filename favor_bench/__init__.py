"""favor-bench airspeed-velocity (asv) suite: time, device memory and accuracy on every backend.

Modules: ``common`` (backend parameter, skips, sync, device-memory tracking, per-process setup cache)
and one module per topic: ``projections``, ``features``, ``gram``, ``attention``, ``accuracy``,
``throughput`` and ``startup``. Importing any of them imports neither torch nor jax and touches no
device; the work happens in each benchmark's ``setup``. Run ``asv run`` from the repository root.
"""
