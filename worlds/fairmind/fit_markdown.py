"""The fit results as markdown: ``summary.md`` of ``agora fit`` and the fit sections of the
FairMindSim run and sweep reports (one set of tables, so the two never disagree)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from agora.worlds.fairmind.fit_report import DatasetResult, FitResults, RecoveryResult
from agora.worlds.fairmind.fitting import best_by_aic
from agora.worlds.fairmind.models import model_named

BREM_FAMILY: Final = ("BREM", "BREM-NoUpdate", "BREM-NoPref")

CONVENTIONS: Final = """\
## How the likelihood is computed (to reproduce it by hand)

For agent i's round j: the split P1_j : P2_j of the 30-point pot, the cost Y_j of punishing and
the choice y_j (1 = PUNISH, 0 = ACCEPT).

- **E_j = (P1_j − P2_j) / 30**, the norm-violation intensity: 0 for 15:15, 1 for 30:0.
- **z_j = z(R_{j−1})**, the observer's cumulative earnings before round j, z-scored online:
  a round pays 10 on ACCEPT and 10 − Y_j on PUNISH, R_j is the sum so far (R_0 = 0), and
  z(R_{j−1}) = (R_{j−1} − mean(H)) / sd(H) over H = [R_1, …, R_{j−1}] with the population SD;
  z = 0 while H has fewer than 2 entries, and sd = 1 when it is 0. Computed from the observed
  choices, over the rounds in the table (a round missed in a run is not in it).
- **BREM**: bel_0 = 1 (fixed, not fitted), φ_j = β1·bel_{j−1}·E_j + β2·z_j − C,
  P_j = σ(φ_j) = 1/(1 + e^(−φ_j)), then bel_j = bel_{j−1} + η·(y_j − P_j).
  No-Update: η = 0. No-Pref: β1 = 0 (η then never enters the likelihood: counted in k,
  reported NaN). Rational: P_j = ε. IA: P_j = σ(λ·(α·max(P1_j − P2_j, 0) − Y_j)).
  RRM: φ_j = bias + τ·(Q_P − Q_A), Q of the chosen action += rate·(pay_j − 10 − Q).
- ln L = Σ_j [y_j·ln P_j + (1 − y_j)·ln(1 − P_j)], AIC = 2k − 2 ln L̂; a model predicts
  PUNISH when P_j > 0.5, and accuracy is the share of rounds predicted right.
