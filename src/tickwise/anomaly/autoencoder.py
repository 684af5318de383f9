"""A small PyTorch autoencoder over windows of z-scored features (CPU, seeded).

Input: the newest ``lookback`` rows of z-scored features, clipped to ±`CLIP` and
flattened. The network (tanh layers, a narrow bottleneck) learns to reconstruct normal
windows; tanh saturates, so an extreme current row cannot be reconstructed. Score: mean
squared reconstruction error of the current (last) row; a feature's contribution is its
own squared error in that row. Training is deterministic for a given seed and data.
"""

from __future__ import annotations

import numpy as np

FloatArray = np.ndarray
CLIP = 12.0


class AutoencoderModel:
    """Autoencoder anomaly model.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> m = AutoencoderModel(epochs=5)
    >>> m.fit(rng.standard_normal((400, 4, 4)))
    >>> w = rng.standard_normal((2, 4, 4)); w[1, -1, 2] = 10.0
    >>> s = m.score_windows(w); bool(s[1] > s[0])
    True
    >>> int(np.argmax(m.attribute(w[1:])[0]))
    2
    """

    name = "autoencoder"
    needs_fit = True

    def __init__(self, *, lookback: int = 4, hidden: int = 16, bottleneck: int = 3,
                 epochs: int = 30, batch_size: int = 128, lr: float = 1e-2, seed: int = 0) -> None:
        if lookback < 1:
            raise ValueError(f"lookback must be >= 1, was {lookback}")
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, was {epochs}")
        self.lookback = lookback
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.seed = seed
        self.net_ = None

    def _x(self, windows: FloatArray) -> FloatArray:
        return np.clip(windows.reshape(windows.shape[0], -1), -CLIP, CLIP).astype(np.float32)

    def fit(self, windows: FloatArray) -> None:
        import torch
        from torch import nn

        torch.manual_seed(self.seed)
        x = torch.from_numpy(self._x(windows))
        d = x.shape[1]
        net = nn.Sequential(
            nn.Linear(d, self.hidden), nn.Tanh(),
            nn.Linear(self.hidden, self.bottleneck), nn.Tanh(),
            nn.Linear(self.bottleneck, self.hidden), nn.Tanh(),
            nn.Linear(self.hidden, d),
        )
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        gen = torch.Generator().manual_seed(self.seed)
        n = x.shape[0]
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, self.batch_size):
                batch = x[order[start:start + self.batch_size]]
                opt.zero_grad()
                loss = ((net(batch) - batch) ** 2).mean()
                loss.backward()
                opt.step()
        net.eval()
        # scored in float64: float32 sums differ with the batch's shape (one bar streamed vs a
        # whole series) by ~1e-6, which would break streaming == batch
        self.net_ = net.double()

    def _row_errors(self, windows: FloatArray) -> FloatArray:
        import torch

        if self.net_ is None:
            raise ValueError("model must be fitted before scoring, was not fitted")
        x = self._x(windows).astype(np.float64)
        with torch.no_grad():
            rec = self.net_(torch.from_numpy(x)).numpy()
        f = windows.shape[2]
        return ((rec - x) ** 2)[:, -f:]

    def score_windows(self, windows: FloatArray) -> FloatArray:
        return self._row_errors(windows).mean(axis=1)

    def attribute(self, windows: FloatArray) -> FloatArray:
        return self._row_errors(windows)

    def clone(self) -> AutoencoderModel:
        return AutoencoderModel(lookback=self.lookback, hidden=self.hidden, bottleneck=self.bottleneck,
                                epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed)
