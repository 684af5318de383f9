"""Hyperparameter search with Optuna on a walk-forward objective (out-of-sample MAE)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from tickwise.exceptions import InputError
from tickwise.forecast.catalog import make_model
from tickwise.forecast.evaluate import walk_forward

#: search spaces per model: name -> (kind, low, high) or (kind, choices)
SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "lstm": {
        "window": ("int", 10, 40),
        "hidden": ("categorical", (8, 16, 32)),
        "lr": ("float_log", 1e-3, 1e-2),
        "epochs": ("int", 3, 10),
        "weight_decay": ("float_log", 1e-6, 1e-3),
    },
    "arima": {
        "max_p": ("int", 1, 5),
        "max_q": ("int", 1, 5),
    },
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TuneResult:
    """The best parameters and their walk-forward scores."""

    model: str
    params: dict[str, Any]
    mae: float
    trials: int
    scores: dict[str, float]


def tune(model: str, bars: Any, *, trials: int = 10, origins: int = 60, refit_every: int = 30,
         window: int = 500, seed: int = 0) -> TuneResult:
    """Search ``model``'s space; each trial is a walk-forward run scored by MAE.

    Examples
    --------
    >>> import numpy as np, optuna
    >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
    >>> y = 100 + np.cumsum(np.random.default_rng(0).normal(size=120))
    >>> tune("arima", y, trials=2, origins=5, refit_every=5, window=100).trials
    2
    """
    import optuna

    if model not in SPACES:
        raise InputError(f"tune supports models {', '.join(SPACES)}, was {model!r}")
    if trials < 1:
        raise InputError(f"trials must be >= 1, was {trials}")
    space = SPACES[model]
    found: dict[int, dict[str, float]] = {}

    def objective(trial: optuna.Trial) -> float:
        params: dict[str, Any] = {}
        for name, spec in space.items():
            if spec[0] == "int":
                params[name] = trial.suggest_int(name, spec[1], spec[2])
            elif spec[0] == "float_log":
                params[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
            else:
                params[name] = trial.suggest_categorical(name, list(spec[1]))
        if model == "lstm":
            params["seed"] = seed
        wf = walk_forward(bars, {model: partial(make_model, model, **params)}, origins=origins,
                          refit_every=refit_every, window=window)
        scores = wf.scores()[model]
        found[trial.number] = scores
        return scores["mae"]

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    params = dict(best.params)
    if model == "lstm":
        params["seed"] = seed
    return TuneResult(model=model, params=params, mae=float(best.value), trials=len(study.trials),
                      scores=found[best.number])
