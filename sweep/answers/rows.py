"""The comparison's rows: the study's configurations grouped by where their penalties
went, each group shown by its best configuration on the validation objective (its figures
averaged over its seeds), with the confirmation over seeds where the study holds one.
Pure functions of the study."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sweep.answers.confirm import Confirmation, ConfirmedConfig, stored_confirmation
from sweep.keys import BASELINE, FINAL, PLACEMENT, SETTINGS
from sweep.placement.searched import searched_values
from sweep.placement.space import describe_placement
from sweep.results.queries import baseline_trial, generalization_gap
from sweep.results.ranking import figure_of, ranked_configurations, ranked_trials
from sweep.search.grouping import group_label
from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna

# The final figures a row shows, in the seed article's order, with their headers.
FIGURES = (
    (f"{FINAL}train_data_loss", "train data loss"),
    (f"{FINAL}train_accuracy", "train acc"),
    (f"{FINAL}val_data_loss", "val data loss"),
    (f"{FINAL}val_accuracy", "val acc"),
    (f"{FINAL}test_data_loss", "test data loss"),
    (f"{FINAL}test_accuracy", "test acc"),
    (f"{FINAL}penalty_total", "penalty"),
)
WEIGHT_FIGURES = (
    (f"{FINAL}weights_l2_total", "‖w‖₂ total"),
    (f"{FINAL}weights_sparsity", "sparsity"),
)
_COEFFICIENT = re.compile(r"^(l1|l2)(/.+)?$")  # shared `l1`, per-layer `l2/dense_1`




def placement_groups(study: optuna.Study, spec: StudySpec) -> dict[str, list[Any]]:
    """The study's configurations (sweep.search.grouping.Configuration) by placement (by
    regularizer family when the study searches one besides the penalties); groups and
    their configurations best first, in the one ranking ``sweep best`` uses."""
    searched = searched_values(spec)
    groups: dict[str, list[Any]] = {}
    for configuration in ranked_configurations(study, spec):
        groups.setdefault(group_label(configuration.named, spec, searched),
                          []).append(configuration)
    return groups


# ------------------------------------------------------------------ rows
def placement_rows(study: optuna.Study, spec: StudySpec,
                   confirmation: Confirmation | None = None) -> list[dict[str, Any]]:
    """One record per placement group: its best configuration, named by its first trial,
    with its figures averaged over its seeds (unrounded) and how many trials and
    configurations the group holds. ``confirmation`` defaults to the one stored in the
    study."""
    if confirmation is None:
        confirmation = stored_confirmation(study)
    _, seeds = ranked_trials(study, spec)
    baseline = baseline_trial(study, spec=spec)
    base_value = None if baseline is None else figure_of(baseline, seeds)
    rows = []
    for label, found in placement_groups(study, spec).items():
        best = found[0]
        named = best.named
        row: dict[str, Any] = {
            "placement": label,
            "configurations": len(found),
            "trials": sum(len(c.complete) for c in found),
            "trial": named.number,
            "baseline": named.user_attrs.get(BASELINE),
            "value": best.mean,
            "sd": best.sd,
            "seeds": best.n,
            "vs_no_reg": None if base_value is None else best.mean - base_value,
            "baseline_trial": None if baseline is None else baseline.number,
        }
        if spec.is_multi_objective:
            row.update({f"value:{item.metric}": named.values[i]
                        for i, item in enumerate(spec.objective)})
        means = best.final_means()
        row.update({key: means[key] for key, _ in FIGURES + WEIGHT_FIGURES if key in means})
        row["gap"] = generalization_gap(means)
        row["coefficients"] = coefficients(named)
        row["resolved"] = describe_placement(named.user_attrs.get(PLACEMENT) or {})
        row["settings"] = named.user_attrs.get(SETTINGS) or {}
        row.update(_confirmed(confirmation, named))
        rows.append(row)
    return rows


def coefficients(trial: Any) -> dict[str, float]:
    """The searched coefficients (``l1``, ``l2/dense``, ...), or, for a trial that searched
    none (a baseline, fixed coefficients), the ones its resolved placement applied."""
    searched = {name: float(value) for name, value in trial.params.items()
                if _COEFFICIENT.match(name)}
    if searched:
        return dict(sorted(searched.items()))
    return placement_coefficients(trial.user_attrs.get(PLACEMENT) or {})


def placement_coefficients(placement: Mapping[str, Any]) -> dict[str, float]:
    """``{kind: value}`` when every regularized layer has the same value of that kind,
    else ``{kind/layer: value}``."""
    per_kind: dict[str, dict[str, float]] = {}
    for layer, targets in placement.items():
        for kinds in targets.values():
            for kind, value in kinds.items():
                per_kind.setdefault(kind, {})[layer] = float(value)
    out: dict[str, float] = {}
    for kind in sorted(per_kind):
        values = per_kind[kind]
        if len(set(values.values())) == 1:
            out[kind] = next(iter(values.values()))
        else:
            out.update({f"{kind}/{layer}": value for layer, value in values.items()})
    return out


def _config_for(confirmation: Confirmation, trial: Any) -> ConfirmedConfig | None:
    """The confirmed configuration that re-trained this trial's model: the same trial,
    the same baseline kind, or (a duplicate, another group's name) the same placement
    and settings."""
    placement = trial.user_attrs.get(PLACEMENT) or {}
    settings = trial.user_attrs.get(SETTINGS) or {}
    kind = trial.user_attrs.get(BASELINE)
    for matches in (lambda c: c.trial_number == trial.number,
                    lambda c: kind is not None and c.baseline == kind,
                    lambda c: (c.placement, c.settings) == (placement, settings)):
        found = next((c for c in confirmation.configs if matches(c)), None)
        if found is not None:
            return found
    return None


def _confirmed(confirmation: Confirmation | None, trial: Any) -> dict[str, Any]:
    if confirmation is None:
        return {"confirmed": None}
    config = _config_for(confirmation, trial)
    if config is None:
        return {"confirmed": None}
    metric = confirmation.metric
    comparison = confirmation.compare(config)
    return {
        "confirmed": config.label,
        "confirmed_metric": metric,
        "confirmed_n": len(config.values(metric)),
        "confirmed_mean": config.mean(metric),
        "confirmed_std": config.std(metric),
        "confirmed_is_baseline": config is confirmation.baseline,
        "difference": None if comparison is None else comparison.difference,
        "ci_low": None if comparison is None else comparison.ci_low,
        "ci_high": None if comparison is None else comparison.ci_high,
        "p_value": None if comparison is None else comparison.p_value,
        "significant": None if comparison is None else comparison.significant,
    }


def confirmation_rows(confirmation: Confirmation,
                      val_metric: str = "val_accuracy") -> list[dict[str, Any]]:
    """One record per re-trained configuration (the baseline first): mean and standard
    deviation over seeds of the test figures and ``val_metric``, and the difference to
    the no-regularization baseline on the confirmation's metric with its 95 % interval."""
    names = unique(["test_accuracy", "test_data_loss", confirmation.metric, val_metric])
    rows = []
    for config in confirmation.configs:
        comparison = confirmation.compare(config)
        row: dict[str, Any] = {
            "label": config.label,
            "trial": config.trial_number,
            "baseline": config.baseline,
            "placement": describe_placement(config.placement),
            "seeds": len(config.seeds),
            "is_baseline": config is confirmation.baseline,
        }
        for name in names:
            if config.values(name):
                row[f"{name}_n"] = len(config.values(name))
                row[f"{name}_mean"] = config.mean(name)
                row[f"{name}_std"] = config.std(name)
        row.update({
            "metric": confirmation.metric,
            "difference": None if comparison is None else comparison.difference,
            "ci_low": None if comparison is None else comparison.ci_low,
            "ci_high": None if comparison is None else comparison.ci_high,
            "p_value": None if comparison is None else comparison.p_value,
            "significant": None if comparison is None else comparison.significant,
        })
        rows.append(row)
    return rows


def unique(items: Iterable[str]) -> list[str]:
    out: list[str] = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


# ------------------------------------------------------------------ formatting
