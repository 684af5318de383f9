"""Buy/sell/hold signals on closed bars.

- `tickwise.signals.sma_cross`: the ``sma_cross`` rule, streaming (`SmaCross`) and batch
  (`sma_cross_signals`), with its exact definition.
- `tickwise.signals.tables`: the ``signals`` warehouse table.
- `tickwise.signals.stage`: the live stage run by ``tickwise up``.
"""

from __future__ import annotations

from tickwise.signals.sma_cross import (
    BUY,
    HOLD,
    RULE,
    SELL,
    SignalValue,
    SmaCross,
    SmaCrossParams,
    sma_cross_signals,
)

__all__ = ["BUY", "HOLD", "RULE", "SELL", "SignalValue", "SmaCross", "SmaCrossParams",
           "sma_cross_signals"]