- Each agent is fitted alone (maximum likelihood within the bounds, seeded restarts).
"""


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.1e}"


def data_section(results: FitResults) -> list[str]:
    lines = [
        "## Data",
        "",
        "| dataset | answered by | agents fitted | trials | agents with missed rounds "
        "(rounds) | agents not fitted (too few rounds) |",
        "|---|---|---|---|---|---|",
    ]
    for d in results.datasets:
        lines.append(
            f"| {d.name} | {d.source} | {d.agents} | {d.trials} | {len(d.missed)} "
            f"({sum(d.missed.values())}) | {len(d.too_few)} |"
        )
    lines.append("")
    for d in results.datasets:
        if d.missed:
            shown = ", ".join(f"{agent} ({n})" for agent, n in d.missed.items())
            lines += [
                f"{d.name}: rounds without a valid answer, left out of the likelihood: {shown}.",
                "",
            ]
        if d.too_few:
            shown = ", ".join(f"{agent} ({n} rounds)" for agent, n in d.too_few.items())
            lines += [f"{d.name}: not fitted, too few rounds: {shown}.", ""]
    if results.left_out:
        lines += ["Runs not read:", "", *[f"- {line}" for line in results.left_out], ""]
    if any(d.source == "offline" for d in results.datasets):
        lines += [
            "Datasets answered by `offline` are the world's behavioural agents (BREM, "
            "inequity aversion, rational), not an LLM: they show what the fitter finds in data "
            "of known structure.",
            "",
        ]
    return lines


def model_tables(results: FitResults) -> list[str]:
    """Tables 3 and 6: mean AIC and accuracy per model per dataset."""
    names = [d.name for d in results.datasets]
    models = list(dict.fromkeys(s.model for d in results.datasets for s in d.summary))
    lines = [
        "## Model comparison (Tables 3 and 6)",
        "",
        "Mean over agents of each agent's AIC (lower is better) and accuracy; "
        "best: the share of agents whose lowest AIC is this model's.",
        "",
        "| model | k | " + " | ".join(f"{n}: AIC | accuracy | best" for n in names) + " |",
        "|---|---|" + "---|---|---|" * len(names),
    ]
    for model in models:
        cells = []
        k = model_named(model).k
        for d in results.datasets:
            row = next((s for s in d.summary if s.model == model), None)
            if row is None:
                cells += ["–", "–", "–"]
            else:
                cells += [
                    _num(row.mean_aic, 2),
                    _num(row.mean_accuracy),
                    f"{100 * row.best_aic_share:.0f}%",
                ]
        lines.append(f"| {model} | {k} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += _truth_tables(results.datasets)
    return lines


def _truth_tables(datasets: Sequence[DatasetResult]) -> list[str]:
    """For offline data: the kind of agent that played against the model AIC picks."""
    with_truth = [d for d in datasets if d.truth]
    if not with_truth:
        return []
    counts: dict[str, dict[str, int]] = {}
    models = list(dict.fromkeys(f.model for d in with_truth for f in d.fits))
    for d in with_truth:
        for agent, picked in best_by_aic(d.fits).items():
            kind = d.truth.get(str(agent))
            if kind is not None:
                counts.setdefault(kind, dict.fromkeys(models, 0))[picked] += 1
    lines = [
        "Offline agents: the kind that played (rows) and the model AIC picks for it (columns).",
        "",
        "| played by | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for kind, row in counts.items():
        lines.append(f"| {kind} | " + " | ".join(str(row[m]) for m in models) + " |")
    return [*lines, ""]


def validation_tables(results: FitResults) -> list[str]:
    """Table 4: k-fold cross-validation and the permutation test."""
    lines: list[str] = []
    with_cv = [d for d in results.datasets if d.cross_validation]
    if with_cv:
        folds = with_cv[0].cross_validation[0].folds if with_cv[0].cross_validation else 0
        lines += [
            f"## Generalisation and validity (Table 4): {folds}-fold cross-validation",
            "",
            "Each agent's rounds split at random into folds; fitted on the others, scored on "
            "the held-out fold (the held-out rounds are still played, so beliefs and earnings "
            "run on); paired t-test of train vs test accuracy over agents.",
            "",
            "| dataset | model | train accuracy (mean ± sd) | test accuracy (mean ± sd) | t | p |",
            "|---|---|---|---|---|---|",
        ]
        for d in with_cv:
            for cv in d.cross_validation or []:
                lines.append(
                    f"| {d.name} | {cv.model} | {_num(cv.train_mean)} ± {_num(cv.train_sd)} "
                    f"| {_num(cv.test_mean)} ± {_num(cv.test_sd)} | {_num(cv.t, 2)} "
                    f"| {_p(cv.p)} |"
                )
        lines.append("")
    with_perm = [d for d in results.datasets if d.permutation]
    if with_perm:
        first = with_perm[0].permutation
        assert first is not None
        lines += [
            f"### Permutation test ({first.model}, {first.permutations} shuffles)",
            "",
            "Each agent's choices shuffled among its own rounds and refitted; p = (1 + "
            "shuffles whose summed ln L is at least the real one) / (1 + shuffles).",
            "",
            "| dataset | ln L real | ln L shuffled (mean) | accuracy real | "
            "accuracy shuffled (mean) | p | agents with p < 0.05 |",
            "|---|---|---|---|---|---|---|",
        ]
        for d in with_perm:
            perm = d.permutation
            assert perm is not None
            significant = sum(1 for p in perm.agent_p_values if p < 0.05)
            lines.append(
                f"| {d.name} | {_num(perm.real_loglik, 1)} | {_num(perm.perm_loglik_mean, 1)} "
                f"| {_num(perm.real_accuracy)} | {_num(perm.perm_accuracy_mean)} "
                f"| {_p(perm.p_value)} | {significant} of {perm.agents} |"
            )
        lines.append("")
    return lines


def recovery_tables(recovery: RecoveryResult) -> list[str]:
    lengths = sorted({p.rounds for p in recovery.parameters})
    agents = recovery.parameters[0].agents if recovery.parameters else 0
    lines = [
        "## Recovery",
        "",
        f"Agents simulated from known parameters (drawn uniformly from fixed boxes, "
        f"`recovery.GENERATING`) on this data's design: its first agent's "
        f"{recovery.schedule_rounds} rounds, repeated for longer schedules; {agents} agents per "
        "model and length; refitted with the same settings. r: Pearson's r of true against "
        "fitted; ρ: Spearman's rank correlation (robust to fits that go to a bound); "
        "≥ truth: the share of agents whose fitted ln L is at least ln L at the true "
        "parameters (a maximum-likelihood fit can never be below it).",
        "",
        "| model | parameter | "
        + " | ".join(f"r ({n})" for n in lengths)
        + " | "
        + " | ".join(f"ρ ({n})" for n in lengths)
        + " |",
        "|---|---|" + "---|" * (2 * len(lengths)),
    ]
    models = list(dict.fromkeys(p.model for p in recovery.parameters))
    for model in models:
        rows = {p.rounds: p for p in recovery.parameters if p.model == model}
        for name in rows[lengths[0]].r:
            r = " | ".join(_num(rows[n].r.get(name), 2) if n in rows else "–" for n in lengths)
            rho = " | ".join(_num(rows[n].rho.get(name), 2) if n in rows else "–" for n in lengths)
            lines.append(f"| {model} | {name} | {r} | {rho} |")
    lines += [
        "",
        "| model | " + " | ".join(f"≥ truth ({n})" for n in lengths) + " |",
        "|---|" + "---|" * len(lengths),
    ]
    for model in models:
        rows = {p.rounds: p for p in recovery.parameters if p.model == model}
        cells = " | ".join(
            f"{100 * rows[n].at_least_true:.0f}%" if n in rows else "–" for n in lengths
        )
        lines.append(f"| {model} | {cells} |")
    confusion = recovery.models
    lines += [
        "",
        f"### Model recovery ({confusion.agents_per_model} agents per model, "
        f"{confusion.rounds} rounds)",
        "",
        "Rows: the model that generated the data; columns: the share of its agents for which "
        f"AIC picks each model (chance: {100 / len(confusion.models):.0f}%).",
        "",
        "| generated by | " + " | ".join(confusion.models) + " |",
        "|---|" + "---|" * len(confusion.models),
    ]
    for generating in confusion.models:
        cells = " | ".join(
            f"{100 * confusion.share(generating, picked):.0f}%" for picked in confusion.models
        )
        lines.append(f"| {generating} | {cells} |")
    family = [m for m in BREM_FAMILY if m in confusion.models]
    if "BREM" in confusion.models and len(family) > 1:
        share = sum(confusion.share("BREM", m) for m in family)
        lines += [
            "",
            f"Of BREM-generated agents, AIC picks full BREM for "
            f"{100 * confusion.recovered('BREM'):.0f}% and a BREM-family model "
            f"({', '.join(family)}) for {100 * share:.0f}%.",
        ]
    lines += [
        "",
        "Read these as they are: with 60 binary choices BREM's parameters are weakly "
        "identified, and longer schedules help β1 and η more than β2 and C (z of a steadily "
        "growing cumulative R tends to a constant, so β2·z and C act as one intercept). The "
        "generating boxes were fixed before any fit and are not tuned to the fitter.",
        "",
    ]
    return lines


def summary_markdown(results: FitResults) -> str:
    options = results.options
    lines = [
        f"# Model fits: {results.source}",
        "",
        f"Models {', '.join(options.models)}; seed {options.seed}, {options.restarts} "
        f"restarts from the best of {options.candidates} seeded starts per agent and model. "
        f"Wall time: fit {results.seconds['fit']:.1f} s, cross-validation "
        f"{results.seconds['cross_validation']:.1f} s, permutation test "
        f"{results.seconds['permutation']:.1f} s, recovery {results.seconds['recovery']:.1f} s.",
        "",
        *data_section(results),
        *model_tables(results),
        *validation_tables(results),
    ]
    if results.recovery is not None:
        lines += recovery_tables(results.recovery)
    else:
        lines += ["Recovery: not run (`agora fit ... --recover` adds it).", ""]
    lines += [CONVENTIONS]
    lines += [
        "Files: `fits.csv` (one row per agent and model: dataset, agent, model, n_trials, "
        "loglik, k, aic, accuracy, the parameters, converged), this summary, and "
        "`results.msgpack` (everything above, for `agora report`).",
        "",
    ]
    return "\n".join(lines)
