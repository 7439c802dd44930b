"""``agora fit``'s work: per-agent fits, cross-validation, the permutation test and recovery of
datasets, written as ``fits.csv``, ``summary.md`` and ``results.msgpack`` (everything, for reports).

Every stage draws from its own generator, seeded from (seed, stage, dataset), so one stage's
numbers do not change when another is switched on or off (``--recover`` leaves the fits as
they were) and the same seed and data give the same files.

Recovery simulates on the data's own design: the first agent's rounds (split and cost per
round) are the 60-trial schedule, repeated for the longer ones, so recovery answers "how well
can this design identify each parameter", not a question about another design.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import msgspec
import numpy as np
import polars as pl

from agora.worlds.fairmind.datasets import Dataset
from agora.worlds.fairmind.fitting import (
    DEFAULT_CANDIDATES,
    DEFAULT_RESTARTS,
    AgentFit,
    ModelSummary,
    fit,
    fits_columns,
    summarize,
)
from agora.worlds.fairmind.models import MODELS, Model, model_named
from agora.worlds.fairmind.recovery import (
    ModelRecovery,
    ParameterRecovery,
    ScheduleArrays,
    model_recovery,
    parameter_recovery,
)
from agora.worlds.fairmind.validation import (
    CrossValidation,
    PermutationTest,
    cross_validate,
    permutation_test,
)

# msgpack, not JSON: NaN (a parameter a model lacks, a constant correlation) stays NaN.
RESULTS_NAME: Final = "results.msgpack"
FITS_NAME: Final = "fits.csv"
SUMMARY_NAME: Final = "summary.md"

# Stage numbers in the generators' seeds: fixed, so adding a stage never moves another.
_FIT, _CV, _PERMUTATION, _PARAMETERS, _MODELS = range(5)


class FitOptions(msgspec.Struct, frozen=True):
    models: tuple[str, ...] = tuple(model.name for model in MODELS)
    seed: int = 0
    restarts: int = DEFAULT_RESTARTS
    candidates: int = DEFAULT_CANDIDATES
    folds: int = 5  # 0: no cross-validation
    permutations: int = 200  # 0: no permutation test
    permutation_model: str = "BREM"
    recover: bool = False
    recover_agents: int = 100  # per model, for parameter and for model recovery
    recover_rounds: tuple[int, ...] = (60, 180, 300)

    def model_list(self) -> list[Model]:
        return [model_named(name) for name in self.models]

    @property
    def min_rounds(self) -> int:
        """The fewest trials an agent needs for every stage asked for."""
        need = max(model.min_trials for model in self.model_list())
        if self.folds:
            need = max(need, 2 * self.folds, need + 2)
        return need


class DatasetResult(msgspec.Struct, frozen=True):
    name: str
    source: str
    agents: int
    trials: int
    missed: dict[str, int]
    too_few: dict[str, int]
    truth: dict[str, str]
    fits: list[AgentFit]
    summary: list[ModelSummary]
    cross_validation: list[CrossValidation] | None
    permutation: PermutationTest | None


class RecoveryResult(msgspec.Struct, frozen=True):
    schedule_rounds: int
    parameters: list[ParameterRecovery]  # every model at every length
    models: ModelRecovery


class FitResults(msgspec.Struct, frozen=True):
    source: str
    options: FitOptions
    datasets: list[DatasetResult]
    left_out: list[str]  # runs of a sweep not read, and why
    recovery: RecoveryResult | None
    seconds: dict[str, float]  # wall time per stage


def _rng(seed: int, stage: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stage, index])


def analyse(
    datasets: Sequence[Dataset],
    options: FitOptions,
    *,
    source: str,
    left_out: Sequence[str] = (),
    progress: Callable[[str], None] = lambda line: None,
    clock: Callable[[], float] = time.perf_counter,
) -> FitResults:
    models = options.model_list()
    seconds = dict.fromkeys(("fit", "cross_validation", "permutation", "recovery"), 0.0)
    results = []
    for index, dataset in enumerate(datasets):
        trials = dataset.to_trials()
        progress(f"{dataset.name}: {trials.n_agents} agents × {len(models)} models")
        started = clock()
        fits = fit(
            trials,
            models,
            rng=_rng(options.seed, _FIT, index),
            restarts=options.restarts,
            candidates=options.candidates,
        )
        seconds["fit"] += clock() - started
        cv = None
        if options.folds:
            started = clock()
            cv = cross_validate(
                trials,
                models,
                rng=_rng(options.seed, _CV, index),
                folds=options.folds,
                restarts=options.restarts,
                candidates=options.candidates,
            )
            seconds["cross_validation"] += clock() - started
        permutation = None
        if options.permutations:
            progress(f"{dataset.name}: permutation test, {options.permutations} shuffles")
            started = clock()
            permutation = permutation_test(
                trials,
                model_named(options.permutation_model),
                rng=_rng(options.seed, _PERMUTATION, index),
                permutations=options.permutations,
            )
            seconds["permutation"] += clock() - started
        results.append(
            DatasetResult(
                name=dataset.name,
                source=dataset.source,
                agents=trials.n_agents,
                trials=int(trials.n_trials.sum()),
                missed=dataset.missed,
                too_few=dataset.too_few,
                truth=dataset.truth,
                fits=fits,
                summary=summarize(fits),
                cross_validation=cv,
                permutation=permutation,
            )
        )
    recovery = None
    if options.recover and datasets:
        started = clock()
        recovery = recover(datasets[0], models, options, progress)
        seconds["recovery"] = clock() - started
    return FitResults(
        source=source,
        options=options,
        datasets=results,
        left_out=list(left_out),
        recovery=recovery,
        seconds={name: round(value, 2) for name, value in seconds.items()},
    )


def design_of(dataset: Dataset) -> ScheduleArrays:
    """The first agent's rounds as the schedule recovery simulates on."""
    one = dataset.to_trials().agent(0)
    return ScheduleArrays.of(one.p1[0], one.p2[0], one.cost[0])


