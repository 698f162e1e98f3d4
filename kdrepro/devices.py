"""Where a run computes and how: the device, the process's allocator, torch.compile when
`KDREPRO_COMPILE=1`, and bf16 autocast on a GPU."""

import ctypes
from functools import cache

import torch
from torch import nn

from . import settings
from .errors import ConfigError

# glibc's mallopt parameters, and the sizes kdrepro sets them to: blocks up to 256 MiB come from
# the heap, and up to 1 GiB of freed heap stays in the process
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_BYTES, MMAP_BYTES = 1 << 30, 1 << 28


@cache
def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory in the process. By default it hands a training step's
    activations (megabytes each) back to the kernel when they are freed and faults them in again
    the next step: on the project's 2-core CPU a sweep spent a fifth of its CPU time in the kernel
    on those page faults (`results/bench/cpu-preresnet8.json` was measured again with this). Where
    memory comes from, not what is computed, so results are unchanged (torch aligns every tensor
    alike either way). Once per process; False where the C library is not glibc (macOS, musl),
    which is left as it is."""
    try:
        libc = ctypes.CDLL(None)  # the symbols this process has loaded, its C library's among them
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc's alone: another libc's mallopt takes other numbers
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: setting either fixes both, which glibc otherwise adapts
    mmap = mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)
    return bool(mmap and mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device; 'auto' picks CUDA when present. Asking for CUDA without a GPU is a one-line
    error. Every path that computes resolves its device here, so this readies the process too
    (`keep_freed_memory`)."""
    keep_freed_memory()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device={str(device)!r}: expected 'cpu', 'cuda' or 'auto'") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device={str(device)!r}: expected 'cpu', 'cuda' or 'auto'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={str(device)!r}: no CUDA GPU is available here; use device='cpu' (or 'auto')"
        )
    return device


# torch.compile options per device when KDREPRO_COMPILE=1: CUDA graphs on a GPU, where a small
# network's step is bound by kernel launches (the optimizer step stays outside the graph); inductor
# on the CPU.
COMPILE = {"cuda": {"mode": "reduce-overhead"}, "cpu": {}}


def compiling() -> bool:
    return settings.compile_steps()


def compiled(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` under torch.compile when KDREPRO_COMPILE=1, else itself. Every step is a full batch,
    so it compiles once per network, batch shape and mode (train, or eval for a teacher);
    evaluations run the module uncompiled."""
    if not compiling():
        return module
    # a sweep compiles many networks and shapes in one process: past the default limit of 8 per
    # function, dynamo would fall back to eager without a word
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    return torch.compile(module, dynamic=False, **COMPILE[device.type])


def step_begins(device: torch.device) -> None:
    """Before a training step's first compiled call: under CUDA graphs, the previous step's outputs
    may be overwritten from here on."""
    if compiling() and device.type == "cuda":
        torch.compiler.cudagraph_mark_step_begin()


def autocast(device: torch.device, enabled: bool = True):
    # bf16 on GPUs; on the CPU full precision (bf16 matmuls are slow on 2-core machines and change
    # results).
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")
