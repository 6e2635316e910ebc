"""Model selection on validation data only: rolling-origin cross-validation, detector choice
(``--detector auto``) and Optuna hyperparameter studies (resumable from storage).

Nothing here reads the test split. Each fold fits on its training block, calibrates its
threshold on the next block and is scored on the block after that
(:func:`aws_anomaly.evaluation.split.rolling_origin_folds`), so a fold's F1 is an honest
estimate of how the configuration generalises forward in time. Stability matters as much as the
mean: a configuration is ranked by ``mean F1 - penalty * std F1`` across folds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aws_anomaly.data import Dataset
from aws_anomaly.detectors import DETECTORS
from aws_anomaly.errors import AwsAnomalyError, ConfigError
from aws_anomaly.evaluation.metrics import evaluate_flags
from aws_anomaly.evaluation.split import Fold, concat, rolling_origin_folds
from aws_anomaly.features import FeatureSpec
from aws_anomaly.model import AnomalyModel
from aws_anomaly.progress import stage

__all__ = [
    "AUTO_CANDIDATES",
    "CVResult",
    "TuneResult",
    "cross_validate",
    "params_table",
    "seeded_params",
    "select_detector",
    "suggest_params",
    "tune",
]

#: What ``--detector auto`` compares on labelled data. ``supervised`` learns from the labelled
#: anomalies of each fold's training part; where one has too few, it is recorded as failed
#: and left out (its error is in the selection table).
AUTO_CANDIDATES = ("ocsvm", "iforest", "lof", "robust", "supervised")


@dataclass(frozen=True)
class CVResult:
    """Fold-by-fold validation results of one configuration."""

    name: str
    f1: tuple[float, ...]
    fpr: tuple[float, ...]
    event_recall: tuple[float, ...]
    error: str | None = None

    @property
    def mean_f1(self) -> float:
        return float(np.mean(self.f1)) if self.f1 else 0.0

    @property
    def std_f1(self) -> float:
        return float(np.std(self.f1)) if self.f1 else 0.0

    def objective(self, penalty: float = 0.5) -> float:
        return self.mean_f1 - penalty * self.std_f1

    def row(self, penalty: float = 0.5) -> dict[str, Any]:
        return {"candidate": self.name, "mean_f1": round(self.mean_f1, 4),
                "std_f1": round(self.std_f1, 4),
                "mean_fpr": round(float(np.mean(self.fpr)), 4) if self.fpr else None,
                "mean_event_recall": (round(float(np.mean(self.event_recall)), 4)
                                      if self.event_recall else None),
                "objective": round(self.objective(penalty), 4),
                "folds_f1": [round(v, 4) for v in self.f1], "error": self.error}


def cross_validate(factory: Callable[[], AnomalyModel], folds: Sequence[Fold],
                   name: str = "model",
                   on_fold: Callable[[int], None] | None = None) -> CVResult:
    """Fit a fresh model per fold (train block), calibrate on its calibration block, score the
    evaluation block with look-back into the earlier blocks.

    ``on_fold(i)`` is called before fold ``i`` (0-based) starts (progress reports)."""
    f1s, fprs, ers = [], [], []
    for i, fold in enumerate(folds):
        if on_fold is not None:
            on_fold(i)
        model = factory().fit(fold.train, fold.calibration)
        history = concat([fold.train, fold.calibration])
        scores = model.score(fold.evaluation, history=history, explain="none")
        m = evaluate_flags(fold.evaluation.frame, scores["is_anomaly"].to_numpy())
        f1s.append(m["f1"])
        fprs.append(m["fpr"])
        ers.append(m["event_recall"])
    return CVResult(name=name, f1=tuple(f1s), fpr=tuple(fprs), event_recall=tuple(ers))


def select_detector(development: Dataset, candidates: Sequence[str] = AUTO_CANDIDATES, *,
                    spec: FeatureSpec | None = None, calibration: str = "auto",
                    n_folds: int = 3, penalty: float = 0.5, seed: int = 0,
                    progress: Callable[[str], None] | None = None
                    ) -> tuple[str, list[dict[str, Any]], str]:
    """Compare detectors (default hyperparameters) on rolling folds of the development data.

    Returns the chosen name, the comparison table (one row per candidate) and the reason. A
    candidate that fails on these data (e.g. too few rows for its neighbourhood size) is recorded
    with its error and skipped.
    """
    if not development.has_labels:
        raise ConfigError("--detector auto compares detectors by F1 and needs labelled "
                          "data (an is_anomaly column); name a detector instead")
    for name in candidates:
        if name not in DETECTORS:
            raise ConfigError(f"unknown detector {name!r}; choose from {sorted(DETECTORS)}")
    folds = rolling_origin_folds(development, n_folds=n_folds)
    params = {name: seeded_params({}, name, seed) for name in candidates}
    scores: dict[str, list[dict[str, float]]] = {name: [] for name in candidates}
    errors: dict[str, str] = {}
    with stage("detector selection", total=len(candidates) * len(folds)) as bar:
        for i, fold in enumerate(folds):
            live = [n for n in candidates if n not in errors]
            if progress:
                progress(f"fold {i + 1}/{len(folds)}: fitting {', '.join(live)} on "
                         f"{len(fold.train):,} rows")
            if not live:
                break
            for name, result in _fold_scores(fold, live, params, spec, calibration,
                                             lambda name, i=i: bar.note(
                                                 f"fold {i + 1}/{len(folds)}: {name}")):
                if isinstance(result, str):
                    errors[name] = result
                else:
                    scores[name].append(result)
            bar.advance(len(candidates))
    results = [CVResult(name=n, f1=(), fpr=(), event_recall=(), error=errors[n]) if n in errors
               else CVResult(name=n, f1=tuple(m["f1"] for m in scores[n]),
                             fpr=tuple(m["fpr"] for m in scores[n]),
                             event_recall=tuple(m["event_recall"] for m in scores[n]))
               for n in candidates]
    ok = [r for r in results if r.error is None]
    if not ok:
        raise ConfigError("every candidate detector failed: " +
                          "; ".join(f"{r.name}: {r.error}" for r in results))
    best = max(ok, key=lambda r: (r.objective(penalty), -r.std_f1))
    table = [r.row(penalty) for r in results]
    runner_up = sorted(ok, key=lambda r: r.objective(penalty), reverse=True)[1:2]
    reason = (f"{best.name} has the highest mean F1 minus {penalty} x std across "
              f"{len(folds)} rolling validation folds ({best.mean_f1:.3f} ± {best.std_f1:.3f}")
    if runner_up:
        r = runner_up[0]
        reason += f"; next: {r.name} {r.mean_f1:.3f} ± {r.std_f1:.3f}"
    reason += "); the test split was not used"
    return best.name, table, reason



def _fold_scores(fold: Fold, names: Sequence[str], params: Mapping[str, dict[str, Any]],
                 spec: FeatureSpec | None, calibration: str,
                 starting: Callable[[str], None] | None = None
                 ) -> Iterator[tuple[str, dict[str, float] | str]]:
    """Fit every candidate on one fold and yield ``(name, metrics)`` or ``(name, error)``.

    The same numbers as :func:`cross_validate` gives each candidate on its own (a test checks
    it), for a fraction of the work: the features, scaler and scaled matrices of the fold's
    training, calibration and evaluation blocks depend on the feature settings, not on the
    detector, so they are computed once and every candidate fits its detector and threshold on
    them. The models keep no expected band (``band=None``): the fold's F1 does not use it.
    """
    models = {n: AnomalyModel(n, params[n], spec=spec, calibration=calibration, band=None)
              for n in names}
    base = models[names[0]]
    try:
        inputs = base._fit_inputs(fold.train, fold.calibration,
                                  labelled_rows=any(DETECTORS[n].requires_labels for n in names))
        history = concat([fold.train, fold.calibration])
        X, ready, _ = base._features(fold.evaluation, history, "scoring data")
        base._check_history(fold.evaluation, ready, "scoring data")
    except AwsAnomalyError as exc:
        for n in names:
            yield n, str(exc)
        return
    for n in names:
        if starting is not None:
            starting(n)
        model = models[n]
        try:
            if model is not base:
                model._adopt(inputs)
            model._fit_on(inputs)
            _, flags, _ = model.score_transformed(X, ready, "none",
                                                  fold.evaluation.frame["entity"].to_numpy())
        except AwsAnomalyError as exc:
            yield n, str(exc)
            continue
        m = evaluate_flags(fold.evaluation.frame, flags)
        yield n, {"f1": m["f1"], "fpr": m["fpr"], "event_recall": m["event_recall"]}

def seeded_params(params: dict[str, Any], detector: str, seed: int) -> dict[str, Any]:
    """Add ``random_state`` for detectors that take one."""
    cls = DETECTORS[detector]
    try:
        accepts = "random_state" in cls().get_params()
    except Exception:  # a detector without sklearn's get_params: leave params as they are
        accepts = False
    if accepts and "random_state" not in params:
        return {**params, "random_state": seed}
    return params


# ---------------------------------------------------------------------- Optuna
def suggest_params(trial: Any, detector: str, spec: FeatureSpec) -> tuple[dict[str, Any],
                                                                         FeatureSpec]:
    """Sample detector hyperparameters and key feature-spec settings for one trial."""
    if detector == "ocsvm":
        params = {"nu": trial.suggest_float("nu", 1e-3, 0.2, log=True),
                  "gamma": trial.suggest_float("gamma", 1e-3, 1.0, log=True)}
    elif detector == "iforest":
        params = {"n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
                  "max_samples": trial.suggest_int("max_samples", 64, 2048, log=True),
                  "max_features": trial.suggest_float("max_features", 0.3, 1.0)}
    elif detector == "lof":
        params = {"n_neighbors": trial.suggest_int("n_neighbors", 5, 100, log=True)}
    elif detector == "robust":
        params = {}
    elif detector == "supervised":
        params = {"learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
                  "max_iter": trial.suggest_int("max_iter", 50, 500, log=True),
                  "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 7, 63, log=True),
                  "min_samples_leaf": trial.suggest_int("min_samples_leaf", 5, 100, log=True),
                  "l2_regularization": trial.suggest_float("l2_regularization", 1e-4, 10.0,
                                                           log=True)}
    else:
        raise ConfigError(f"no search space for detector {detector!r}; tune one of "
                          f"ocsvm, iforest, lof, robust, supervised")
    params = {k: v for k, v in params.items() if _accepts(detector, k)}
    return params, _suggest_spec(trial, spec)


def _accepts(detector: str, key: str) -> bool:
    try:
        return key in DETECTORS[detector]().get_params()
    except Exception:
        return False


def _suggest_spec(trial: Any, spec: FeatureSpec) -> FeatureSpec:
    """Tune the window lengths of the feature spec when it has them."""
    fields = {f.name for f in dataclasses.fields(spec)} if dataclasses.is_dataclass(spec) else set()
    changes: dict[str, Any] = {}
    if "windows" in fields:
        base = tuple(spec.windows)
        choices = {"short": tuple(w for w in base if w <= 12) or base[:1],
                   "default": base,
                   "long": tuple(sorted({*base, 2 * max(base)}))}
        key = trial.suggest_categorical("windows", sorted(choices))
        changes["windows"] = choices[key]
    return dataclasses.replace(spec, **changes) if changes else spec


@dataclass(frozen=True)
class TuneResult:
    """Outcome of :func:`tune`: the best trial's parameters and the study."""

    study: Any
    best_params: dict[str, Any]
    detector_params: dict[str, Any]
    spec: FeatureSpec
    best_value: float
    n_trials: int

    def summary(self) -> dict[str, Any]:
        return {"study_name": self.study.study_name, "best_value": self.best_value,
                "best_params": self.best_params, "n_trials": self.n_trials,
                "best_trial": self.study.best_trial.number}


