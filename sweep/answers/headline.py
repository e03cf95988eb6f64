"""The study's answer in one sentence: the first line of `sweep run`'s last lines, of
report.md / report.html and of the study's MLflow description. Built from the one ranking
(sweep.results.ranking) and the stored confirmation, so every place says the same thing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sweep.answers.confirm import Confirmation, ConfirmedConfig, stored_confirmation
from sweep.keys import PLACEMENT, SETTINGS
from sweep.placement.searched import searched_values, searches_regularizers
from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna

__all__ = ["confirmed_config", "headline", "study_headline"]


def confirmed_config(confirmation: Confirmation | None, trial: Any
                     ) -> ConfirmedConfig | None:
    """The confirmed configuration that re-trained ``trial``'s configuration: by its
    number, else (a confirmation stored before configurations were named by their first
    trial) by its placement and settings."""
    if confirmation is None or trial is None:
        return None
    identity = (trial.user_attrs.get(PLACEMENT) or {}, trial.user_attrs.get(SETTINGS) or {})
    return next((c for c in confirmation.configs if c.trial_number == trial.number), None) \
        or next((c for c in confirmation.configs if (c.placement, c.settings) == identity
                 and c is not confirmation.baseline), None)


def headline(spec: StudySpec, *, best: Any, seeds: dict[int, Any], baseline: Any,
             confirmation: Confirmation | None, label: str | None = None) -> str:
    """One sentence: the configuration and its effect over no regularization on the test
    split with its 95 % interval and p over n seeds; or that none beats no
    regularization beyond seed noise; or that confirmation has not run and what runs it.
    ``best``/``baseline``: the trials that name them; ``seeds``: ranked_trials' map."""
    if best is None:
        return "No configuration has finished yet."
    primary = spec.primary.metric
    mine = seeds.get(best.number)
    name = f"#{best.number}" + (f" ({label})" if label else "")
    figure = mine.figure() if mine is not None else f"{best.values[0]:.4f}"
    if baseline is not None and baseline.number == best.number:
        return (f"No regularization (#{best.number}) is the best configuration on validation "
                f"({primary} {figure}): no "
                + ("regularizer" if searches_regularizers(searched_values(spec))
                   else "penalty placement") + " beat it.")
    config = confirmed_config(confirmation, best)
    comparison = None if config is None or confirmation is None else \
        confirmation.compare(config)
    if comparison is not None and confirmation is not None:
        metric = confirmation.metric
        effect = (f"{metric} {comparison.difference:+.4f} "
                  f"[95% CI {comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}], "
                  f"p = {comparison.p_value:.2g} over {len(config.seeds)} seeds")
        if comparison.significant:
            return f"{name} beats no regularization on the test split: {effect}."
        others = [c for c in confirmation.configs if c is not config
                  and (found := confirmation.compare(c)) is not None and found.significant]
        if not others:
            return (f"No configuration beats no regularization beyond seed noise on the "
                    f"test split (the best on validation, {name}: {effect}).")
        return (f"{name}, the best on validation, does not beat no regularization beyond "
                f"seed noise on the test split ({effect}); {others[0].label} does.")
    base = None if baseline is None else seeds.get(baseline.number)
    against = "" if base is None or mine is None else \
        f", {mine.mean - base.mean:+.4f} against no regularization's {base.figure()}"
    return (f"{name} leads on validation ({primary} {figure}{against}), not confirmed "
            f"over seeds yet: `sweep report {spec.name}` re-trains it on fresh seeds and "
            "tests the gain on the test split.")


def study_headline(study: optuna.Study, spec: StudySpec,
                   confirmation: Confirmation | None = None) -> str:
    """``headline`` of a study as stored (its ranking, its stored confirmation)."""
    from sweep.placement.searched import describe_settings
    from sweep.results.queries import baseline_trial
    from sweep.results.ranking import ranked_trials
    from sweep.search.grouping import group_label

    ordered, seeds = ranked_trials(study, spec)
    if spec.is_multi_objective:
        from sweep.results.queries import pareto_front

        front = pareto_front(study, spec)
        return (f"No single answer with {len(spec.objective)} objectives: {len(front)} "
                f"trials are on their Pareto front (`sweep best {spec.name}`)." if front else
                "No configuration has finished yet.")
    best = ordered[0] if ordered else None
    if confirmation is None:
        confirmation = stored_confirmation(study)
    label = None
    if best is not None:
        # The verdict names the regularizer family and what else the study searched
        # (the learning rate it holds at), not a trial number alone.
        settings = describe_settings(best.user_attrs.get(SETTINGS) or {})
        label = group_label(best, spec) + (f"; {settings}" if settings else "")
    return headline(spec, best=best, seeds=seeds, baseline=baseline_trial(study, spec=spec),
                    confirmation=confirmation, label=label)
