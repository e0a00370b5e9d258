"""Registers, spilled bytes and shared memory of the fused kernels' launches, compiled without a GPU.

The host code (:mod:`.host`) runs on small CPU tensors with every kernel replaced by a recorder, so
the launches compiled here are exactly those a CUDA call of that shape and dtype makes (tile sizes,
warps, pipeline stages, pointer types and alignment). Each launch is then bound and compiled the way
Triton's launcher does it, for ``sm_<arch>`` (``ptxas`` ships with Triton), and the cubin is read
with ``cuobjdump -res-usage``. A launch whose shared memory exceeds the architecture's per-block
limit fails on such a GPU with "out of resource: shared memory"; a nonzero stack frame means
spilled registers (local-memory traffic).

The binding uses Triton's launcher internals (``create_function_from_signature``,
``JITFunction._pack_args``), checked against Triton 3.6 and 3.9.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import unittest.mock
from contextlib import ExitStack
from dataclasses import dataclass

import torch
import triton

from . import host, kernels, plan

SHARED_MEMORY_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}
"""Largest shared memory one block may opt into, in bytes, per compute capability (CUDA C++
Programming Guide, "Technical Specifications per Compute Capability": 163, 99, 99 and 227 KiB)."""

KERNEL_NAMES = tuple(name for name in vars(kernels) if name.endswith("_kernel"))


@dataclass(frozen=True)
class Launch:
    """One kernel launch as the host code issued it: the kernel and its arguments."""

    name: str
    args: tuple
    kwargs: dict


@dataclass(frozen=True)
class Resources:
    """What one compiled launch needs per block on ``sm_<arch>``."""

    name: str
    arch: int
    num_warps: int
    num_stages: int
    registers: int
    stack_bytes: int
    shared_bytes: int

    @property
    def fits(self) -> bool:
        return self.shared_bytes <= SHARED_MEMORY_LIMIT[self.arch]


def record_launches(d, m=256, feature="positive", dtype=torch.float16, causal=False, arch=90, L=4100):
    """The launches of one forward and backward of :func:`favor_triton` for (1, 2, L, d) inputs.

    The host code runs on CPU tensors with the kernels replaced by recorders (outputs are left
    unwritten) and the device taken as ``sm_<arch>`` (its compute capability and shared memory per
    block, 132 multiprocessors).
    """
    _require_compiled_kernels()
    launches = []

    def recorder(name):
        def launch_with_grid(grid):
            def launch(*args, **kwargs):
                launches.append(Launch(name, args, kwargs))

            return launch

        return unittest.mock.MagicMock(__getitem__=lambda _, grid: launch_with_grid(grid))

    with ExitStack() as patches:
        for name in KERNEL_NAMES:
            if hasattr(host, name):
                patches.enter_context(unittest.mock.patch.object(host, name, recorder(name)))
        patches.enter_context(unittest.mock.patch.object(plan, "_multiprocessors", lambda device: 132))
        limits = SHARED_MEMORY_LIMIT[arch], divmod(arch, 10)
        patches.enter_context(unittest.mock.patch.object(plan, "_device_limits", lambda device: limits))
        q, k, v = (torch.zeros(1, 2, L, d, dtype=dtype, requires_grad=True) for _ in range(3))
        W = torch.randn(m, d, generator=torch.Generator().manual_seed(0))
        out = host._FavorFunction.apply(q, k, v, W, feature, causal)
        out.backward(torch.zeros_like(out))
    return launches


def compile_launch(launch, arch=90):
    """Compile one recorded launch for ``sm_<arch>`` as Triton's launcher would; its :class:`Resources`."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = getattr(kernels, launch.name)
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, specialization, options = binder(*launch.args, **launch.kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(
        backend, launch.kwargs, bound, specialization, options
    )
    compiled = triton.compile(
        ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__
    )
    registers, stack = _register_usage(compiled.asm["cubin"])
    return Resources(
        name=launch.name.strip("_").removesuffix("_kernel"),
        arch=arch,
        num_warps=options.num_warps,
        num_stages=options.num_stages,
        registers=registers,
        stack_bytes=stack,
        shared_bytes=compiled.metadata.shared,
    )


def kernel_resources(d, m=256, feature="positive", dtype=torch.float16, causal=False, arch=90):
    """:class:`Resources` of each distinct launch of one forward and backward (:func:`record_launches`)."""
    seen, results = set(), []
    for launch in record_launches(d, m, feature, dtype, causal, arch):
        key = (launch.name, _signature_key(launch))
        if key not in seen:
            seen.add(key)
            results.append(compile_launch(launch, arch))
    return results


def _signature_key(launch):
    def describe(x):
        return (x.dtype, x.data_ptr() % 16 == 0) if isinstance(x, torch.Tensor) else x

    keywords = tuple(sorted((key, describe(value)) for key, value in launch.kwargs.items()))
    return tuple(map(describe, launch.args)), keywords


def _register_usage(cubin):
    """(registers per thread, stack frame bytes per thread) of a cubin, from ``cuobjdump -res-usage``."""
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.cubin")
        with open(path, "wb") as handle:
            handle.write(cubin)
        report = subprocess.run([tool, "-res-usage", path], capture_output=True, text=True, check=True).stdout
    found = re.search(r"REG:(\d+) STACK:(\d+)", report)
    if found is None:
        raise RuntimeError(f"cuobjdump -res-usage printed no register usage:\n{report}")
    return int(found.group(1)), int(found.group(2))


def _require_compiled_kernels():
    if type(kernels._key_state_kernel).__name__ != "JITFunction":
        raise RuntimeError(
            "the kernels were decorated under TRITON_INTERPRET=1 and cannot be compiled: "
            "run in a process where TRITON_INTERPRET is unset"
        )