def tune(development: Dataset, detector: str, trials: int, *, storage: str | None = None,
         study_name: str | None = None, seed: int = 0, n_folds: int = 3, penalty: float = 0.5,
         spec: FeatureSpec | None = None, calibration: str = "auto",
         progress: bool = True) -> TuneResult:
    """Run (or resume) a TPE study until it holds ``trials`` finished trials.

    The objective is mean F1 minus ``penalty`` x std F1 across rolling validation folds of the
    development data (train + validation). With ``storage`` (e.g. ``sqlite:///study.db``) the
    study is saved as it runs; running again with the same storage and study name continues it
    (trials already finished are kept and not repeated).

    Each finished trial advances the ``tuning`` progress stage (:mod:`aws_anomaly.progress`;
    shown when the caller installed a reporter, as the CLI does); ``progress=False``: no stage.
    """
    import optuna

    if detector not in DETECTORS:
        raise ConfigError(f"unknown detector {detector!r}; choose from {sorted(DETECTORS)}")
    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    if not development.has_labels:
        raise ConfigError("tuning maximises F1 on validation folds and needs labelled data "
                          "(an is_anomaly column)")
    base_spec = spec if spec is not None else FeatureSpec()
    folds = rolling_origin_folds(development, n_folds=n_folds)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name or f"aws-anomaly-{detector}"
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, direction="maximize", load_if_exists=True,
            sampler=optuna.samplers.TPESampler(seed=seed))
    except Exception as exc:  # bad URL, unreachable database, ...
        raise ConfigError(f"cannot open Optuna storage {storage!r}: {exc}") from exc
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    remaining = trials - len(finished)

    def objective(trial: Any) -> float:
        params, tspec = suggest_params(trial, detector, base_spec)
        params = seeded_params(params, detector, seed)
        try:
            res = cross_validate(lambda: AnomalyModel(detector, params, spec=tspec,
                                                      calibration=calibration), folds)
        except AwsAnomalyError as exc:
            trial.set_user_attr("error", str(exc))
            return 0.0
        trial.set_user_attr("folds_f1", list(res.f1))
        trial.set_user_attr("mean_f1", res.mean_f1)
        trial.set_user_attr("std_f1", res.std_f1)
        value = res.objective(penalty)
        return value if math.isfinite(value) else 0.0

    if remaining > 0:
        counted = stage(f"tuning {detector} (trials)", total=remaining) if progress else None
        with counted if counted is not None else contextlib.nullcontext() as bar:
            study.optimize(objective, n_trials=remaining, gc_after_trial=False,
                           callbacks=None if bar is None else [lambda st, _t: bar.advance(
                               note=f"best {st.best_value:.4f}" if st.best_trials else None)])
    best = study.best_trial
    spec_keys = {"windows"}
    det_params = seeded_params({k: v for k, v in best.params.items() if k not in spec_keys},
                         detector, seed)
    best_spec = base_spec
    if "windows" in best.params:
        best_spec = _suggest_spec(optuna.trial.FixedTrial({"windows": best.params["windows"]}),
                                  base_spec)
    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    return TuneResult(study=study, best_params=dict(best.params), detector_params=det_params,
                      spec=best_spec, best_value=float(best.value), n_trials=done)


def params_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text table of :func:`select_detector` rows."""
    head = f"{'candidate':<10} {'mean F1':>8} {'std':>7} {'mean FPR':>9} {'objective':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        if r.get("error"):
            lines.append(f"{r['candidate']:<10} failed: {r['error']}")
            continue
        lines.append(f"{r['candidate']:<10} {r['mean_f1']:>8.3f} {r['std_f1']:>7.3f} "
                     f"{r['mean_fpr']:>9.4f} {r['objective']:>9.3f}")
    return "\n".join(lines)
