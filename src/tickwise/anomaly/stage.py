"""The live anomaly stage: every closed bar is scored (before it is learned) by each
configured detector; anomalies go to the ``anomalies`` table and topic, and alert rules
turn them into notifications delivered by a background outbox whose statuses land in the
``alerts`` table. Started with a warehouse, the stage re-queues the deliveries that table
still holds as ``pending`` (each symbol's when its first bar arrives), so alerts left
undelivered by a restart are sent after it. With a ``history`` of stored bars, each series
the stage has not seen yet is first stepped through its last ``warmup_bars`` stored bars
(scored and learned, nothing emitted), so a restarted stage goes on where it left off
instead of being blind while its bands and thresholds warm up again.

Bars of one call are processed one bar time after another: each step holds every symbol's
bar of that time, one vectorised step over symbols, in which the symbols are each other's
market context (`tickwise.anomaly.market`; ``market="off"``, ``TICKWISE_ANOMALY_MARKET=off``,
scores every bar alone, for symbols of a timeframe that are not one market).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from tickwise.alerts.notifiers import LogNotifier, Notifier, SnsNotifier, WebhookNotifier
from tickwise.alerts.outbox import Delivery, Outbox
from tickwise.alerts.rules import Alert, AlertRouter, AlertRule
from tickwise.alerts.tables import ALERTS
from tickwise.anomaly import DETECTORS, make_bands, make_model, threshold_settings
from tickwise.anomaly.explain import Explanation
from tickwise.anomaly.multi import MultiSymbolDetector
from tickwise.anomaly.seasonal import Seasonality
from tickwise.anomaly.tables import ANOMALIES, ANOMALY_STATE
from tickwise.anomaly.threshold import ThresholdSettings
from tickwise.bus.base import ANOMALIES as ANOMALIES_TOPIC
from tickwise.codec import encode_json
from tickwise.config import Settings
from tickwise.exceptions import ConfigError
from tickwise.pipeline.stages import (
    History,
    StageOutput,
    new_series,
    stored_bars,
    warehouse_history,
)
from tickwise.store.base import Warehouse
from tickwise.timeframes import timeframe_ns

_FIELDS = ("open", "high", "low", "close", "volume")
#: the ``symbol`` of an ``anomaly_state`` row holding a detector's model, shared by its symbols
MODEL_ROW = ""

log = logging.getLogger(__name__)


class AnomalyStage:
    """A `BarStage` running anomaly detectors and alert rules on closed bars.

    With ``warehouse``, the deliveries its ``alerts`` table holds as ``pending`` for this
    stage's notifiers are loaded at start and re-queued (`Outbox.restore`: attempts continue
    from the stored count) when the stage first sees a bar of their symbol: with several
    workers sharing a warehouse, only the one whose partitions carry the symbol resends
    them, and only those the table still holds as pending then (another worker may have sent
    them since). Pending deliveries for notifiers no longer configured are left as they are and
    logged once. The router's memory is restored from the same table (`AlertRouter.restore`,
    the newest ``alert_memory`` alerts): an anomaly replayed after the restart raises no
    second alert, and each (symbol, rule) cooldown runs on from its newest alert.

    With ``time_of_day="auto"``, bars of timeframes from 1m to under a day are measured
    against their own slot of the day in exchange time zone ``tz`` (`tickwise.anomaly.seasonal`).

    With ``history`` (`tickwise.pipeline.stages.warehouse_history`), the first bars of a
    series this stage has not seen are preceded by up to ``warmup_bars`` of its stored bars
    before them, run through the detectors exactly as live bars are (bands, time-of-day
    profile, thresholds and model refits learn them) but emitting no anomaly and no alert:
    after a restart or a failover each series is scored from its first bar on, with the
    state an uninterrupted run would have had if ``warmup_bars`` covers what that state
    remembers (the thresholds read the last 2,000 scores; the default 2,100 covers them and
    the 60-bar bands). Without it a series scores nothing for its first 220 bars (20 for the
    bands, 200 scores for a first threshold) and the Isolation Forest nothing until it has
    2,000 windows for its first fit.

    With ``warehouse`` and ``checkpoint_s`` > 0, every ``checkpoint_s`` seconds (and in
    `on_stop`) `on_bars` also returns the state of each series stepped since the last save
    (`checkpoint`: rows of the ``anomaly_state`` table, committed with its anomalies). For a
    new series, each detector with a saved state of the same `MultiSymbolDetector.config` is
    loaded from it and then steps only the stored bars after the bar it was saved at (a
    detector without one, its last ``warmup_bars``), and bars that state has learned are
    dropped if the bus replays them; so the time-of-day profile, which remembers more
    sessions than the warm-up reads, comes back whole too.

    Examples
    --------
    >>> from tickwise.alerts.notifiers import MemoryNotifier
    >>> stage = AnomalyStage(timeframes=("1m",), detectors=("zscore",), notifiers=[MemoryNotifier()])
    >>> stage.on_bars(pl.DataFrame()).tables
    {}
    >>> stage.close()
    """

    name = "anomaly"
    outputs = (ANOMALIES.name,)

    def __init__(self, *, timeframes: Sequence[str], detectors: Sequence[str] = ("zscore",),
                 rules: Sequence[AlertRule] | None = None, notifiers: Sequence[Notifier] | None = None,
                 false_alarm_rate: float = 1e-3, outbox: Outbox | None = None,
                 window: int = 60, warehouse: Warehouse | None = None, alert_memory: int = 100_000,
                 time_of_day: str = "auto", tz: str = "America/New_York",
                 history: History | None = None, warmup_bars: int = 2100, checkpoint_s: float = 300.0,
                 market: str = "on") -> None:
        for d in detectors:
            if d not in DETECTORS:
                raise ConfigError(f"setting TICKWISE_ANOMALY_DETECTORS must name {', '.join(DETECTORS)}, was {d!r}")
        if alert_memory < 1:
            raise ConfigError(f"alert_memory must be >= 1 (alerts remembered across a restart), was {alert_memory}")
        if not checkpoint_s >= 0:
            raise ConfigError(f"setting TICKWISE_ANOMALY_CHECKPOINT_S must be >= 0 (0: off), was {checkpoint_s}")
        if warmup_bars < 0:
            raise ConfigError(f"setting TICKWISE_ANOMALY_WARMUP_BARS must be >= 0, was {warmup_bars}")
        if time_of_day not in ("auto", "off"):
            raise ConfigError(f"setting TICKWISE_ANOMALY_TIME_OF_DAY must be auto or off, was {time_of_day!r}")
        if market not in ("on", "off"):
            raise ConfigError(f"setting TICKWISE_ANOMALY_MARKET must be on or off, was {market!r}")
        self._market = market == "on"
        # intraday timeframes are measured against their own time of day (tickwise.anomaly.seasonal)
        try:
            self._season = Seasonality(tz=tz) if time_of_day == "auto" else None
        except ConfigError as exc:
            raise ConfigError(f"setting TICKWISE_ANOMALY_TZ: {exc}") from None
        self.timeframes = tuple(timeframes)
        self.detector_names = tuple(detectors)
        if "classifier" in self.detector_names:
            from tickwise.anomaly.learned import Training, first_use_note, trained_soon

            note = first_use_note(Training(), market=self._market)
            if note:
                log.warning("%s; fitting in the background: until it is done the classifier scores no bars, "
                            "the other detectors score every one", note)
            # load them now, or start their fits: the market-context ensemble first, since a live
            # step holds every symbol's bar of one bar time (only a symbol alone needs the other)
            for training in (Training(market=True), Training()) if self._market else (Training(),):
                trained_soon(training)
        self._q = false_alarm_rate
        ThresholdSettings(q=false_alarm_rate)  # validate early
        self._window = window
        self._engines: dict[tuple[str, str], MultiSymbolDetector] = {}
        self.router = AlertRouter(list(rules or [AlertRule(name="anomaly", cooldown_s=300.0)]),
                                  max_remembered=alert_memory)
        self.outbox = outbox or Outbox(list(notifiers or [LogNotifier()]))
        self._saved: dict[str, list[Delivery]] = {}
        self._history = history
        self._warmup_bars = warmup_bars
        self._series: set[tuple[str, str]] = set()  # (symbol, timeframe) seen by this stage
        #: stored bars stepped through to warm series up, and series restored from saved state
        self.warmed_bars = self.restored_series = 0
        self._checkpoint_s = checkpoint_s
        self._checkpointed = time.monotonic()
        self._touched: dict[tuple[str, str], int] = {}  # (symbol, timeframe) -> last ts stepped since a save
        self._skip: dict[tuple[str, str], int] = {}  # series loaded from a saved state -> its last bar's ts
        self._model_saved: dict[tuple[str, str], tuple[int, int, int]] = {}  # engine -> (fits, windows, since) saved
        #: set by `StageRunner`: keeps its partitions while a warm-up runs longer than a lease
        self.keepalive: Callable[[], None] | None = None
        self._warehouse = warehouse
        if warehouse is not None:
            self._restore(warehouse)

    def revoked(self, timeframe: str) -> None:
        """This stage no longer receives ``timeframe``'s bars (a rebalance gave them to another
        worker): forget its detectors' state, so the series warm up again from stored bars if
        they come back, and hand its pending alert deliveries over to that worker, which
        resends them from the ``alerts`` table (`StageRunner` calls this)."""
        self._engines = {k: v for k, v in self._engines.items() if k[0] != timeframe}
        self._series = {k for k in self._series if k[1] != timeframe}
        # never save a state of series another worker owns now: it would overwrite a newer one
        self._touched = {k: v for k, v in self._touched.items() if k[1] != timeframe}
        self._skip = {k: v for k, v in self._skip.items() if k[1] != timeframe}
        self._model_saved = {k: v for k, v in self._model_saved.items() if k[0] != timeframe}
        n = self.outbox.hand_over(lambda d: d.alert.anomaly.get("timeframe") != timeframe)
        for symbol, saved in list(self._saved.items()):
            self._saved[symbol] = [d for d in saved if d.alert.anomaly.get("timeframe") != timeframe]
        if n:
            log.info("handed %d pending alert deliveries of %s bars over to their new owner", n, timeframe)

    def assigned(self, timeframe: str) -> None:
        """This stage receives ``timeframe``'s bars now (at start, or taken over from another
        worker): read the router's memory and the pending deliveries from the ``alerts`` table
        again, so alerts the previous owner raised keep their cooldowns and its undelivered
        ones are resent here (`StageRunner` calls this)."""
        if self._warehouse is not None:
            self._restore(self._warehouse)

    def _restore(self, warehouse: Warehouse) -> None:
        # Two bounded reads, not the whole table (it grows with history): the newest rows
        # for the router's memory (an alert has one row per notifier it went to), and the
        # pending deliveries, however old.
        rows = self.router.max_remembered * max(1, len(self.outbox.notifiers))
        recent = _epoch_ns(pl.from_arrow(warehouse.read(ALERTS.name, order_by="ts", last=rows)), _ALERT_TIMES)
        raised = recent.unique("alert_id", keep="last", maintain_order=True).tail(self.router.max_remembered)
        if raised.height:
            n = self.router.restore(zip(raised["alert_id"], raised["symbol"], raised["rule"], raised["ts"], strict=True))
            log.info("restored %d alert ids and the cooldowns of %d (symbol, rule) pairs from the alerts table",
                     raised.height, n)
        saved = saved_deliveries(warehouse, status="pending")
        here = [d for d in saved if d.notifier in self.outbox.notifiers]
        gone = Counter(d.notifier for d in saved if d.notifier not in self.outbox.notifiers)
        if gone:
            log.warning("%d pending alert deliveries are for notifiers no longer configured (%s); they stay "
                        "pending in the alerts table", sum(gone.values()),
                        ", ".join(f"{name}: {n}" for name, n in sorted(gone.items())))
        orphans = sum(d.alert.anomaly["score"] is None for d in here)
        if orphans:
            log.warning("%d pending alert deliveries have no row in the anomalies table; they are resent "
                        "without score, threshold and ts_detected", orphans)
        self._saved = {}
        for d in here:
            self._saved.setdefault(str(d.alert.anomaly["symbol"]), []).append(d)
        if here:
            log.info("loaded %d pending alert deliveries from the alerts table; each is re-queued when a bar "
                     "of its symbol arrives", len(here))

    def _restore_symbols(self, symbols: Sequence[str]) -> None:
        due = [d for s in symbols for d in self._saved.pop(s, [])]
        if due and self._warehouse is not None:
            due = self._still_pending(due)
        if due:
            restored = self.outbox.restore(due)
            log.info("re-queued %d pending alert deliveries for %s", len(restored), ", ".join(sorted(set(symbols))))

    def _still_pending(self, due: list[Delivery]) -> list[Delivery]:
        # What this stage loaded at start may have been delivered since by the worker that
        # owned the symbol's partition then (a rebalance moved it here): ask the table again.
        assert self._warehouse is not None
        first = min(int(d.alert.anomaly.get("ts") or 0) for d in due)  # type: ignore[call-overload]
        symbols = {str(d.alert.anomaly["symbol"]) for d in due}
        rows = pl.from_arrow(self._warehouse.read(ALERTS.name, start_ts=first)).filter(  # type: ignore[union-attr]
            pl.col("symbol").is_in(symbols))
        now = {(r["alert_id"], r["notifier"]): r["status"] for r in rows.iter_rows(named=True)}  # type: ignore[union-attr]
        keep = [d for d in due if now.get((d.alert.alert_id, d.notifier), "pending") == "pending"]
        if len(keep) < len(due):
            log.info("%d pending alert deliveries were delivered by another worker meanwhile; not resent",
                     len(due) - len(keep))
        return keep

    def _engine(self, timeframe: str, detector: str) -> MultiSymbolDetector:
        key = (timeframe, detector)
        if key not in self._engines:
            # a slot of the day needs bars of a minute or more (a second bar's slot would take
            # ten days of 86,400 slots to learn), and under a day (a daily bar has one slot)
            intraday = 60 * 10**9 <= timeframe_ns(timeframe) < 86_400 * 10**9
            self._engines[key] = MultiSymbolDetector(
                make_model(detector), bands=make_bands(detector, window=self._window),
                thresholds=threshold_settings(detector, q=self._q),
                seasonality=self._season if intraday else None, market=self._market)
        return self._engines[key]

    def on_bars(self, bars: pl.DataFrame) -> StageOutput:
        """Score, threshold, explain, then learn every bar; route anomalies to alerts."""
        out = StageOutput()
        rows: list[dict[str, object]] = []
        if bars.height and self._saved:
            self._restore_symbols([s for s in bars.get_column("symbol").unique().to_list() if s in self._saved])
        if bars.height:
            bars = self._warm_up(bars)
            for symbol, timeframe, ts in bars.group_by("symbol", "timeframe").agg(
                    pl.col("ts").max().dt.epoch("ns")).iter_rows():
                self._touched[(symbol, timeframe)] = ts
            for timeframe, steps in self._steps(bars).items():
                for symbols, fields, ts in steps:
                    rows.extend(self._round(timeframe, symbols, fields, ts))
        if rows:
            table = pl.DataFrame(rows).with_columns(
                pl.col("ts").cast(pl.Datetime("ns", "UTC")), pl.col("ts_detected").cast(pl.Datetime("ns", "UTC")))
            out.tables[ANOMALIES.name] = table
            out.topics[ANOMALIES_TOPIC] = [encode_json(r) for r in rows]
            self._recall(rows)
            self.outbox.submit(self.router.route(rows))
        changes = self.outbox.changes()
        if changes:
            out.tables[ALERTS.name] = alert_rows(changes)
        if self._touched and self._saving() and time.monotonic() - self._checkpointed >= self._checkpoint_s:
            out.tables[ANOMALY_STATE.name] = self.checkpoint()
        return out

    def on_stop(self) -> StageOutput:
        """The state of the series stepped since the last save, on a clean stop (`StageRunner`
        commits it), so the next start steps no bar again."""
        out = StageOutput()
        if self._touched and self._saving():
            out.tables[ANOMALY_STATE.name] = self.checkpoint()
        return out

    def _saving(self) -> bool:
        return self._warehouse is not None and self._checkpoint_s > 0

    def checkpoint(self) -> pl.DataFrame:
        """The saved state (rows of the ``anomaly_state`` table) of every series stepped since
        the last save, one row per detector, plus one per detector fitted on all symbols'
        windows whose model changed since (``symbol`` `MODEL_ROW`); `on_bars` returns it every
        ``checkpoint_s`` with the anomalies, so the runner commits both in one transaction."""
        rows = []
        now = time.time_ns()
        for (symbol, timeframe), ts in self._touched.items():
            for name in self.detector_names:
                engine = self._engines.get((timeframe, name))
                if engine is None or symbol not in engine.bank.index:
                    continue
                rows.append({"timeframe": timeframe, "symbol": symbol, "detector": name, "ts": ts,
                             "config": engine.config(), "state": engine.export_state(symbol), "ts_updated": now})
        for (timeframe, name), engine in self._engines.items():
            if engine.shared_model and self._model_saved.get((timeframe, name)) != engine.model_version:
                self._model_saved[(timeframe, name)] = engine.model_version
                last = max((t for (_, tf), t in self._touched.items() if tf == timeframe), default=0)
                rows.append({"timeframe": timeframe, "symbol": MODEL_ROW, "detector": name, "ts": last,
                             "config": engine.config(), "state": engine.export_model_state(), "ts_updated": now})
        self._touched = {}
        self._checkpointed = time.monotonic()
        return pl.DataFrame(rows, schema={"timeframe": pl.Utf8, "symbol": pl.Utf8, "detector": pl.Utf8,
                                          "ts": pl.Int64, "config": pl.Utf8, "state": pl.Binary,
                                          "ts_updated": pl.Int64}).with_columns(
            pl.col("ts").cast(pl.Datetime("ns", "UTC")), pl.col("ts_updated").cast(pl.Datetime("ns", "UTC")))

    def _recall(self, rows: list[dict[str, object]]) -> None:
        """Before routing anomalies, learn the alerts raised around them that are in the table
        but not in this router (another worker's: on scale-out a symbol's 1m and 5m bars may be
        analysed by different workers, and a rebalance moves them), so a (symbol, rule) cooldown
        holds across workers. One read of the alerts within the longest cooldown of the anomalies."""
        if self._warehouse is None:
            return
        reach = int(max(r.cooldown_s for r in self.router.rules) * 1e9)
        times = [int(r["ts"]) for r in rows]  # type: ignore[call-overload]
        near = pl.from_arrow(self._warehouse.read(ALERTS.name, start_ts=min(times) - reach,
                                                  end_ts=max(times) + reach + 1))
        symbols = {str(r["symbol"]) for r in rows}
        near = _epoch_ns(near, _ALERT_TIMES).filter(pl.col("symbol").is_in(symbols))  # type: ignore[arg-type]
        if near.height:
            self.router.restore(zip(near["alert_id"], near["symbol"], near["rule"], near["ts"], strict=True))

    def _warm_up(self, bars: pl.DataFrame) -> pl.DataFrame:
        """Bring series new to this stage up to date before their first bar here: load their
        saved state where there is one, then step them through their stored bars since (all
        their last ``warmup_bars`` without one). Returns ``bars`` less those a loaded state
        has already learned (replayed after a crash: their anomalies were committed with it)."""
        new = new_series(bars, self._series)
        self._series.update((s, tf) for s, tf, _ in new)
        start = time.perf_counter()
        loaded = self._load_states(new) if new else {}  # series -> {detector: ts of the last bar its state learned}
        since = {k: max(at.values()) for k, at in loaded.items()}
        # series whose every detector loaded a state: the stored bars after the oldest of them do
        whole = {k: min(at.values()) for k, at in loaded.items() if len(at) == len(self.detector_names)}
        self._skip.update(since)
        if self._skip:  # until a series' bars go past its loaded state, drop those it has learned
            bars = _after(bars, self._skip)
            for s, tf, _ in new_series(bars, ()):
                self._skip.pop((s, tf), None)
        if not new:
            return bars
        if since:
            left = dict(((s, tf), t) for s, tf, t in new_series(bars, ()))
            # a series all of whose bars here were learned: stored bars up to its state's last one
            new = [(s, tf, left.get((s, tf), since.get((s, tf), 0) + 1)) for s, tf, _ in new]
        if self._history is None or not self._warmup_bars:
            return bars
        stored = self._stored(new, whole)
        if not stored.height:
            return bars
        stored = stored.select("symbol", "timeframe", "ts", *_FIELDS)
        # a detector steps only the stored bars after the state it loaded, all of them without one
        later = _after(stored, whole) if whole else stored
        if not later.height:
            return bars
        by_cut: dict[frozenset[tuple[tuple[str, str], int]], dict[str, list]] = {}  # type: ignore[type-arg]
        for name in self.detector_names:
            mine = {k: at[name] for k, at in loaded.items() if name in at}
            cut = frozenset(mine.items())
            if cut not in by_cut:  # usually one for all detectors
                by_cut[cut] = self._steps(_after(stored, mine) if mine else stored)
            for timeframe, steps in by_cut[cut].items():
                self._engine(timeframe, name).warm(steps, tick=self.keepalive)
        self.warmed_bars += later.height
        log.info("anomaly detectors warmed up %d series from %d stored bars in %.1f s",
                 later.select("symbol", "timeframe").n_unique(), later.height, time.perf_counter() - start)
        return bars

    def _stored(self, new: Sequence[tuple[str, str, int]], since: dict[tuple[str, str], int]) -> pl.DataFrame:
        """Up to ``warmup_bars`` stored bars before the first bar here of each new series; of a
        series in ``since`` (every detector's state loaded) only as many as can have closed since
        the oldest of them was saved (one per interval), so a restart reads next to nothing."""
        cold = [x for x in new if (x[0], x[1]) not in since]
        loaded = [x for x in new if (x[0], x[1]) in since]
        parts = [stored_bars(self._history, cold, self._warmup_bars)] if cold else []  # type: ignore[arg-type]
        need = max(((t - since[(s, tf)] - 1) // timeframe_ns(tf) for s, tf, t in loaded), default=0)
        if need > 0:
            parts.append(stored_bars(self._history, loaded, min(need, self._warmup_bars)))  # type: ignore[arg-type]
        parts = [p for p in parts if p.height]
        return pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()

    def _load_states(self, new: Sequence[tuple[str, str, int]]) -> dict[tuple[str, str], dict[str, int]]:
        """Load the saved state of each new series, for each detector that has one saved by a
        detector of the same `MultiSymbolDetector.config` (and, for one fitted on all symbols'
        windows, the detector's saved model too, loaded into a detector that has not learned
        anything yet). Returns per series loaded the ts of the bar each detector's state was
        saved at (they differ where the configuration changed between runs); the detectors
        without one (added to the configuration, or with other settings) warm up from stored bars."""
        if not self._saving():
            return {}
        wanted = {(s, tf) for s, tf, _ in new}
        found: dict[tuple[str, str], dict[str, tuple[int, bytes]]] = {}
        models: set[tuple[str, str]] = set()  # (timeframe, detector) whose model is known here
        for timeframe in sorted({tf for _, tf, _ in new}):
            # the rows of these series and the models', not every symbol's (another worker's)
            symbols = [MODEL_ROW, *sorted(s for s, tf in wanted if tf == timeframe)]
            saved = _epoch_ns(pl.from_arrow(self._warehouse.read(  # type: ignore[union-attr, arg-type]
                ANOMALY_STATE.name, where={"timeframe": timeframe, "symbol": symbols})), ("ts",))
            configs = {n: self._engine(timeframe, n).config() for n in self.detector_names}
            for r in saved.filter(pl.col("symbol") == MODEL_ROW).iter_rows(named=True):
                engine = self._engine(timeframe, r["detector"]) if r["detector"] in configs else None
                if engine is None or configs[r["detector"]] != r["config"]:
                    continue
                if engine.model_version == (0, 0, 0):  # else it goes on with the model it has
                    engine.import_model_state(r["state"])
                    self._model_saved[(timeframe, r["detector"])] = engine.model_version
                models.add((timeframe, r["detector"]))  # a saved model may hold no window yet
            for n in self.detector_names:
                engine = self._engine(timeframe, n)
                if not engine.shared_model or engine.model_version != (0, 0, 0):
                    models.add((timeframe, n))
            for r in saved.filter(pl.col("symbol") != MODEL_ROW).iter_rows(named=True):
                key = (r["symbol"], timeframe)
                if key in wanted and configs.get(r["detector"]) == r["config"] and (timeframe, r["detector"]) in models:
                    found.setdefault(key, {})[r["detector"]] = (int(r["ts"]), r["state"])
        loaded = {}
        for key, states in found.items():
            for name, (_, data) in states.items():
                self._engine(key[1], name).import_state(key[0], data)
            loaded[key] = {name: ts for name, (ts, _) in states.items()}
        if loaded:
            self.restored_series += len(loaded)
            some = sum(len(at) < len(self.detector_names) for at in loaded.values())
            log.info("anomaly detectors loaded the saved state of %d series%s", len(loaded),
                     f" ({some} for some detectors only; the others warm up from stored bars)" if some else "")
        return loaded

    @staticmethod
    def _steps(bars: pl.DataFrame) -> dict[str, list[tuple[list[str], dict[str, np.ndarray], np.ndarray]]]:
        """Per timeframe, the bars as steps, oldest first: one step per bar time, holding every
        symbol's bar of that time (they are each other's market context); a bar the batch
        holds twice goes into a step of its own after the first."""
        frame = bars.sort("ts").with_columns(
            pl.col("ts").dt.epoch("ns").alias("_ts_ns"),
            pl.int_range(pl.len()).over("symbol", "timeframe", "ts").alias("_copy"),
        )
        out: dict[str, list[tuple[list[str], dict[str, np.ndarray], np.ndarray]]] = {}
        for (timeframe,), part in frame.group_by(["timeframe"], maintain_order=True):
            out[str(timeframe)] = [
                (rnd.get_column("symbol").to_list(),
                 {k: rnd.get_column(k).cast(pl.Float64).to_numpy() for k in _FIELDS},
                 rnd.get_column("_ts_ns").to_numpy())
                for _, rnd in part.group_by(["_ts_ns", "_copy"], maintain_order=True)
            ]
        return out

    def _round(self, timeframe: str, symbols: list[str], fields: dict[str, np.ndarray],
               ts: np.ndarray) -> list[dict[str, object]]:
        found: list[dict[str, object]] = []
        # whole microseconds, as the warehouse keeps them: a restored alert sends the same payload
        now = time.time_ns() // 1000 * 1000

        def row(symbol: str, bar_ts: int | None, name: str, score: float, threshold: float,
                e: Explanation | None) -> dict[str, object]:
            return {"symbol": symbol, "timeframe": timeframe, "ts": bar_ts, "detector": name, "score": score,
                    "threshold": threshold, "kind": e.kind if e else "", "explanation": e.text if e else "",
                    "ts_detected": now}

        for name in self.detector_names:
            res = self._engine(timeframe, name).step(symbols, fields, ts=ts)
            # anomalies of bars that waited for the model (the classifier's first fit) come first: they are older
            found += [row(a.symbol, a.ts, name, a.score, a.threshold, a.explanation) for a in res.late]
            found += [row(symbols[i], int(ts[i]), name, float(res.score[i]), float(res.threshold[i]),
                          res.explanations[i]) for i in np.flatnonzero(res.is_anomaly).tolist()]
        return found

    def close(self) -> None:
        self.outbox.close()


def alert_rows(deliveries: Sequence[Delivery]) -> pl.DataFrame:
    """Rows of the ``alerts`` table for delivery records."""
    recs = []
    for d in deliveries:
        a = d.alert.anomaly
        recs.append({
            "alert_id": d.alert.alert_id, "notifier": d.notifier, "rule": d.alert.rule,
            "symbol": a.get("symbol"), "timeframe": a.get("timeframe"), "ts": int(a.get("ts", 0)),  # type: ignore[call-overload]
            "detector": a.get("detector"), "kind": a.get("kind"), "explanation": a.get("explanation"),
            "suppressed": d.alert.suppressed, "status": d.status, "attempts": d.attempts,
            "last_error": d.last_error, "ts_created": d.ts_created, "ts_updated": d.ts_updated,
        })
    return pl.DataFrame(recs).with_columns(
        *(pl.col(c).cast(pl.Datetime("ns", "UTC")) for c in ("ts", "ts_created", "ts_updated")))


def saved_deliveries(warehouse: Warehouse, *, status: str = "pending") -> list[Delivery]:
    """Deliveries the ``alerts`` table holds with one status, oldest first, alerts rebuilt.

    The inverse of `alert_rows`: each `Alert` gets back its id, rule, suppressed count and
    the anomaly ``payload()`` sent, in the same key order. Score, threshold and
    ``ts_detected`` are not in the ``alerts`` table; they come from the ``anomalies`` row
    committed with the alert (None where that row is missing). The warehouse keeps
    timestamps in whole microseconds, so ``ts`` comes back exact for bars on whole
    microseconds (every timeframe's bars are).

    Examples
    --------
    >>> import tempfile
    >>> from tickwise.store.duckdb import DuckDBWarehouse
    >>> wh = DuckDBWarehouse(tempfile.mkdtemp() + "/w.duckdb")
    >>> anomaly = {"symbol": "X", "timeframe": "1m", "ts": 60 * 10**9, "detector": "zscore", "score": 9.5,
    ...            "threshold": 5.0, "kind": "gap", "explanation": "gap +9.5 sigma", "ts_detected": 10**18}
    >>> made = Delivery(Alert("a1", "r", anomaly, suppressed=2), "webhook", attempts=3)
    >>> wh.commit({"anomalies": pl.DataFrame([anomaly]).to_arrow(), "alerts": alert_rows([made]).to_arrow()})
    >>> [(d.notifier, d.attempts, d.alert.payload() == made.alert.payload()) for d in saved_deliveries(wh)]
    [('webhook', 3, True)]
    >>> wh.close()
    """
    alerts = _epoch_ns(pl.from_arrow(warehouse.read(ALERTS.name, where={"status": status}, order_by="ts_created")),
                       _ALERT_TIMES)
    if alerts.height == 0:
        return []
    found: dict[tuple[object, ...], dict[str, object]] = {}
    for (symbol, timeframe, detector), part in alerts.group_by(["symbol", "timeframe", "detector"]):
        rows = _epoch_ns(pl.from_arrow(warehouse.read(
            ANOMALIES.name, where={"symbol": symbol, "timeframe": timeframe, "detector": detector},
            start_ts=part["ts"].min(), end_ts=part["ts"].max() + 1000)), ("ts", "ts_detected"))  # type: ignore[operator]
        for r in rows.iter_rows(named=True):
            found[(r["symbol"], r["timeframe"], r["ts"], r["detector"])] = r
    out = []
    now = time.time_ns()
    for r in alerts.iter_rows(named=True):
        row = found.get((r["symbol"], r["timeframe"], r["ts"], r["detector"]), {})
        # key order of the anomaly dict the stage builds (the anomalies table's column order)
        anomaly = {c: r[c] if c in r else row.get(c) for c in ANOMALIES.column_names}
        out.append(Delivery(
            Alert(r["alert_id"], r["rule"], anomaly, int(r["suppressed"] or 0)), r["notifier"],
            status=r["status"], attempts=int(r["attempts"] or 0), last_error=r["last_error"] or "",
            ts_created=r["ts_created"] or now, ts_updated=r["ts_updated"] or now,
        ))
    return out


#: The ``alerts`` table's timestamp columns.
_ALERT_TIMES = ("ts", "ts_created", "ts_updated")


def _after(bars: pl.DataFrame, since: dict[tuple[str, str], int]) -> pl.DataFrame:
    """``bars`` less those of each ``(symbol, timeframe)`` in ``since`` at or before its ts (ns)."""
    cut = pl.DataFrame([(s, tf, t) for (s, tf), t in since.items()], orient="row",
                       schema={"symbol": pl.Utf8, "timeframe": pl.Utf8, "_since": pl.Int64})
    return bars.join(cut, on=["symbol", "timeframe"], how="left").filter(
        pl.col("_since").is_null() | (pl.col("ts").dt.epoch("ns") > pl.col("_since"))).drop("_since")


def _epoch_ns(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).dt.epoch("ns") for c in columns)


def make_stage(settings: Settings, *, warehouse: Warehouse | None = None) -> AnomalyStage:
    """Build the stage from settings (detectors, false-alarm rate, cooldown, notifiers).

    With ``warehouse`` (the running one, passed by `tickwise.app.build_stages`), pending
    alert deliveries of an earlier run are re-queued and each series warms up from its
    stored bars (``TICKWISE_ANOMALY_WARMUP_BARS``).
    """
    notifiers: list[Notifier] = [LogNotifier()]
    if settings.alert_webhook_url:
        notifiers.append(WebhookNotifier(settings.alert_webhook_url))
    if settings.alert_sns_topic_arn:
        notifiers.append(SnsNotifier(settings.alert_sns_topic_arn, endpoint_url=settings.alert_sns_endpoint or None))
    return AnomalyStage(
        timeframes=tuple(settings.timeframes), detectors=tuple(settings.anomaly_detectors),
        rules=[AlertRule(name="anomaly", cooldown_s=settings.alert_cooldown_s)],
        notifiers=notifiers, false_alarm_rate=settings.anomaly_false_alarm_rate, warehouse=warehouse,
        time_of_day=settings.anomaly_time_of_day, tz=settings.anomaly_tz,
        history=warehouse_history(warehouse) if warehouse is not None else None,
        warmup_bars=settings.anomaly_warmup_bars, checkpoint_s=settings.anomaly_checkpoint_s,
        market=settings.anomaly_market,
    )
