"""segenv.device: the one device / dtype resolver (SAM backends and the MLLM policy use it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from segenv.device import resolve_device, resolve_device_dtype, resolve_dtype  # noqa: E402


def test_resolve_device():
    auto = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device() == resolve_device("auto") == resolve_device(None) == auto
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # built, not checked against the hardware
    dev = torch.device("cpu")
    assert resolve_device(dev) is dev
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda'"):
        resolve_device("gpu0")


def test_resolve_dtype():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16  # CUDA + bf16, without touching a GPU
    assert resolve_dtype(None, torch.device("cuda:0")) == torch.bfloat16
    assert resolve_dtype("bf16") == resolve_dtype("bfloat16") == resolve_dtype("torch.bfloat16") == torch.bfloat16
    assert resolve_dtype("fp16", "cuda") == torch.float16 and resolve_dtype("fp32", "cuda") == torch.float32
    assert resolve_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype("int8")
    assert resolve_device_dtype("cpu", "auto") == (torch.device("cpu"), torch.float32)


def test_users_share_it():
    """The SAM backends and the MLLM policy resolve through segenv.device."""
    from agents.mllm.policy import resolve_device_dtype as policy_resolve
    from segenv.segmenters import tiny
    from segenv.segmenters.hf_sam import HFSamSegmenter
    from segenv.segmenters.sam import SamSegmenter

    assert policy_resolve("cpu", "bf16") == ("cpu", torch.bfloat16)
    with pytest.raises(ValueError, match="dtype must be"):
        policy_resolve("cpu", "int8")
    sam = SamSegmenter(model=tiny.tiny_sam(0, image_size=64), device="cpu")
    hf = HFSamSegmenter(model=tiny.tiny_hf_sam(0, image_size=64), device="cpu", dtype="bf16")
    assert sam.device == torch.device("cpu") and sam.dtype == torch.float32
    assert hf.device == torch.device("cpu") and hf.dtype == torch.bfloat16
    assert next(hf.model.parameters()).dtype == torch.bfloat16
    assert not sam._batched() and not hf._batched()  # batch_many="auto": looped on CPU


def test_import_segenv_needs_no_torch():
    code = "import sys, segenv, segenv.device, segenv.segmenters; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
