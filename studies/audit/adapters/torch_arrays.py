"""Host float64 numpy ↔ torch conversions shared by the PyTorch adapters (torch imported on first use)."""

from __future__ import annotations

import numpy as np

from estimators.backends import host_float64


def to_torch(array, dtype: str = "float64"):
    """A contiguous CPU torch tensor of ``dtype`` (a torch dtype name) holding ``array``."""
    import torch

    return torch.from_numpy(np.array(array, dtype=np.float64, order="C")).to(getattr(torch, dtype))


def to_host(tensor) -> np.ndarray:
    """``tensor`` as a float64 numpy array on the host (:func:`estimators.backends.host_float64`)."""
    return host_float64(tensor)


def seeded(seed: int):
    """Set torch's global generator to ``seed`` (the samplers audited draw from it)."""
    import torch

    torch.manual_seed(int(seed))


def single_thread():
    """One intra-op thread: the audit makes many tiny calls, for which thread pools only add overhead."""
    import torch

    torch.set_num_threads(1)
