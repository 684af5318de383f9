"""The on-disk model cache: fitted once per machine, refitted when anything it depends on changes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tickwise.anomaly import learned
from tickwise.anomaly.modelcache import ENV, STALE_S, cache_dir, cached, stored
from tickwise.exceptions import ConfigError


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(ENV, str(tmp_path / "models"))
    return tmp_path / "models"


def test_second_call_loads_from_disk_without_fitting(folder: Path):
    fits: list[int] = []

    def fit() -> dict[str, list[float]]:
        fits.append(1)
        return {"w": [1.0, 2.0]}

    assert not stored("m", "k")
    assert cached("m", "k", fit) == {"w": [1.0, 2.0]}
    assert stored("m", "k")
    assert cached("m", "k", fit) == {"w": [1.0, 2.0]}
    assert len(fits) == 1
    assert sorted(p.name for p in folder.iterdir()) == [".m-k.lock", "m-k.pkl"]  # no temporary file left behind
    assert cached("m", "other", fit) == {"w": [1.0, 2.0]} and len(fits) == 2


def test_a_write_removes_temporary_files_left_by_dead_writers_only(folder: Path):
    folder.mkdir(parents=True)
    dead = folder / ".classifier-old.pkl.abc.tmp"
    live = folder / ".classifier-new.pkl.def.tmp"
    dead.write_bytes(b"half a pickle")
    live.write_bytes(b"being written")
    long_ago = time.time() - 2 * STALE_S
    os.utime(dead, (long_ago, long_ago))
    assert cached("m", "k", lambda: {"w": 1}) == {"w": 1}
    assert not dead.exists()  # a writer that died an hour ago
    assert live.exists()  # maybe another process writing now
    assert (folder / "m-k.pkl").exists()


def test_unreadable_file_is_refitted_and_replaced(folder: Path, caplog: pytest.LogCaptureFixture):
    folder.mkdir(parents=True)
    (folder / "m-k.pkl").write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING):
        assert cached("m", "k", lambda: 42) == 42
    assert "could not be read" in caplog.text
    assert cached("m", "k", lambda: 43) == 42  # the refit replaced the broken file


def _fit_in_a_process(folder: Path, log: Path) -> subprocess.Popen[bytes]:
    """A process that fits model m-k into ``folder`` (slowly, noting the fit in ``log``) and prints it."""
    code = ("import os, sys, time\n"
            "from tickwise.anomaly.modelcache import cached\n"
            "def fit():\n"
            f"    open({str(log)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
            "    time.sleep(1.0)\n"
            "    return {'fitted by': os.getpid()}\n"
            "print(cached('m', 'k', fit)['fitted by'])\n")
    return subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, **{ENV: str(folder)}),
                            stdout=subprocess.PIPE)


def test_processes_wanting_the_same_model_at_once_fit_it_once(folder: Path, tmp_path: Path):
    log = tmp_path / "fits.log"
    procs = [_fit_in_a_process(folder, log) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    fitters = log.read_text().split()
    assert len(fitters) == 1  # the others waited for the lock, then loaded what the first stored
    assert outs == fitters * 3


def test_unwritable_folder_still_returns_the_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(ENV, str(blocker / "models"))  # a folder under a file cannot be made
    with caplog.at_level(logging.WARNING):
        assert cached("m", "k", lambda: 7) == 7
    assert "not writable" in caplog.text


def test_off_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(ENV, "off")
    monkeypatch.chdir(tmp_path)
    fits: list[int] = []
    for _ in range(2):
        cached("m", "k", lambda: fits.append(1))
    assert cache_dir() is None and len(fits) == 2 and list(tmp_path.iterdir()) == []


def test_default_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "tickwise" / "models"


def test_classifier_key_changes_with_its_settings():
    keys = {learned._cache_key(t) for t in (learned.Training(members=1), learned.Training(members=1, seed=1),
                                           learned.Training(members=1, exclude=("GOOG",)),
                                           learned.Training(members=1, kinds=("volume_burst",)))}
    assert len(keys) == 4
    assert learned._cache_key(learned.Training(members=1)) == learned._cache_key(learned.Training(members=1))


def test_classifier_member_fitted_in_another_process_scores_the_same(folder: Path):
    """A fresh process fits and stores the member; this one loads it and scores exactly as a fit here does."""
    training = learned.Training(members=1, copies=2, max_iter=20, exclude=("GOOG", "IBM", "MSFT"))
    code = ("from tickwise.anomaly import learned; "
            f"learned.trained(learned.Training(members=1, copies=2, max_iter=20, exclude={training.exclude!r}))")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert len(list(folder.glob("classifier-*.pkl"))) == 1
    learned._CACHE.pop(training, None)
    learned._FITS.pop(training, None)
    loaded = learned.trained(training)
    fresh = learned._fit(training)
    x = np.random.default_rng(0).normal(size=(200, loaded.members[0].n_features_in_))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(loaded.log_odds(x), learned.Ensemble([fresh]).log_odds(x))


def test_first_use_note_counts_the_members_still_to_fit(folder: Path):
    training = learned.Training(members=2, copies=1, max_iter=10, exclude=("GOOG", "IBM", "MSFT"))
    note = learned.first_use_note(training)
    assert note is not None and "2 model(s)" in note and str(folder) in note
    learned.trained(training)
    assert learned.to_fit(training) == 0 and learned.first_use_note(training) is None
    assert len(list(folder.glob("classifier-*.pkl"))) == 2
    for t in (training, *training.member_settings()):
        learned._CACHE.pop(t, None)
        learned._FITS.pop(t, None)
    assert learned.first_use_note(training) is None  # a new process would load both from disk


def test_ensemble_explanation_adds_up_to_its_score(folder: Path):
    """The members' mean attributions (path or exact SHAP) plus their mean base value give
    the ensemble's log-odds."""
    ensemble = learned.trained(learned.Training(members=2, copies=1, max_iter=10, exclude=("GOOG", "IBM", "MSFT")))
    x = np.random.default_rng(1).normal(0, 2, size=(50, ensemble.members[0].n_features_in_))  # type: ignore[attr-defined]
    path, exact = ensemble.contributions(x), ensemble.contributions(x, exact=True)
    base = np.mean([float(np.ravel(e.expected_value)[-1]) for e in ensemble._explainers])  # type: ignore[union-attr, attr-defined]
    for values in (path, exact):
        np.testing.assert_allclose(values.sum(axis=1) + base, ensemble.log_odds(x), atol=1e-6)
    assert not np.allclose(path, exact)  # two methods, not one under two names
    single = [learned.Ensemble([m]).log_odds(x) for m in ensemble.members]
    np.testing.assert_allclose(ensemble.log_odds(x), np.mean(single, axis=0))
    assert not np.allclose(single[0], single[1])  # the members differ: other injection seeds


