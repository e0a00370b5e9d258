"""Every fused-kernel launch fits the GPUs it may run on, without spilling at 32 registers; no GPU needed.

``scripts/kernel_resources.py`` compiles the launches the host code makes for ``sm_<arch>`` (Triton's
bundled ptxas) and fails when one needs more shared memory per block than the architecture allows,
where it would stop with "out of resource: shared memory"; the tests also reject launches that ptxas
squeezed into fewer than 64 registers at the price of spills. It runs in a subprocess: the kernels
cannot be compiled in a process where ``TRITON_INTERPRET=1`` (which ``test_triton`` sets) decorated them.

CI runs the launches closest to their limit in the full table (``pytest -m slow`` runs all of it, about
8 minutes per architecture with an empty Triton cache): d = 128 float32 on sm_86 (90 of 99 KiB), the
H100 configuration (d = 64 half precision, pipelined, 128 of 227 KiB) and sm_80's tightest (112 of
163 KiB).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(  # not imported here: test_triton imports it under TRITON_INTERPRET=1
    importlib.util.find_spec("triton") is None, reason="needs triton"
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "kernel_resources.py"


def kernel_resources(*args, prelude=""):
    """Run the script (after ``prelude``, Python run in its process first); (exit status, output)."""
    environment = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    argv = [str(SCRIPT), *args]
    run_script = f"import runpy, sys\nsys.argv = {argv!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')"
    code = f"{prelude}\n{run_script}"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1800
    )
    return done.returncode, done.stdout + done.stderr


def launch_rows(output):
    return [line for line in output.splitlines() if line.startswith("sm_")]


def collapsed(rows):
    """Launches ptxas squeezed into few registers at the price of spilling (registers < 64 and a stack):
    the sm_80/86 causal dk/dv kernel took 32 registers and 9.6 KB of stack per thread that way."""
    return [row for row in rows if int(row.split()[7]) < 64 and int(row.split()[8]) > 0]


@pytest.mark.parametrize(
    ("arch", "head_dim", "dtype"),
    [("86", "128", "float32"), ("90", "64", "float16"), ("80", "64", "bfloat16")],
)
def test_tightest_launches_fit_their_shared_memory(arch, head_dim, dtype):
    status, output = kernel_resources("--arch", arch, "--head-dims", head_dim, "--dtypes", dtype)
    rows = launch_rows(output)
    assert status == 0, output
    assert len(rows) >= 12, output  # both modes, forward and backward kernels
    assert "0 launch(es) need more shared memory" in output
    assert not collapsed(rows), output


IGNORE_SHARED_LIMIT = """
from estimators.triton_favor import plan
adapted = plan.launch_config
plan.launch_config = lambda D, dtype, shared_limit, capability: adapted(D, dtype, capability=capability)
"""


def test_check_fails_for_the_h100_configuration_on_a_99_KiB_gpu():
    """Planted bug: launch parameters chosen without the device's shared memory (as before
    ``launch_config`` took it) pipeline 128-row causal chunks on sm_86, which cannot hold them."""
    status, output = kernel_resources(
        "--arch", "86", "--head-dims", "64", "--dtypes", "float16", prelude=IGNORE_SHARED_LIMIT
    )
    assert status == 1, output
    failing = [row for row in launch_rows(output) if row.endswith("DOES NOT FIT")]
    assert any("causal" in row for row in failing), output


LEAVE_REGISTERS_TO_PTXAS = """
from estimators.triton_favor import plan
adapted = plan.launch_config
plan.launch_config = lambda *device: {**adapted(*device), "maxnreg": None}
"""


def test_check_catches_spilling_at_32_registers_without_maxnreg():
    """Planted bug: without the stated register ceiling ptxas compiles the A100 causal dk/dv kernel to 32
    registers with kilobytes of spills per thread."""
    status, output = kernel_resources(
        "--arch", "80", "--head-dims", "64", "--dtypes", "bfloat16", prelude=LEAVE_REGISTERS_TO_PTXAS
    )
    assert status == 0, output
    assert any("causal_key_grad" in row for row in collapsed(launch_rows(output))), output


@pytest.mark.slow
def test_every_launch_fits_on_sm80_sm86_sm90():
    status, output = kernel_resources("--arch", "80,86,90")
    assert status == 0, output
    rows = launch_rows(output)
    assert len(rows) >= 3 * 4 * 3 * 12, output
    assert not collapsed(rows), output