def recover(
    dataset: Dataset,
    models: Sequence[Model],
    options: FitOptions,
    progress: Callable[[str], None] = lambda line: None,
) -> RecoveryResult:
    design = design_of(dataset)
    parameters = []
    for m, model in enumerate(models):
        for rounds in options.recover_rounds:
            progress(f"recovery: {model.name} at {rounds} rounds, {options.recover_agents} agents")
            parameters.append(
                parameter_recovery(
                    model,
                    design.tiled(rounds),
                    options.recover_agents,
                    _rng(options.seed, _PARAMETERS, m * 1000 + rounds),
                    restarts=options.restarts,
                    candidates=options.candidates,
                )
            )
    progress(f"model recovery: {options.recover_agents} agents per model")
    confusion = model_recovery(
        design,
        options.recover_agents,
        _rng(options.seed, _MODELS),
        models=models,
        restarts=options.restarts,
        candidates=options.candidates,
    )
    return RecoveryResult(schedule_rounds=design.rounds, parameters=parameters, models=confusion)


# ---- files -----------------------------------------------------------------------------------


def fits_frame(results: FitResults) -> pl.DataFrame:
    """``fits.csv``: dataset, agent, model, n_trials, loglik, k, aic, accuracy, the parameters
    (BREM's beta1, beta2, c, eta; NaN where a model lacks one) and converged."""
    frames = []
    for dataset in results.datasets:
        columns = fits_columns(dataset.fits)
        columns["agent"] = [str(agent) for agent in columns["agent"]]
        frame = pl.DataFrame(columns).with_columns(
            pl.lit(dataset.name).alias("dataset"),
            pl.Series("converged", [f.converged for f in dataset.fits]),
        )
        frames.append(frame.select("dataset", *columns, "converged"))
    return pl.concat(frames, how="diagonal") if frames else pl.DataFrame()


def write_results(results: FitResults, out: Path) -> list[Path]:
    from agora.worlds.fairmind.fit_markdown import summary_markdown

    out.mkdir(parents=True, exist_ok=True)
    fits_path, summary_path, results_path = out / FITS_NAME, out / SUMMARY_NAME, out / RESULTS_NAME
    fits_frame(results).write_csv(fits_path, float_precision=6)
    summary_path.write_text(summary_markdown(results), encoding="utf-8")
    results_path.write_bytes(msgspec.msgpack.encode(results))
    return [fits_path, summary_path, results_path]


def read_results(path: Path) -> FitResults | None:
    """A saved ``results.msgpack``; None when there is none or it is not one (stale, edited)."""
    try:
        return msgspec.msgpack.decode(path.read_bytes(), type=FitResults)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
