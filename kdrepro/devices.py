"""Where a run computes and how: the device, torch.compile when `KDREPRO_COMPILE=1`, and bf16
autocast on a GPU."""

import torch
from torch import nn

from . import settings
from .errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device; 'auto' picks CUDA when present. Asking for CUDA without a GPU is a one-line
    error."""
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
