"""Which device runs the network (``auto``: CUDA, then MPS, then the CPU) and how many CPU threads an
engine gets; torch is imported only where the answer needs it."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import InvalidInputError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then the CPU; ``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are taken as given."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InvalidInputError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} asked for but CUDA is not available here")
    return resolved


def device_type(device: str = "auto") -> str:
    """``resolve_device(device).type`` (cpu, cuda or mps), without importing torch where the answer is
    certain: ``cpu``, or ``auto`` on a machine with no GPU runtime (see :func:`_no_gpu_here`)."""
    if device == "cpu" or (device == "auto" and "torch" not in sys.modules and _no_gpu_here()):
        return "cpu"
    return resolve_device(device).type


@functools.cache
def _no_gpu_here() -> bool:
    """True when torch could not find a GPU here: a CPU-only torch build, or Linux without the device
    files of an NVIDIA, AMD (ROCm) or WSL GPU. False means "ask torch"."""
    try:
        if importlib.metadata.version("torch").endswith("+cpu"):
            return True
    except importlib.metadata.PackageNotFoundError:
        return False
    dev = Path("/dev")
    return sys.platform.startswith("linux") and not any(
        any(dev.glob(pattern)) for pattern in ("nvidia*", "kfd", "dxg"))


def cpu_threads() -> int:
    """Threads for a CPU engine: torch's own setting once torch is loaded (it follows set_num_threads),
    otherwise what torch would choose: OMP_NUM_THREADS, else the physical cores this process may use."""
    if "torch" in sys.modules:
        return sys.modules["torch"].get_num_threads()
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        import psutil  # a dependency of distributed

        return max(1, min(usable, psutil.cpu_count(logical=False) or usable))
    except ImportError:
        return usable
