"""Register the winner only when it is real (``report.register: MODEL_NAME``).

After the confirmation over seeds, the best configuration on validation is registered in
the MLflow Model Registry as a new version of MODEL_NAME only if it beats the
no-regularization baseline beyond seed noise (the confirmation's paired test, p < 0.05
in the good direction). Otherwise nothing is registered and the study says why.

Which model: the best configuration re-trained with the confirmation seed whose test
figure is the median of its seeds, logged into that seed's confirmation run. The
evidence for registering is those seeds' runs, so the registered model is one of them
(same data, same seed: on the same device it reproduces that run's figures), and the
median seed is a typical draw, not the luckiest. Re-training on train + validation was
left aside: that model would have no test figure the decision was made on, and the
validation split would no longer be held out for what a later study compares against.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sweep.answers.confirm import Comparison, Confirmation, ConfirmedConfig
from sweep.keys import PLACEMENT, REGISTRATION, SETTINGS, SPOOL_PREFIX
from sweep.placement.searched import regularizer_families, searched_values
from sweep.placement.space import describe_placement

if TYPE_CHECKING:
    import optuna

    from sweep.spec import StudySpec

log = logging.getLogger("sweep")


@dataclass(frozen=True)
class Registration:
    """What ``report.register`` did: registered a version, or why not."""

    model: str
    registered: bool
    reason: str  # one line a reader understands
    version: str | None = None
    trial: int | None = None
    seed: int | None = None
    run_id: str | None = None
    seeds: tuple[int, ...] = ()  # the confirmation seeds the decision was made on

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Registration:
        data = json.loads(text)
        data["seeds"] = tuple(data.get("seeds", ()))
        return cls(**data)

    def line(self) -> str:
        if self.registered:
            return (f"registered as version {self.version} of model '{self.model}' "
                    f"(trial #{self.trial}'s configuration, seed {self.seed}): {self.reason}")
        return f"not registered in model '{self.model}': {self.reason}"


def stored_registration(study: optuna.Study) -> Registration | None:
    text = study.user_attrs.get(REGISTRATION)
    return Registration.from_json(text) if text else None


def decide(study: optuna.Study, spec: StudySpec, confirmation: Confirmation | None
           ) -> tuple[ConfirmedConfig | None, Comparison | None, str]:
    """The configuration to register (None: nothing), its comparison with the baseline,
    and the reason, in words."""
    from sweep.results.ranking import sorted_complete

    if spec.is_multi_objective:
        return None, None, "a multi-objective study answers with a Pareto front, not one winner"
    if confirmation is None:
        return None, None, "not confirmed over seeds (report.confirm_top is 0 or --no-confirm)"
    ranked = sorted_complete(study, spec)
    if not ranked:
        return None, None, "no completed trial"
    best = ranked[0]
    placement = best.user_attrs.get(PLACEMENT) or {}
    settings = best.user_attrs.get(SETTINGS) or {}
    if not regularizer_families(placement, settings, searched_values(spec)):
        return None, None, "the best configuration on validation is no regularization"
    config = next((c for c in confirmation.configs
                   if c.placement == placement and c.settings == settings), None)
    comparison = None if config is None else confirmation.compare(config)
    if config is None or comparison is None:
        return None, None, f"configuration #{best.number} has no confirmation to judge"
    figures = (f"{comparison.metric} {comparison.difference:+.4f} vs no regularization, "
               f"95% CI [{comparison.ci_low:+.4f}, {comparison.ci_high:+.4f}], "
               f"p={comparison.p_value:.3g}, {len(config.seeds)} seeds")
    if not comparison.significant:
        return config, comparison, f"the gain is within seed noise ({figures})"
    return config, comparison, f"beats seed noise ({figures})"


def median_seed(config: ConfirmedConfig, metric: str) -> int:
    """The seed whose ``metric`` is the median of the configuration's seeds (the lower
    middle one for an even count), the first seed when the figures cannot be paired."""
    values = config.values(metric)
    if len(values) != len(config.seeds) or not values:
        return config.seeds[0]
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    return config.seeds[order[(len(order) - 1) // 2]]


def register_winner(study: optuna.Study, spec: StudySpec, confirmation: Confirmation | None,
                    tracker: Any) -> Registration | None:
    """Register (or decline to) as ``report.register`` asks; stored on the study and
    said on its MLflow run. A registration already made from the same confirmation is
    not repeated."""
    name = spec.report.register
    if not name:
        return None
    config, comparison, reason = decide(study, spec, confirmation)
    trial = None if config is None else config.trial_number
    seeds = () if config is None else tuple(config.seeds)
    if config is None or comparison is None or not comparison.significant:
        result = Registration(name, False, reason, trial=trial, seeds=seeds)
    else:
        done = stored_registration(study)
        if done is not None and done.registered and (done.model, done.trial, done.seeds) == (
                name, trial, seeds):
            return done
        try:
            result = _register(spec, config, comparison, reason, tracker, name,
                               study.study_name)
        except Exception as error:
            # What the report, its summary and the study run then say is this failure,
            # not the verdict of an earlier report's registration.
            from sweep.errors import describe_failure

            failed = Registration(name, False, f"registration failed: "
                                  f"{describe_failure(error, 300)}", trial=trial, seeds=seeds)
            study.set_user_attr(REGISTRATION, failed.to_json())
            with contextlib.suppress(Exception):  # the tracking server may be down too
                _tell_study_run(tracker, failed)
            raise
    study.set_user_attr(REGISTRATION, result.to_json())
    _tell_study_run(tracker, result)
    return result


def _tell_study_run(tracker: Any, result: Registration) -> None:
    """The study's run says what was registered (and links to it), or why nothing was."""
    from sweep.keys import REGISTERED_MODEL_LINK_TAG, REGISTERED_MODEL_TAG
    from sweep.tracking.links import model_version_path

    tags = {REGISTERED_MODEL_TAG: f"{result.model} version {result.version}"
            if result.registered else f"not registered: {result.reason}"}
    if result.registered and result.version is not None:
        tags[REGISTERED_MODEL_LINK_TAG] = model_version_path(result.model, result.version)
    tracker.describe_study({}, tags)


