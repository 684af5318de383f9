"""tickwise: ticks to bars to signals, forecasts and anomalies, on a laptop or scaled out."""

from __future__ import annotations

__version__ = "0.1.0"
