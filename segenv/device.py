"""Where a model runs: the one resolver of torch device and floating-point dtype.

``"auto"`` (or None) means CUDA when present, else CPU; the ``"auto"`` dtype follows the device:
bfloat16 on CUDA, float32 elsewhere. Explicit values win. Used by the SAM-family segmenters and
by the MLLM policy. torch is imported only inside the functions, so ``import segenv`` never
needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # pragma: no cover
    import torch

# accepted dtype names (also with a "torch." prefix) -> torch attribute
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "float64": "float64",
}


def resolve_device(device: "Optional[str | torch.device]" = "auto") -> "torch.device":
    """``torch.device`` for ``"auto"`` / None (CUDA if available, else CPU), ``"cpu"``, ``"cuda:1"``, ..."""
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device, torch.device):
        return device
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from exc


def resolve_dtype(dtype: Any = "auto", device: "Optional[str | torch.device]" = "auto") -> "torch.dtype":
    """``torch.dtype`` for ``"auto"`` / None (bfloat16 on a CUDA ``device``, else float32), a name
    (``"bf16"``, ``"float32"``, ``"torch.float16"``, ...) or a ``torch.dtype``."""
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if resolve_device(device).type == "cuda" else torch.float32
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype must be 'auto', a torch.dtype or one of {sorted(DTYPE_NAMES)}, got {dtype!r}")
    return getattr(torch, DTYPE_NAMES[name])


def resolve_device_dtype(
    device: "Optional[str | torch.device]" = "auto", dtype: Any = "auto"
) -> "tuple[torch.device, torch.dtype]":
    """``(resolve_device(device), resolve_dtype(dtype, that device))``."""
    dev = resolve_device(device)
    return dev, resolve_dtype(dtype, dev)
