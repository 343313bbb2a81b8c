"""The feature extractor of ``benchmarks/train_rl.py``'s policies: a small CNN that keeps a ``G x G``
map (one cell per ``ClickGrid`` cell), conditioned on the caption's words by FiLM.

Why not SB3's default (``NatureCNN`` on the image, the one-hot words concatenated after it): measured
here, PPO with it for 51k steps collapsed to ONE constant click whatever the image and text (mIoU@1
0.058 on 100 Shapes test items, below the random agent). A click policy has to say *where*, and
*which object the words name*: this extractor keeps the map at the grid's resolution (so the action
head, a linear layer, reads each cell's features at a fixed place), adds x / y coordinate channels
(for "on the left", "at the top"), and lets the words scale and shift every channel (FiLM) so that
"red" can switch on red-selective channels before the map is read.

Lives in the package (not in the training script) because SB3 saves the class by import path in
``model.zip``: the ``sb3`` agent loads it without importing ``benchmarks``.
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class WordFiLMGridCNN(BaseFeaturesExtractor):
    """``overlay`` (3xSxS in [0, 1], as SB3 hands it over) + one-hot ``text_words`` -> features.

    Layout: [RGB, x, y] -> conv 3x3 stride 2 (16) -> conv 3x3 stride 2 (``channels``) -> FiLM ->
    adaptive average pool to ``grid x grid`` -> conv 3x3 (``channels``) -> FiLM -> ReLU; the words
    (one-hot, flattened) -> linear -> ``embed`` -> the two FiLM's (gamma, beta). Features: the
    flattened map (``channels * grid^2``) then the word embedding. ~3 M multiply-adds at S=64.

    Args:
        observation_space: the Dict space of ``make_sb3_env(text="words")`` (SB3 passes it).
        grid: the ``ClickGrid`` side G the map is pooled to.
        channels: channels of the map.
        embed: size of the word embedding.
    """

    def __init__(self, observation_space: spaces.Dict, grid: int = 8, channels: int = 32, embed: int = 64) -> None:
        image = observation_space["overlay"]
        words = observation_space["text_words"]
        n_words = int(sum(words.nvec))
        super().__init__(observation_space, features_dim=channels * grid * grid + embed)
        c_in = min(image.shape[0], image.shape[-1])  # 3, channels-first or last
        self.grid = int(grid)
        self.channels = int(channels)
        self.stem = nn.Sequential(nn.Conv2d(c_in + 2, 16, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, channels, 3, stride=2, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(self.grid)
        self.head = nn.Conv2d(channels, channels, 3, padding=1)
        self.words = nn.Sequential(nn.Linear(n_words, embed), nn.ReLU())
        self.film = nn.Linear(embed, 4 * channels)
        nn.init.zeros_(self.film.weight)  # FiLM starts as the identity (gamma = 1, beta = 0)
        nn.init.zeros_(self.film.bias)

    @staticmethod
    def _with_coordinates(x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h, device=x.device).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1.0, 1.0, w, device=x.device).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.cat([x, xs, ys], dim=1)

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        image = observations["overlay"]
        if image.shape[-1] == 3 and image.shape[1] != 3:  # channels-last (SB3 transposes; this is a guard)
            image = image.permute(0, 3, 1, 2)
        text = self.words(observations["text_words"].float().flatten(1))
        g1, b1, g2, b2 = self.film(text).chunk(4, dim=1)
        x = self.stem(self._with_coordinates(image.float()))
        x = torch.relu(x * (1 + g1[:, :, None, None]) + b1[:, :, None, None])
        x = self.head(self.pool(x))
        x = torch.relu(x * (1 + g2[:, :, None, None]) + b2[:, :, None, None])
        return torch.cat([x.flatten(1), text], dim=1)
