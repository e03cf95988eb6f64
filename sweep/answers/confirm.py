"""Robust winners: the best configurations, re-trained over fresh seeds, against the
unregularized baseline.

A sweep's best trial is the maximum of many noisy draws, so its validation score is
biased upwards and a single seed says nothing about seed-to-seed noise. Confirmation
re-trains the top ``report.confirm_top`` configurations (chosen on the validation metric
only) and the no-regularization baseline, each over ``seeds.confirm`` seeds that no trial
used, evaluates each model once on the held-out test split, and compares every config
with the baseline on the test metric: a paired t-test over the shared seeds (every config
gets the same seeds), Welch's t-test if the seeds differ (an older stored confirmation).

The result is stored in the study (user attr ``confirmation``, JSON) so that the report
can be rendered again without re-training, and each re-training is an MLflow run
(tag ``sweep.role=confirm``) under the study's parent run.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sweep.keys import (
    CONFIRM_LABEL_TAG,
    CONFIRM_OF_TAG,
    CONFIRMATION,
    FINAL,
    INTERRUPTED,
    ROLE_CONFIRM,
    ROLE_TAG,
    SEED,
    SETTINGS,
)
from sweep.seeds import confirmation_seeds

if TYPE_CHECKING:
    import optuna

    from sweep.spec import StudySpec

SIGNIFICANCE = 0.05  # two-sided level of the test against the baseline


@dataclass(frozen=True)
class ConfirmedConfig:
    """One configuration re-trained over several seeds."""

    label: str  # what a reader sees: "no regularization", "#12 (l2=1e-4)", ...
    trial_number: int | None  # the search trial whose configuration this re-trains
    baseline: str | None  # "none" / "uniform_l2" for baselines, else None
    placement: dict[str, Any]
    seeds: tuple[int, ...]
    # Per seed, same order as ``seeds``: the final figures without the FINAL prefix,
    # e.g. test_accuracy, test_data_loss, val_accuracy, train_data_loss, penalty_total.
    # A seed that failed has no figures, so these tuples are then shorter than ``seeds``
    # and ``Confirmation.compare`` falls back from the paired test to Welch's.
    figures: dict[str, tuple[float, ...]] = field(default_factory=dict)
    run_ids: tuple[str, ...] = ()
    # What else the study searches, at this configuration's values (sweep.placement.searched).
    settings: dict[str, Any] = field(default_factory=dict)

    def values(self, name: str) -> tuple[float, ...]:
        return self.figures.get(name, ())

    def mean(self, name: str) -> float | None:
        values = self.values(name)
        return sum(values) / len(values) if values else None

    def std(self, name: str) -> float | None:
        """Sample standard deviation (n - 1) across seeds."""
        from sweep.search.grouping import sample_sd

        return sample_sd(self.values(name))


@dataclass(frozen=True)
class Comparison:
    """A configuration against the baseline on one metric, over seeds."""

    metric: str
    difference: float  # mean(config) - mean(baseline)
    ci_low: float  # 95 % confidence interval of the difference
    ci_high: float
    p_value: float
    # The gain exceeds seed-to-seed noise: p < SIGNIFICANCE and in the good direction.
    significant: bool
    better: bool  # the mean moved in the good direction (significant or not)
    test: str = "welch"  # "paired" (same seeds on both sides) or "welch"


@dataclass(frozen=True)
class Confirmation:
    metric: str  # the compared test metric, e.g. "test_accuracy"
    direction: str  # "maximize" | "minimize"
    configs: tuple[ConfirmedConfig, ...]  # the no-regularization baseline first

    @property
    def baseline(self) -> ConfirmedConfig | None:
        return next((c for c in self.configs if c.baseline == "none"), None)

    def compare(self, config: ConfirmedConfig, metric: str | None = None) -> Comparison | None:
        """``config`` against the no-regularization baseline: paired over the shared
        seeds, Welch's t-test when the per-seed figures cannot be paired."""
        base = self.baseline
        metric = metric or self.metric
        if base is None or config is base:
            return None
        a, b = config.values(metric), base.values(metric)
        if len(a) < 2 or len(b) < 2:
            return None
        maximize = self.direction == "maximize"
        if config.seeds == base.seeds and len(a) == len(b) == len(config.seeds):
            return paired(metric, a, b, maximize=maximize)
        return welch(metric, a, b, maximize=maximize)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Confirmation:
        data = json.loads(text)
        configs = tuple(
            ConfirmedConfig(
                label=c["label"], trial_number=c["trial_number"], baseline=c["baseline"],
                placement=c["placement"], seeds=tuple(c["seeds"]),
                figures={k: tuple(v) for k, v in c["figures"].items()},
                run_ids=tuple(c.get("run_ids", ())), settings=c.get("settings") or {})
            for c in data["configs"])
        return cls(metric=data["metric"], direction=data["direction"], configs=configs)


