"""An LSTM that predicts the next bar's open, high, low and close (PyTorch, CPU).

Inputs: a window of ``window`` bars, each described relative to the close before it
(``log(open/prev_close)``, same for high, low and close, and the log change of volume),
standardized with the training set's mean and spread. Outputs, relative to the last close
``c``: ``r_o = log(open/c)``, ``r_c = log(close/c)``, and two wicks ``u = log(high/max(o, c'))``
and ``d = log(min(o, c')/low)`` passed through softplus, so ``u, d >= 0`` and the predicted
bar is coherent by construction (``low <= open, close <= high``). The model predicts
log-ratios, never price levels, so one network serves every symbol and price scale.

Training is seeded and single-process: the same data, seed and thread count give the same
weights. The last ``val_fraction`` of the windows (the most recent, never shuffled into
training) is held out; the best epoch on it is kept, and the empirical quantiles of its
close residuals give the prediction intervals (widened by ``sqrt(k)`` for step ``k`` of a
recursive multi-step forecast).
"""

from __future__ import annotations

import io
import json
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from tickwise.exceptions import InputError
from tickwise.forecast.base import (
    DEFAULT_LEVELS,
    FloatArray,
    Forecast,
    as_series,
    check_horizon,
    check_levels,
)

VOLUME_CLIP = 5.0


def bar_features(bars: FloatArray) -> FloatArray:
    """Per-bar features relative to the previous close; row ``i`` describes bar ``i + 1``.

    Examples
    --------
    >>> b = np.array([[1.0, 1.0, 1.0, 1.0, 10.0], [1.0, 2.0, 1.0, 2.0, 10.0]])
    >>> bar_features(b).round(3).tolist()
    [[0.0, 0.693, 0.0, 0.693, 0.0]]
    """
    prev_close = bars[:-1, 3:4]
    prices = np.log(bars[1:, :4] / prev_close)
    vol = np.log1p(np.maximum(bars[:, 4], 0.0))
    dvol = np.clip(np.diff(vol), -VOLUME_CLIP, VOLUME_CLIP)[:, None]
    return np.concatenate([prices, dvol], axis=1)


def bar_targets(bars: FloatArray) -> FloatArray:
    """Targets of bar ``i + 1`` relative to the close of bar ``i``: r_o, r_c, u, d."""
    c = bars[:-1, 3]
    o, h, lo, cl = bars[1:, 0], bars[1:, 1], bars[1:, 2], bars[1:, 3]
    return np.stack([np.log(o / c), np.log(cl / c), np.log(h / np.maximum(o, cl)),
                     np.log(np.minimum(o, cl) / lo)], axis=1)