def _forget(training: learned.Training) -> None:
    for setting in (training, replace(training, market=True)):
        for t in (setting, *setting.member_settings()):
            learned._CACHE.pop(t, None)
            learned._FITS.pop(t, None)
        learned._BACKGROUND.pop(setting, None)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Fits wait until the test sets the gate, so "not fitted yet" is not a race."""
    opened = threading.Event()
    fit = learned._fit

    def gated(training: learned.Training) -> object:
        assert opened.wait(timeout=60), "the test never opened the gate"
        return fit(training)

    monkeypatch.setattr(learned, "_fit", gated)
    yield opened
    opened.set()


def test_trained_soon_fits_in_the_background_once_then_returns_the_fit(folder: Path, gate: threading.Event):
    training = learned.Training(members=2, copies=1, max_iter=10, seed=5, exclude=("GOOG", "IBM", "MSFT"))
    _forget(training)
    try:
        assert learned.trained_soon(training) is None  # nothing stored: the fit starts, the caller goes on
        thread = learned._BACKGROUND[training]
        assert learned.trained_soon(training) is None and thread.is_alive()
        assert learned._BACKGROUND[training] is thread  # asked twice, started once
        gate.set()
        thread.join(timeout=120)
        assert not thread.is_alive()
        ready = learned.trained_soon(training)
        assert ready is learned.trained(training) and len(ready.members) == 2
        assert learned.to_fit(training) == 0
        _forget(training)  # a new process: stored on disk, loaded at once, no thread
        assert learned.trained_soon(training) is not None and training not in learned._BACKGROUND
    finally:
        _forget(training)


def test_a_stored_ensemble_loads_at_once_while_another_is_fitting(folder: Path, monkeypatch: pytest.MonkeyPatch):
    stored_one = learned.Training(members=1, copies=1, max_iter=10, seed=7, exclude=("GOOG", "IBM", "MSFT"))
    fitting = replace(stored_one, seed=8)
    _forget(stored_one)
    _forget(fitting)
    learned.trained(stored_one)
    _forget(stored_one)  # a process that has it on disk only
    started, opened = threading.Event(), threading.Event()
    fit = learned._fit

    def held(training: learned.Training) -> object:
        if training.seed == fitting.seed:
            started.set()
            assert opened.wait(timeout=60), "the test never let the fit go on"
        return fit(training)

    monkeypatch.setattr(learned, "_fit", held)
    try:
        assert learned.trained_soon(fitting) is None
        assert started.wait(timeout=60)  # the other ensemble is fitting now
        got: list[learned.Ensemble] = []
        loader = threading.Thread(target=lambda: got.append(learned.trained(stored_one)))
        loader.start()
        loader.join(timeout=30)
        assert not loader.is_alive(), "loading a stored ensemble waited for another ensemble's fit"
        assert len(got[0].members) == 1 and learned._BACKGROUND[fitting].is_alive()
    finally:
        opened.set()
        learned._BACKGROUND[fitting].join(timeout=120)
        _forget(stored_one)
        _forget(fitting)


@pytest.mark.parametrize("peers", [False, True], ids=["alone", "market"])
def test_live_engine_scores_nothing_until_the_background_fit_is_done_then_scores(folder: Path, gate: threading.Event,
                                                                                  peers: bool):
    """The live path (MultiSymbolDetector) never waits for the classifier's first fit: its
    bars are learned meanwhile, and scored once the fit is there. With ``peers`` the two
    symbols' bars share their times, so they are scored by the market-context ensemble,
    fitted in the background too."""
    from tickwise.anomaly import make_bands
    from tickwise.anomaly.multi import MultiSymbolDetector
    from tickwise.anomaly.threshold import ThresholdSettings

    # two training stocks for the market-context ensemble (one has no market to learn from)
    exclude = ("GOOG", "IBM") if peers else ("GOOG", "IBM", "MSFT")
    training = learned.Training(members=1, copies=1, max_iter=10, seed=6, exclude=exclude)
    _forget(training)
    try:
        rng = np.random.default_rng(3)
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (80, 2)), axis=0))
        volume = rng.lognormal(10, 0.2, (80, 2))
        fields = [{"open": c, "high": c * 1.01, "low": c * 0.99, "close": c, "volume": v}
                  for c, v in zip(close, volume, strict=True)]

        def engine() -> MultiSymbolDetector:
            return MultiSymbolDetector(learned.ClassifierModel(training=training),
                                       bands=make_bands("classifier", window=20),
                                       thresholds=ThresholdSettings(min_scores=20, q=0.01))

        def ts(t: int) -> np.ndarray:
            return np.array([t, t]) if peers else np.array([2 * t, 2 * t + 1])

        det = engine()
        early = [det.step(["A", "B"], f, ts=ts(t)) for t, f in enumerate(fields[:40])]
        assert all(np.isnan(r.score).all() and not r.is_anomaly.any() for r in early)
        threads = [learned._BACKGROUND[t] for t in (training, replace(training, market=True)) if t in learned._BACKGROUND]
        assert len(threads) == (2 if peers else 1) and all(t.is_alive() for t in threads)
        gate.set()
        for thread in threads:
            thread.join(timeout=120)
        late = [det.step(["A", "B"], f, ts=ts(t)) for t, f in enumerate(fields[40:], start=40)]
        assert np.isfinite(late[-1].score).all()
        # the bars seen while waiting were learned, and scored when the fit came: scores and
        # thresholds equal those of a detector that never waited, its early anomalies came late
        ref = engine()
        steps = [ref.step(["A", "B"], f, ts=ts(t)) for t, f in enumerate(fields)]
        never_waited = steps[40:]
        np.testing.assert_allclose([r.score for r in late], [r.score for r in never_waited])
        np.testing.assert_allclose([r.threshold for r in late], [r.threshold for r in never_waited])
        early_found = [(s, float(r.score[i])) for t, r in enumerate(steps[:40])
                       for i, s in enumerate(r.symbols) if r.is_anomaly[i]]
        assert [(a.symbol, a.score) for a in late[0].late] == early_found
        assert all(not r.late for r in late[1:])
    finally:
        _forget(training)


def test_prepare_fits_and_stores_only_the_members_not_stored(folder: Path):
    training = learned.Training(members=2, copies=1, max_iter=10, seed=11, exclude=("GOOG", "IBM", "MSFT"))
    _forget(training)
    said: list[str] = []
    try:
        assert learned.prepare([training], said.append) == 2
        assert learned.to_fit(training) == 0 and len(list(folder.glob("classifier-*.pkl"))) == 2
        assert said[0].startswith("classifier: fitting 2 of 2 models")
        assert [m.split(": ", 1)[1].split(" ready")[0] for m in said[1:]] == ["model 1/2", "model 2/2"]
        second = training.member_settings()[1]
        (folder / f"classifier-{learned._cache_key(second)}.pkl").unlink()
        _forget(training)  # a new process: one member stored, one not
        said.clear()
        assert learned.prepare([training], said.append) == 1
        assert said[0].startswith("classifier: fitting 1 of 2") and "model 2/2 ready" in said[1]
        said.clear()
        assert learned.prepare([training], said.append) == 0 and said == []
    finally:
        _forget(training)


def test_prepare_stores_a_member_this_process_fitted_with_the_cache_off(folder: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    training = learned.Training(members=1, copies=1, max_iter=10, seed=12, exclude=("GOOG", "IBM", "MSFT"))
    _forget(training)
    try:
        with monkeypatch.context() as m:
            m.setenv(ENV, "off")
            fitted = learned.trained(training).members[0]
        monkeypatch.setattr(learned, "_fit", lambda t: pytest.fail("refitted a member this process has"))
        assert learned.prepare([training], lambda _: None) == 1
        assert stored("classifier", learned._cache_key(training))
        assert learned._FITS[training] is fitted
    finally:
        _forget(training)


@pytest.mark.parametrize("where", ["off", "under-a-file"])
def test_prepare_fails_before_fitting_when_nothing_could_be_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 where: str):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(ENV, "off" if where == "off" else str(blocker / "models"))
    monkeypatch.setattr(learned, "_fit", lambda t: pytest.fail("fitted although nothing could be kept"))
    message = "=off: a fitted model would not be kept" if where == "off" else "cannot be written: Not a directory"
    with pytest.raises(ConfigError, match=message):
        learned.prepare([learned.Training(members=1, seed=13)], lambda _: None)