def welch(metric: str, a: tuple[float, ...], b: tuple[float, ...], *,
          maximize: bool) -> Comparison:
    """Welch's unequal-variance t-test of mean(a) - mean(b), with its 95 % interval."""
    from scipy import stats

    n_a, n_b = len(a), len(b)
    mean_a, mean_b = sum(a) / n_a, sum(b) / n_b
    var_a = sum((x - mean_a) ** 2 for x in a) / (n_a - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (n_b - 1)
    difference = mean_a - mean_b
    se2 = var_a / n_a + var_b / n_b
    better = difference > 0 if maximize else difference < 0
    if se2 == 0.0:  # identical runs on both sides: no noise, so any difference is real
        significant = difference != 0.0 and better
        return Comparison(metric, difference, difference, difference,
                          0.0 if difference else 1.0, significant, better, "welch")
    se = math.sqrt(se2)
    dof = se2 ** 2 / ((var_a / n_a) ** 2 / (n_a - 1) + (var_b / n_b) ** 2 / (n_b - 1))
    t = difference / se
    p_value = float(2 * stats.t.sf(abs(t), dof))
    half = float(stats.t.ppf(0.975, dof)) * se
    return Comparison(metric, difference, difference - half, difference + half, p_value,
                      p_value < SIGNIFICANCE and better, better, "welch")


def paired(metric: str, a: tuple[float, ...], b: tuple[float, ...], *,
           maximize: bool) -> Comparison:
    """Paired t-test of the per-seed differences a[i] - b[i]. Every configuration is
    re-trained with the same seeds (same initial weights, same data order), so most of the
    seed-to-seed noise cancels in the difference and a real gain shows with fewer seeds."""
    from scipy import stats

    differences = [x - y for x, y in zip(a, b, strict=True)]
    n = len(differences)
    difference = sum(differences) / n
    variance = sum((d - difference) ** 2 for d in differences) / (n - 1)
    better = difference > 0 if maximize else difference < 0
    if variance == 0.0:  # the same shift on every seed: no noise left to test against
        significant = difference != 0.0 and better
        return Comparison(metric, difference, difference, difference,
                          0.0 if difference else 1.0, significant, better, "paired")
    se = math.sqrt(variance / n)
    p_value = float(2 * stats.t.sf(abs(difference / se), n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * se
    return Comparison(metric, difference, difference - half, difference + half, p_value,
                      p_value < SIGNIFICANCE and better, better, "paired")


def stored_confirmation(study: optuna.Study) -> Confirmation | None:
    text = study.user_attrs.get(CONFIRMATION)
    return Confirmation.from_json(text) if text else None


# ---------------------------------------------------------------------- re-training
@dataclass(frozen=True)
class _Pick:
    label: str
    trial_number: int | None
    baseline: str | None
    placement: dict[str, Any]
    settings: dict[str, Any]


def pick_configs(study: optuna.Study, spec: StudySpec, top: int) -> list[_Pick]:
    """The no-regularization baseline, then the ``top`` best configurations in the study's
    ranking, on the primary *validation* objective (the test split plays no part in
    choosing). A study that searches a regularizer besides the penalties (dropout, weight
    decay) also gets the best configuration of each family it trained (``l2``,
    ``dropout``, ``l2`` with ``dropout``, ...), so that the comparison says which one
    beats no regularization, not only whether the best does."""
    from sweep.placement.searched import (
        describe_settings,
        regularizer_families,
        searched_values,
        searches_regularizers,
        typical_settings,
    )
    from sweep.placement.space import BASELINE_NONE
    from sweep.results.queries import baseline_trial
    from sweep.results.ranking import ranked_configurations
    from sweep.search.grouping import group_label

    searched = searched_values(spec)
    base = baseline_trial(study, spec=spec)
    # The baseline's own settings; without a baseline trial, those it would have had.
    none = (base.user_attrs.get(SETTINGS) or {}) if base else \
        typical_settings(searched, regularized=False)
    picks = [_Pick("no regularization", base.number if base else None, BASELINE_NONE, {},
                   none)]
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = [({}, none)]
    families: set[tuple[str, ...]] = {()}
    per_family = searches_regularizers(searched)
    for configuration in ranked_configurations(study, spec):
        # Two workers may each have trained one configuration as one of its own.
        identity = (configuration.placement, configuration.settings)
        family = tuple(regularizer_families(*identity, searched))
        if identity in seen or (len(picks) > top and (not per_family or family in families)):
            continue
        seen.append(identity)
        families.add(family)
        trial, kind = configuration.named, configuration.baseline
        if per_family and not kind:  # named as its row and the verdict name it
            settings = describe_settings(configuration.settings)
            label = f"{configuration.name} ({group_label(trial, spec, searched)}; {settings})"
        else:
            label = f"{configuration.name} ({kind or _describe(trial.params)})"
        picks.append(_Pick(label, trial.number, kind, configuration.placement,
                           configuration.settings))
    return picks


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items()) or "fixed"


def confirm_stoppable(study: optuna.Study, spec: StudySpec, *, tracking_uri: str,
                      top: int | None = None, show_progress: bool = True) -> Confirmation | None:
    """``ensure_confirmation`` where Ctrl-C or SIGTERM stop between trainings and keep
    what is done."""
    from sweep.interrupt import stop_on_signals

    with stop_on_signals():
        return ensure_confirmation(study, spec, tracking_uri=tracking_uri, top=top,
                                   show_progress=show_progress)


def ensure_confirmation(study: optuna.Study, spec: StudySpec, *, tracking_uri: str,
                        show_progress: bool = True, top: int | None = None) -> Confirmation | None:
    """Re-train the baseline and the best ``top`` (default ``report.confirm_top``)
    configurations over ``seeds.confirm`` seeds, unless the study already holds exactly that
    confirmation. Progress is stored after every configuration, so an interrupted
    confirmation resumes where it stopped."""
    top = spec.report.confirm_top if top is None else top
    if top <= 0:
        return stored_confirmation(study)
    picks = pick_configs(study, spec, top)
    if len(picks) < 2:
        return stored_confirmation(study)
    seeds = confirmation_seeds(spec.seed, spec.seeds.confirm)
    metric = "test_" + spec.primary.metric.removeprefix("val_")
    stored = stored_confirmation(study)
    if stored is not None and stored.configs and len(stored.configs[0].seeds) == len(seeds):
        # A confirmation stored before the seeds' derivation moved (sweep.seeds) keeps its
        # seeds: a new pick is paired with it, and nothing stored is trained again.
        seeds = stored.configs[0].seeds
    # A configuration is confirmed once per (placement, seeds); it is never re-trained.
    done = {_key(c.placement, c.settings, c.seeds): c
            for c in (stored.configs if stored else ())}
    todo = [p for p in picks if _key(p.placement, p.settings, seeds) not in done]

    def store() -> Confirmation:
        # Named as the ranking names them now (a confirmation stored before may name a
        # configuration by a re-run).
        configs = tuple(replace(done[_key(p.placement, p.settings, seeds)], label=p.label,
                                trial_number=p.trial_number)
                        for p in picks if _key(p.placement, p.settings, seeds) in done)
        result = Confirmation(metric=metric, direction=spec.primary.resolved_direction,
                              configs=configs)
        study.set_user_attr(CONFIRMATION, result.to_json())
        return result

    if not todo:
        return store()
    from sweep.answers.note import make_tracker
    from sweep.answers.progress import ConfirmProgress
    from sweep.training.trainer import Trainer

    tracker = make_tracker(study, spec, tracking_uri)
    trainer = Trainer(spec)
    with ConfirmProgress(len(todo) * len(seeds), enabled=show_progress) as progress:
        for pick in todo:
            key = _key(pick.placement, pick.settings, seeds)
            done[key] = _retrain(pick, seeds, trainer, tracker, progress)
            store()
    return store()


def _key(placement: dict[str, Any], settings: dict[str, Any], seeds: tuple[int, ...]
         ) -> tuple[str, tuple[int, ...]]:
    from sweep.placement.configurations import configuration_key

    return configuration_key(placement, settings), tuple(seeds)


def _retrain(pick: _Pick, seeds: tuple[int, ...], trainer: Any, tracker: Any,
             progress: Any) -> ConfirmedConfig:
    from sweep.tracking.names import placement_params

    figures: dict[str, list[float]] = {}
    run_ids: list[str] = []
    for index, seed in enumerate(seeds):
        progress.step(f"{pick.label}, seed {index + 1}/{len(seeds)}")
        run = tracker.start_run(
            f"confirm {pick.label} seed {index + 1}",
            {**{k: str(v) for k, v in pick.settings.items()},
             **placement_params(pick.placement), SEED: str(seed)},
            {ROLE_TAG: ROLE_CONFIRM, CONFIRM_LABEL_TAG: pick.label,
             **({CONFIRM_OF_TAG: str(pick.trial_number)}
                if pick.trial_number is not None else {})}, under="confirmation")
        run.watch_system(trainer.device)
        try:
            trained = trainer.train(pick.placement, seed, run.log_epoch,
                                    settings=pick.settings)
        except KeyboardInterrupt:
            run.finish("INTERRUPTED", reason=INTERRUPTED)
            raise
        except Exception as error:
            # A seed that diverges is a result (the config is fragile), not a crash.
            run.finish("FAIL", reason=f"{type(error).__name__}: {error}")
            final = {}
        else:
            final = trained.final
            run.finish("COMPLETE", {**final, **trained.usage})
        run_ids.append(run.reference)
        for name, value in final.items():
            figures.setdefault(name.removeprefix(FINAL), []).append(float(value))
    return ConfirmedConfig(label=pick.label, trial_number=pick.trial_number,
                           baseline=pick.baseline, placement=pick.placement, seeds=seeds,
                           settings=pick.settings,
                           figures={k: tuple(v) for k, v in figures.items()},
                           run_ids=tuple(run_ids))
