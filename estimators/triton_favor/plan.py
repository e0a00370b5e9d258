"""Launch plans of the fused FAVOR kernels: tile sizes per head dimension, dtype and device.

:data:`CONFIG` holds the timed launch parameters, :func:`launch_config` adapts them to a call, and
:class:`Plan` carries the shapes, tiles and the stacked, scaled projection that every kernel of one
call shares (:mod:`estimators.triton_favor.host` runs the passes).
"""

from __future__ import annotations

import functools

import torch
import triton

CONFIG = {
    "key_block_l": 64,  # rows per tile in the key passes
    "key_warps": 4,
    "key_programs_per_sm": 4,  # segments are chosen so that about this many programs per SM run
    "out_block_l": 64,  # rows per tile in the bidirectional query pass
    "out_warps": 4,
    "chunk": 128,  # causal chunk length C
    "causal_warps": 8,
    "causal_programs_per_sm": 4,
    "grad_block_l": 64,
    "grad_chunk": 64,  # causal backward chunk length (two C×C fp32 tiles live)
    "grad_warps": 8,
    "stages": 3,
    "block_m": 64,  # feature rows per tile
    "maxnreg": None,  # registers per thread ptxas may use; None leaves the choice to ptxas
}
"""Launch parameters for half-precision inputs with d ≤ 64 on a GPU with ≥ 160 KiB of shared memory per
block (H100 timings); :func:`launch_config` derives the others."""

LARGE_SHARED_MEMORY = 160 * 1024
"""Shared memory per block (bytes) from which :data:`CONFIG`'s pipelining fits: sm_80 has 163 KiB,
sm_90 227 KiB, sm_86/89 99 KiB (``python scripts/kernel_resources.py`` checks every launch)."""

HOPPER = (9, 0)


def launch_config(D, dtype, shared_limit=LARGE_SHARED_MEMORY, capability=HOPPER):
    """The launch parameters of :data:`CONFIG` adapted to head dimension D, input dtype and the device
    (its shared memory per block in bytes and its compute capability).

    * D = 128: 32 feature rows per tile, 64-row causal chunks and one pipeline stage (the tiles of
      128-wide rows fill shared memory);
    * float32 inputs (exact fp32 dots on CUDA cores): feature tiles and chunks halved again, 32-row
      backward chunks; compiled for sm_90 at the half-precision tiles, ptxas keeps most of these
      kernels at 32 registers with 4–14 KB of spills per thread;
    * less than :data:`LARGE_SHARED_MEMORY` per block (sm_86, sm_89): one pipeline stage, chunks of
      at most 64 rows and 32-row backward chunks;
    * compute capability below 9.0 (A100, sm_86/89) or float32 inputs: ``maxnreg`` = 255 stated. Left
      to itself, ptxas (CUDA 12.9, -O3) compiles the sm_80/86 causal dk/dv kernel (every d, half
      precision) and the float32 d = 64 key passes to 32 registers with 3–10 KB of spills per thread;
      told the ceiling, to 255 registers and at most 4 KB. Half precision on sm_90 (the timed
      configuration) is left to ptxas, where stating it raises most kernels' registers and the causal
      kernels' spills a little.
    """
    config = dict(CONFIG)
    if D > 64:
        config.update(block_m=config["block_m"] // 2, chunk=64, stages=1)
    if dtype == torch.float32:
        config.update(block_m=config["block_m"] // 2, chunk=config["chunk"] // 2, grad_chunk=32)
    if shared_limit < LARGE_SHARED_MEMORY:
        config.update(stages=1, chunk=min(config["chunk"], 64), grad_chunk=32)
    if capability < HOPPER or dtype == torch.float32:
        config.update(maxnreg=255)
    return config


class Plan:
    """Shapes, tile sizes and the stacked, scaled projection shared by all kernels of one call."""

    def __init__(self, q, W, feature):
        self.B, self.H, self.L, self.D = q.shape
        self.BH = self.B * self.H
        w = W.detach().to(device=q.device, dtype=torch.float32)
        if feature == "hyperbolic":
            w = torch.cat([w, -w], dim=-2)
        w = (w if w.ndim == 3 else w[None]) * self.D**-0.25
        self.M = w.shape[-2]
        self.config = launch_config(self.D, q.dtype, *_device_limits(q.device))
        self.block_m = max(16, min(self.config["block_m"], triton.next_power_of_2(self.M)))
        self.njb = triton.cdiv(self.M, self.block_m)
        self.w = torch.zeros(w.shape[0], self.njb * self.block_m, self.D, device=q.device, dtype=q.dtype)
        self.w[:, : self.M] = w
        self.w_head_stride = 0 if self.w.shape[0] == 1 else self.njb * self.block_m * self.D
        self.norm = 0.5 * self.D**-0.5
        self.dtype = q.dtype
        self.prec = "ieee" if q.dtype == torch.float32 else "tf32"
        self.sms = _multiprocessors(q.device)

    def state(self, *leading):
        size = (*leading, self.njb * self.block_m, self.D)
        return torch.empty(size, device=self.w.device, dtype=torch.float32)

    def vector(self, *shape):
        return torch.empty(*shape, device=self.w.device, dtype=torch.float32)

    def common(self):
        return dict(BLOCK_M=self.block_m, D=self.D, NJB=self.njb)

    def launch(self, kind):
        return dict(
            num_warps=self.config[f"{kind}_warps"],
            num_stages=self.config["stages"],
            maxnreg=self.config["maxnreg"],
        )


def _multiprocessors(device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def _device_limits(device):
    """(shared memory one block may use in bytes, compute capability) of ``device``; CPU tensors (the
    interpreter) get those the launch parameters were timed on."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return _cuda_device_limits(index)
    return LARGE_SHARED_MEMORY, HOPPER


@functools.cache
def _cuda_device_limits(index):
    """Driver queries asked once per device: the host code runs on every call."""
    shared = triton.runtime.driver.active.utils.get_device_properties(index)["max_shared_mem"]
    return shared, torch.cuda.get_device_capability(index)


def segments(plan, block_l, parallel_per_segment):
    """Segment length (a multiple of block_l) and count, for about key_programs_per_sm programs per SM."""
    tiles = triton.cdiv(plan.L, block_l)
    programs = plan.config["key_programs_per_sm"] * plan.sms
    wanted = max(1, triton.cdiv(programs, plan.BH * parallel_per_segment))
    seg_tiles = triton.cdiv(tiles, wanted)
    return seg_tiles * block_l, triton.cdiv(tiles, seg_tiles)
