"""Warm start: the best configurations of an earlier study, queued as the first trials of
a new one (re-trained on the new study's model and data, not copied), so that a study on a
bigger model or more data starts from what a small one learned.

Every configuration must fit the new search space exactly (each parameter the new space
asks for, with a value it allows, and no other): one that does not is refused before
anything is written, naming the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sweep.errors import SpecError
from sweep.keys import WARM_START_OF

if TYPE_CHECKING:
    import optuna

    from sweep.spec import StudySpec

FIELD = "--warm-start"


@dataclass(frozen=True)
class WarmStart:
    """Where the configurations come from and how many."""

    study: str
    storage: str  # the old study's storage URL (may be the new study's)
    top: int = 3
    # (old study, its spec) once read: `opened` reads it before the new study file is
    # checked, which imports TensorFlow (a misspelt name took 5.9 s to be refused).
    source: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)

    def opened(self) -> WarmStart:
        """This warm start with its old study read (bad names refused: exit 2)."""
        from sweep.study.create import load_named

        _, old_study, old_spec = load_named(self.storage, self.study,
                                            field="--warm-start-storage", name_field=FIELD)
        return replace(self, source=(old_study, old_spec))


class _Misfit(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(name, message)
        self.name, self.message = name, message


class _Replay:
    """A stand-in for an Optuna trial that answers with the old trial's parameters and
    checks each against what the new space allows."""

    def __init__(self, params: dict[str, Any]):
        self.params = params
        self.asked: set[str] = set()

    def _value(self, name: str) -> Any:
        if name not in self.params:
            raise _Misfit(name, "the new search space asks for it; the old trial has none")
        self.asked.add(name)
        return self.params[name]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._value(name)
        if value not in list(choices):
            raise _Misfit(name, f"= {value!r} is not one of the new choices {list(choices)}")
        return value

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False
                      ) -> float:
        value = self._value(name)
        if not isinstance(value, int | float) or not low <= value <= high:
            raise _Misfit(name, f"= {value!r} is outside the new range [{low:g}, {high:g}]")
        return float(value)

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int:
        value = self.suggest_float(name, low, high)
        if value != int(value):
            raise _Misfit(name, f"= {value!r} is not a whole number")
        return int(value)


def fit(params: dict[str, Any], space: Any) -> None:
    """Raise _Misfit unless ``params`` is exactly a configuration of ``space``: its
    placement and coefficients, and the values it searches besides (a learning rate, a
    dropout rate)."""
    replay = _Replay(params)
    space.suggest(replay)
    space.suggest_settings(replay)
    extra = sorted(set(params) - replay.asked)
    if extra:
        raise _Misfit(extra[0], "is not a parameter of the new search space")


def warm_configurations(old_study: optuna.Study, old_spec: StudySpec, space: Any, top: int
                        ) -> list[tuple[str, dict[str, Any]]]:
    """(origin ``study#N``, params) of the ``top`` best configurations of the old study in
    its ranking (``#N`` names each, as everywhere; baselines aside: the new study trains
    its own). Raises SpecError (field ``--warm-start``) naming the first parameter that does
    not fit ``space``."""
    from sweep.results.ranking import ranked_configurations

    picked: list[tuple[str, dict[str, Any]]] = []
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for configuration in ranked_configurations(old_study, old_spec):
        trial = configuration.named
        # Two workers may each have trained one configuration as one of its own.
        identity = (configuration.placement, configuration.settings)
        if configuration.baseline or not trial.params or identity in seen:
            continue
        seen.append(identity)
        origin = f"{old_study.study_name}#{trial.number}"
        try:
            fit(dict(trial.params), space)
        except _Misfit as misfit:
            raise SpecError(FIELD, f"trial #{trial.number} of study "
                            f"'{old_study.study_name}' does not fit the new search space: "
                            f"parameter {misfit.name} {misfit.message}",
                            old_study.study_name) from None
        picked.append((origin, dict(trial.params)))
        if len(picked) == top:
            break
    if not picked:
        raise SpecError(FIELD, "the study has no completed trial with a searched "
                        "configuration to start from", old_study.study_name)
    return picked


def load_warm_start(warm: WarmStart, space: Any, new_name: str, new_storage: str
                    ) -> list[tuple[str, dict[str, Any]]]:
    """The configurations of ``warm``, read (never written) from its storage."""
    if warm.study == new_name and warm.storage == new_storage:
        raise SpecError(FIELD, "a study cannot warm-start from itself", warm.study)
    old_study, old_spec = (warm.source or warm.opened().source)  # type: ignore[misc]
    return warm_configurations(old_study, old_spec, space, warm.top)


def check_room(configurations: list[Any], baselines: int, n_trials: int) -> None:
    """Queued trials use the budget: the baselines and the warm start must fit in it."""
    if baselines + len(configurations) > n_trials:
        raise SpecError("--warm-start-top", f"{len(configurations)} warm-start "
                        f"configurations and {baselines} baselines do not fit in "
                        f"budget.n_trials = {n_trials}; queue fewer or raise the budget",
                        len(configurations))


def enqueue_warm_start(study: optuna.Study,
                       configurations: list[tuple[str, dict[str, Any]]]) -> None:
    """Queue the configurations (after the baselines: workers take waiting trials in
    order). They are trials like any other and use the budget."""
    for origin, params in configurations:
        study.enqueue_trial(params, user_attrs={WARM_START_OF: origin}, skip_if_exists=False)