def _network(n_features: int, hidden: int, layers: int, dropout: float) -> Any:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True,
                                dropout=dropout if layers > 1 else 0.0)
            self.head = nn.Linear(hidden, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            z = self.head(out[:, -1, :])
            return torch.cat([z[:, :2], nn.functional.softplus(z[:, 2:])], dim=1)

    return Net()


class LSTMForecaster:
    """Next-bar OHLC from a window of bars, with intervals from held-out residuals.

    Examples
    --------
    >>> import torch; torch.set_num_threads(1)
    >>> rng = np.random.default_rng(0)
    >>> c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    >>> bars = np.stack([c, c * 1.01, c * 0.99, c, np.full(300, 1e6)], axis=1)
    >>> f = LSTMForecaster(window=10, epochs=2, hidden=8).forecast(bars, 1)
    >>> bool(f.low[0] <= min(f.open[0], f.mean[0]) <= max(f.open[0], f.mean[0]) <= f.high[0])
    True
    """

    name = "lstm"

    def __init__(self, *, window: int = 30, hidden: int = 32, layers: int = 1, dropout: float = 0.0,
                 epochs: int = 10, lr: float = 3e-3, batch_size: int = 256, val_fraction: float = 0.2,
                 weight_decay: float = 0.0, seed: int = 0) -> None:
        if window < 2:
            raise InputError(f"window must be >= 2, was {window}")
        if epochs < 1:
            raise InputError(f"epochs must be >= 1, was {epochs}")
        if not 0.0 < val_fraction < 0.9:
            raise InputError(f"val_fraction must be in (0, 0.9), was {val_fraction}")
        self.window = window
        self.hidden = hidden
        self.layers = layers
        self.dropout = dropout
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.weight_decay = weight_decay
        self.seed = seed
        self.net_: Any = None
        self.history_: deque[FloatArray] = deque(maxlen=window + 1)

    @property
    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("window", "hidden", "layers", "dropout", "epochs", "lr",
                                              "batch_size", "val_fraction", "weight_decay", "seed")}

    @property
    def min_length(self) -> int:
        # enough windows for a training set and a validation set of at least 10 each
        return self.window + 1 + int(np.ceil(10 / self.val_fraction))

    @property
    def is_fitted(self) -> bool:
        return self.net_ is not None

    def _windows(self, feats: FloatArray) -> FloatArray:
        from numpy.lib.stride_tricks import sliding_window_view

        return sliding_window_view(feats, (self.window, feats.shape[1]))[:, 0]

    def fit(self, y: npt.ArrayLike) -> Self:
        import torch

        bars = as_series(y, min_length=self.min_length, name=self.name, needs_bars=True)
        feats = bar_features(bars)  # row j describes bar j + 1
        targets = bar_targets(bars)  # row j is bar j + 1 relative to close j
        x_all = self._windows(feats)  # window i ends at bar i + window
        y_all = targets[self.window:]  # next bar after each window
        x_all = x_all[: y_all.shape[0]]
        n = x_all.shape[0]
        n_val = max(round(n * self.val_fraction), 10)
        n_train = n - n_val
        self.x_mean_ = feats[: n_train + self.window].mean(axis=0)
        self.x_std_ = feats[: n_train + self.window].std(axis=0) + 1e-8
        self.y_scale_ = np.abs(y_all[:n_train]).mean(axis=0) + 1e-8
        xs = torch.as_tensor((x_all - self.x_mean_) / self.x_std_, dtype=torch.float32)
        ys = torch.as_tensor(y_all / self.y_scale_, dtype=torch.float32)

        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        net = _network(feats.shape[1], self.hidden, self.layers, self.dropout)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = torch.nn.MSELoss()
        best = (float("inf"), None)
        self.train_losses_: list[float] = []
        self.epoch_s_: list[float] = []
        for _ in range(self.epochs):
            started = time.perf_counter()
            net.train()
            order = torch.randperm(n_train, generator=gen)
            total = 0.0
            for start in range(0, n_train, self.batch_size):
                idx = order[start:start + self.batch_size]
                opt.zero_grad()
                loss = loss_fn(net(xs[idx]), ys[idx])
                loss.backward()
                opt.step()
                total += loss.item() * idx.shape[0]
            self.train_losses_.append(total / n_train)
            self.epoch_s_.append(time.perf_counter() - started)
            net.eval()
            with torch.no_grad():
                val = float(loss_fn(net(xs[n_train:]), ys[n_train:]))
            if val < best[0]:
                best = (val, {k: v.clone() for k, v in net.state_dict().items()})
        net.load_state_dict(best[1])
        net.eval()
        self.net_ = net
        self.val_loss_ = best[0]
        with torch.no_grad():
            pred = net(xs[n_train:]).numpy().astype(np.float64) * self.y_scale_
        self.residuals_ = y_all[n_train:, 1] - pred[:, 1]  # close log-ratio errors
        self.history_ = deque(bars[-(self.window + 1):], maxlen=self.window + 1)
        return self

    def update(self, bar: npt.ArrayLike) -> None:
        """Append one new bar (open, high, low, close, volume); no retraining."""
        row = np.asarray(bar, dtype=np.float64)
        if row.shape != (5,) or not np.all(np.isfinite(row)) or np.any(row[:4] <= 0):
            raise InputError(f"lstm update needs one bar of 5 finite values with prices > 0, was {row.tolist()}")
        self.history_.append(row)

    def predict_next(self, histories: Sequence[FloatArray]) -> FloatArray:
        """Next-bar (open, high, low, close) for many bar histories in one batch.

        Each history needs at least ``window + 1`` bars; the result has one row per history.
        """
        import torch

        if self.net_ is None:
            raise InputError("lstm must be fitted before predict, was not")
        windows = []
        for hist in histories:
            if hist.shape[0] < self.window + 1:
                raise InputError(f"lstm needs {self.window + 1} bars to predict, was {hist.shape[0]}")
            windows.append(bar_features(hist[-(self.window + 1):]))
        xs = torch.as_tensor((np.stack(windows) - self.x_mean_) / self.x_std_, dtype=torch.float32)
        with torch.no_grad():
            out = self.net_(xs).numpy().astype(np.float64) * self.y_scale_
        last = np.array([hist[-1, 3] for hist in histories])
        op = last * np.exp(out[:, 0])
        cl = last * np.exp(out[:, 1])
        hi = np.maximum(op, cl) * np.exp(out[:, 2])
        lo = np.minimum(op, cl) * np.exp(-out[:, 3])
        return np.stack([op, hi, lo, cl], axis=1)

    def interval_offsets(self, levels: Sequence[int]) -> dict[int, tuple[float, float]]:
        """Log-ratio (lo, hi) offsets of the close for each level, from held-out residuals."""
        return {lv: (float(np.quantile(self.residuals_, 0.5 - lv / 200.0)),
                     float(np.quantile(self.residuals_, 0.5 + lv / 200.0))) for lv in levels}

    def predict(self, h: int, *, level: Sequence[int] = DEFAULT_LEVELS) -> Forecast:
        check_horizon(h)
        levels = check_levels(level)
        hist = np.asarray(self.history_)
        rows = []
        for _ in range(int(h)):
            nxt = self.predict_next([hist])[0]
            rows.append(nxt)
            # recursive: the predicted bar joins the window, volume carried forward
            hist = np.vstack([hist[1:], np.append(nxt, hist[-1, 4])])
        ohlc = np.asarray(rows)
        mean = ohlc[:, 3]
        steps = np.sqrt(np.arange(1, int(h) + 1, dtype=np.float64))
        sd = float(np.std(self.residuals_))
        offsets = self.interval_offsets(levels)
        lo = {lv: mean * np.exp(offsets[lv][0] * steps) for lv in levels}
        hi = {lv: mean * np.exp(offsets[lv][1] * steps) for lv in levels}
        return Forecast(mean=mean, se=mean * sd * steps, lo=lo, hi=hi,
                        open=ohlc[:, 0], high=ohlc[:, 1], low=ohlc[:, 2])

    def forecast(self, y: npt.ArrayLike, h: int, *, level: Sequence[int] = DEFAULT_LEVELS) -> Forecast:
        return self.fit(y).predict(h, level=level)

    def dumps(self) -> bytes:
        """Serialize weights (torch ``state_dict``) and scalers; loadable without pickle."""
        import torch

        buf = io.BytesIO()
        torch.save(self.net_.state_dict(), buf)
        meta = {"params": self.params, "x_mean": self.x_mean_.tolist(), "x_std": self.x_std_.tolist(),
                "y_scale": self.y_scale_.tolist(), "residuals": self.residuals_.tolist()}
        head = json.dumps(meta).encode()
        return len(head).to_bytes(8, "little") + head + buf.getvalue()

    @classmethod
    def loads(cls, data: bytes) -> LSTMForecaster:
        import torch

        size = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + size])
        model = cls(**meta["params"])
        model.x_mean_ = np.asarray(meta["x_mean"])
        model.x_std_ = np.asarray(meta["x_std"])
        model.y_scale_ = np.asarray(meta["y_scale"])
        model.residuals_ = np.asarray(meta["residuals"])
        net = _network(5, model.hidden, model.layers, model.dropout)
        net.load_state_dict(torch.load(io.BytesIO(data[8 + size:]), weights_only=True))
        net.eval()
        model.net_ = net
        return model
