"""The on-disk model cache: fitted once per machine, refitted when anything it depends on changes."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tickwise.anomaly import learned
from tickwise.anomaly.modelcache import ENV, cache_dir, cached, stored


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
    assert [p.name for p in folder.iterdir()] == ["m-k.pkl"]  # no temporary file left behind
    assert cached("m", "other", fit) == {"w": [1.0, 2.0]} and len(fits) == 2


def test_unreadable_file_is_refitted_and_replaced(folder: Path, caplog: pytest.LogCaptureFixture):
    folder.mkdir(parents=True)
    (folder / "m-k.pkl").write_bytes(b"not a pickle")
    with caplog.at_level(logging.WARNING):
        assert cached("m", "k", lambda: 42) == 42
    assert "could not be read" in caplog.text
    assert cached("m", "k", lambda: 43) == 42  # the refit replaced the broken file


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
    """The members' mean SHAP values plus their mean base value give the ensemble's log-odds."""
    ensemble = learned.trained(learned.Training(members=2, copies=1, max_iter=10, exclude=("GOOG", "IBM", "MSFT")))
    x = np.random.default_rng(1).normal(0, 2, size=(50, ensemble.members[0].n_features_in_))  # type: ignore[attr-defined]
    values = ensemble.shap_values(x)
    base = np.mean([float(np.ravel(e.expected_value)[-1]) for e in ensemble._explainers])  # type: ignore[union-attr, attr-defined]
    np.testing.assert_allclose(values.sum(axis=1) + base, ensemble.log_odds(x), atol=1e-6)
    single = [learned.Ensemble([m]).log_odds(x) for m in ensemble.members]
    np.testing.assert_allclose(ensemble.log_odds(x), np.mean(single, axis=0))
    assert not np.allclose(single[0], single[1])  # the members differ: other injection seeds
