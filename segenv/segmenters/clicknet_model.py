"""The clicknet network: an image encoder run once per image and a light click decoder run per click.

This is the torch half of :mod:`segenv.segmenters.clicknet` (imported lazily, so ``import
segenv`` needs no torch). The split follows SAM's encoder / decoder cost split, with RITM's
inputs (click maps and the previous mask beside the image features, SimpleClick's 4th channel):

* :class:`ImageEncoder` (once per episode, ``set_image``): a small conv pyramid over the
  ``work_size`` (224) image, returning cached features at 1/2, 1/4, 1/8 and 1/16.
* :class:`ClickDecoder` (once per click, ``predict``): a small U-Net over the 1/4, 1/8 and 1/16
  features concatenated with positive / negative click maps, the previous mask and a box map,
  ending in a fine head at 1/2 that sees the 1/2 image features, the previous mask and sharp
  click maps, so thin (2-4 px) structures survive. Output: mask logits at 1/2 of ``work_size``.

All sizes live in :class:`ClickNetConfig`; the checkpoint stores it as ``config.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ClickNetConfig:
    """Sizes of the network. ``work_size`` must be divisible by 16."""

    work_size: int = 224
    encoder_channels: tuple[int, ...] = (12, 24, 40, 64, 96)  # 1/1 stem, 1/2, 1/4, 1/8, 1/16
    feature_channels: tuple[int, ...] = (8, 16, 24, 32)  # cached projections at 1/2, 1/4, 1/8, 1/16
    decoder_channels: tuple[int, ...] = (16, 24, 32)  # per-click U-Net at 1/4, 1/8, 1/16
    fine_channels: int = 8  # per-click head at 1/2
    click_sigmas: tuple[float, ...] = (1.0, 4.0)  # Gaussian click maps at 1/4, in cells
    fine_click_sigma: float = 1.0  # sharp click map at 1/2, in cells
    extra: dict = field(default_factory=dict)

    @property
    def click_channels(self) -> int:
        return 2 * len(self.click_sigmas)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClickNetConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("encoder_channels", "feature_channels", "decoder_channels", "click_sigmas"):
            if key in known:
                known[key] = tuple(known[key])
        return cls(**known)


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ImageEncoder(nn.Module):
    """RGB ``[B, 3, S, S]`` (normalised) -> features at 1/2, 1/4, 1/8, 1/16 (projected)."""

    def __init__(self, cfg: ClickNetConfig) -> None:
        super().__init__()
        c0, c1, c2, c3, c4 = cfg.encoder_channels
        p1, p2, p3, p4 = cfg.feature_channels
        self.stem = conv_bn(3, c0)
        self.s1 = nn.Sequential(conv_bn(c0, c1, 3, 2), conv_bn(c1, c1))
        self.s2 = nn.Sequential(conv_bn(c1, c2, 3, 2), conv_bn(c2, c2))
        self.s3 = nn.Sequential(conv_bn(c2, c3, 3, 2), conv_bn(c3, c3))
        self.s4 = nn.Sequential(conv_bn(c3, c4, 3, 2), conv_bn(c4, c4), conv_bn(c4, c4))
        self.proj = nn.ModuleList([conv_bn(c, p, 1) for c, p in zip((c1, c2, c3, c4), (p1, p2, p3, p4))])

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x1 = self.s1(self.stem(image))
        x2 = self.s2(x1)
        x3 = self.s3(x2)
        x4 = self.s4(x3)
        return tuple(p(x) for p, x in zip(self.proj, (x1, x2, x3, x4)))


class ClickDecoder(nn.Module):
    """Cached features + prompts -> mask logits ``[B, 1, S/2, S/2]``.

    Inputs: ``feats`` from :class:`ImageEncoder`; ``clicks4`` ``[B, 2*len(sigmas), S/4, S/4]``
    (positive maps then negative maps); ``clicks2`` ``[B, 2, S/2, S/2]`` (sharp positive,
    negative); ``prev2`` ``[B, 1, S/2, S/2]`` previous mask probability (zeros when none);
    ``box4`` ``[B, 1, S/4, S/4]`` filled box (zeros when none).
    """

    def __init__(self, cfg: ClickNetConfig) -> None:
        super().__init__()
        p1, p2, p3, p4 = cfg.feature_channels
        d2, d3, d4 = cfg.decoder_channels
        f = cfg.fine_channels
        self.a4 = conv_bn(p2 + cfg.click_channels + 2, d2)
        self.a8 = nn.Sequential(conv_bn(d2 + p3, d3), conv_bn(d3, d3))
        self.a16 = nn.Sequential(conv_bn(d3 + p4, d4), conv_bn(d4, d4), conv_bn(d4, d4))
        self.b8 = conv_bn(d4 + d3, d3)
        self.b4 = nn.Sequential(conv_bn(d3 + d2, d2, 1), conv_bn(d2, d2))
        self.fine = nn.Sequential(conv_bn(d2 + p1 + 3, f, 1), conv_bn(f, f), nn.Conv2d(f, 1, 1))

    def forward(
        self,
        feats: tuple[torch.Tensor, ...],
        clicks4: torch.Tensor,
        clicks2: torch.Tensor,
        prev2: torch.Tensor,
        box4: torch.Tensor,
    ) -> torch.Tensor:
        f2, f4, f8, f16 = feats
        b = clicks4.shape[0]
        if f2.shape[0] != b:  # one image, several prompt sets (predict_many)
            f2, f4, f8, f16 = (x.expand(b, -1, -1, -1) for x in (f2, f4, f8, f16))
        prev4 = F.avg_pool2d(prev2, 2)
        x4 = self.a4(torch.cat([f4, clicks4, prev4, box4], 1))
        x8 = self.a8(torch.cat([F.avg_pool2d(x4, 2), f8], 1))
        x16 = self.a16(torch.cat([F.avg_pool2d(x8, 2), f16], 1))
        u8 = self.b8(torch.cat([F.interpolate(x16, scale_factor=2.0, mode="bilinear", align_corners=False), x8], 1))
        u4 = self.b4(torch.cat([F.interpolate(u8, scale_factor=2.0, mode="bilinear", align_corners=False), x4], 1))
        up = F.interpolate(u4, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.fine(torch.cat([up, f2, prev2, clicks2], 1))


class ClickNet(nn.Module):
    """Encoder + decoder, plus the click-map rendering both training and inference use."""

    def __init__(self, cfg: Optional[ClickNetConfig] = None) -> None:
        super().__init__()
        self.cfg = cfg or ClickNetConfig()
        if self.cfg.work_size % 16:
            raise ValueError(f"work_size must be divisible by 16, got {self.cfg.work_size}")
        self.encoder = ImageEncoder(self.cfg)
        self.decoder = ClickDecoder(self.cfg)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1), persistent=False)

    def encode(self, image_uint8: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``[B, S, S, 3]`` uint8 (already at ``work_size``) -> cached features."""
        x = image_uint8.permute(0, 3, 1, 2).float().div_(255.0)
        return self.encoder((x - self.mean) / self.std)

    def decode(
        self,
        feats: tuple[torch.Tensor, ...],
        points: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor,
        prev_logits: Optional[torch.Tensor] = None,
        box: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Prompts -> logits ``[B, 1, S/2, S/2]``.

        Args:
            points: ``[B, N, 2]`` float ``(x, y)`` in work-size pixel units (pixel centres at +0.5).
            labels: ``[B, N]`` (1 positive, 0 negative); ``valid``: ``[B, N]`` bool (padding off).
            prev_logits: ``[B, 1, S/2, S/2]`` or None. box: ``[B, 4]`` ``(x0, y0, x1, y1)`` work
                pixels, or None; rows of NaN mean "no box" for that prompt set.
        """
        s = self.cfg.work_size
        b = points.shape[0]
        clicks4 = click_maps(points, labels, valid, s // 4, s, self.cfg.click_sigmas)
        clicks2 = click_maps(points, labels, valid, s // 2, s, (self.cfg.fine_click_sigma,))
        prev2 = torch.sigmoid(prev_logits) if prev_logits is not None else points.new_zeros(b, 1, s // 2, s // 2)
        box4 = box_map(box, s // 4, s) if box is not None else points.new_zeros(b, 1, s // 4, s // 4)
        return self.decoder(feats, clicks4, clicks2, prev2, box4)


def click_maps(
    points: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, grid: int, work_size: int, sigmas: tuple[float, ...]
) -> torch.Tensor:
    """Gaussian click maps ``[B, 2*len(sigmas), grid, grid]``: positive maps, then negative maps.

    ``points`` are ``(x, y)`` in work-size pixel units; each map is the max over clicks of
    ``exp(-d^2 / (2 sigma^2))`` with ``d`` in grid cells.
    """
    b, n = points.shape[:2]
    scale = grid / work_size
    coords = (torch.arange(grid, dtype=points.dtype, device=points.device) + 0.5)
    if n == 0:
        return points.new_zeros(b, 2 * len(sigmas), grid, grid)
    px = points[..., 0] * scale  # [B, N]
    py = points[..., 1] * scale
    dx2 = (coords.view(1, 1, grid) - px.unsqueeze(-1)) ** 2  # [B, N, G]
    dy2 = (coords.view(1, 1, grid) - py.unsqueeze(-1)) ** 2
    d2 = dy2.unsqueeze(-1) + dx2.unsqueeze(-2)  # [B, N, G(row), G(col)]
    pos = (labels == 1) & valid
    neg = (labels != 1) & valid
    out = []
    for sel in (pos, neg):
        big = torch.where(sel.view(b, n, 1, 1), d2, torch.full_like(d2, 1e9))
        dmin = big.min(dim=1).values  # [B, G, G]
        out.extend(torch.exp(-dmin / (2.0 * sig * sig)) for sig in sigmas)
    return torch.stack(out, 1)


def box_map(box: torch.Tensor, grid: int, work_size: int) -> torch.Tensor:
    """Filled box maps ``[B, 1, grid, grid]`` (1 inside); a NaN row gives zeros."""
    b = box.shape[0]
    centres = (torch.arange(grid, dtype=box.dtype, device=box.device) + 0.5) * (work_size / grid)
    has = torch.isfinite(box).all(dim=1).view(b, 1, 1)
    bx = torch.nan_to_num(box, nan=-1.0)
    inside_x = (centres.view(1, grid) >= bx[:, 0:1]) & (centres.view(1, grid) <= bx[:, 2:3])  # [B, G]
    inside_y = (centres.view(1, grid) >= bx[:, 1:2]) & (centres.view(1, grid) <= bx[:, 3:4])
    m = inside_y.unsqueeze(2) & inside_x.unsqueeze(1) & has
    return m.unsqueeze(1).to(box.dtype)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm into the conv before it (inference only; same outputs to ~1e-6).

    Per-click cost is dominated by many small ops on one core, so removing a third of them pays.
    """
    for module in model.modules():
        if isinstance(module, nn.Sequential) and len(module) >= 2 and isinstance(module[0], nn.Conv2d) and isinstance(module[1], nn.BatchNorm2d):
            conv, bn = module[0], module[1]
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True).to(conv.weight.device)
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
                base = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
                fused.bias.copy_((base - bn.running_mean) * scale + bn.bias)
            module[0], module[1] = fused, nn.Identity()
    return model