def _register(spec: StudySpec, config: ConfirmedConfig, comparison: Comparison, reason: str,
              tracker: Any, name: str, study_name: str) -> Registration:
    from sweep.keys import CONFIRM_LABEL_TAG, ROLE_CONFIRM, ROLE_TAG, SEED
    from sweep.tracking.names import placement_params
    from sweep.tracking.registry import register_keras_model
    from sweep.training.data import load_data
    from sweep.training.export import inference_model, signature
    from sweep.training.trainer import Trainer

    seed = median_seed(config, comparison.metric)
    index = config.seeds.index(seed)
    trainer = Trainer(spec)
    trained = trainer.train(config.placement, seed, lambda epoch, metrics: None,
                            settings=config.settings)
    final = trained.final
    splits = load_data(spec.data, spec.seed)
    served = inference_model(spec, trained.model, splits.input_shape, splits.n_classes or 1,
                             settings=config.settings)
    run_id = config.run_ids[index] if index < len(config.run_ids) else None
    if run_id is None or run_id.startswith(SPOOL_PREFIX):  # that run never reached MLflow
        run = tracker.start_run(f"register {config.label} seed {index + 1}",
                                {**{k: str(v) for k, v in config.settings.items()},
                                 **placement_params(config.placement), SEED: str(seed)},
                                {ROLE_TAG: ROLE_CONFIRM, CONFIRM_LABEL_TAG: config.label},
                                under="confirmation")
        run.finish("COMPLETE", final)
        run_id = run.reference
    tags = {
        "sweep.study": study_name, "sweep.trial": str(config.trial_number),
        "sweep.seed": str(seed), "sweep.placement": describe_placement(config.placement),
        "sweep.coefficients": json.dumps(config.placement, sort_keys=True),
        **({"sweep.settings": json.dumps(config.settings, sort_keys=True)}
           if config.settings else {}),
        "sweep.metric": comparison.metric, "sweep.delta": f"{comparison.difference:.6g}",
        "sweep.ci_low": f"{comparison.ci_low:.6g}", "sweep.ci_high": f"{comparison.ci_high:.6g}",
        "sweep.p_value": f"{comparison.p_value:.6g}", "sweep.seeds": str(len(config.seeds)),
        **{f"sweep.{k.removeprefix('final/')}": f"{v:.6g}" for k, v in final.items()
           if k.startswith("final/test_")},
    }
    description = (f"regsweep study '{study_name}', trial #{config.trial_number}'s "
                   f"configuration ({describe_placement(config.placement)}), re-trained with "
                   f"confirmation seed {seed} (the median of {len(config.seeds)}): {reason}.")
    version = register_keras_model(tracker.tracking_uri, run_id, served,
                                   signature(served, splits.head("val", 5)), name, tags,
                                   description)
    return Registration(name, True, reason, version=version, trial=config.trial_number,
                        seed=seed, run_id=run_id, seeds=tuple(config.seeds))
