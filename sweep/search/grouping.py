"""The configuration: everything a trial's model depends on except its seed (its resolved
placement with the coefficients), with its evaluations over seeds. The one type that seed
racing, the ranking, the seed noise (the baseline's configuration), the duplicate rule (a
trial whose placement is a trained configuration's reuses its figures), warm start and the
confirmation's picks read. Its identity as a key (the finite space walk, the stored
confirmation) is ``sweep.placement.configurations.placement_key``; its seeds come from
``sweep.seeds``.

A configuration is a trial the sampler proposed, with its re-runs (``seed_of``); or a
baseline kind, with its seed replicates and re-runs. Trials are grouped by those links,
not by hashing placements: at 10,000 trials keying every placement cost 100-350 ms.

``configurations`` groups a list of trials from scratch (read commands, tests);
``grouped`` keeps a worker's grouping across its trials, so that deciding the next
promotion after every trial does not regroup the whole study (at 10,000 trials regrouping
cost 45 ms, bench/scale_trials.py).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from sweep.keys import (
    BASELINE,
    DUPLICATE_OF,
    FINAL,
    PLACEMENT,
    SEED_INDEX,
    SEED_OF,
    SEED_REPLICATE,
    SEED_VALUE,
    SETTINGS,
)
from sweep.placement.searched import (
    Searched,
    family_label,
    regularizer_families,
    searched_values,
    searches_regularizers,
)
from sweep.placement.space import BASELINE_NONE
from sweep.spec import StudySpec
from sweep.storage import optuna_internals as internals
from sweep.storage.budget import given_back, retried_numbers

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["Configuration", "configurations", "draw", "figure_text", "grouped",
           "sample_sd", "seed_index"]


def figure_text(mean: float, sd: float | None, n: int) -> str:
    """``0.9192 ± 0.0350 over 5 seeds`` (``0.9192, 1 seed``): a configuration's figure
    wherever regsweep shows one (progress line, best, status, report, MLflow)."""
    if sd is None:
        return f"{mean:.4f}, {n} seed{'' if n == 1 else 's'}"
    return f"{mean:.4f} ± {sd:.4f} over {n} seeds"


def sample_sd(values: Sequence[float]) -> float | None:
    """The sample standard deviation (n - 1) of draws over seeds, None below two: the one
    spread regsweep shows for a configuration, a confirmation and the seed noise."""
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def seed_index(trial: Any) -> int:
    """Which of its configuration's seeds a trial trained: 0 for the first training, k for
    a racing re-run or noise replicate queued as its k-th extra seed."""
    attrs = trial.user_attrs
    return int(attrs.get(SEED_INDEX, attrs.get(SEED_REPLICATE, 0)))


def draw(trial: Any) -> float:
    """A finished trial's own value on its seed (a re-run's value is the mean)."""
    return float(trial.user_attrs.get(SEED_VALUE, trial.values[0]))


@dataclass(slots=True)
class Configuration:
    """One configuration and every trial that trained it (duplicates aside)."""

    key: int  # the number of its first trial
    placement: dict
    members: list[Any] = field(default_factory=list)  # by trial number
    complete: list[Any] = field(default_factory=list)  # members with a value, by number
    draws: list[float] = field(default_factory=list)  # their own values, same order
    scheduled: int = 0  # members that hold or held a seed (finished, running, waiting)

    @property
    def first(self) -> Any:
        return self.members[0]

    @property
    def settings(self) -> dict:
        """Its values of what the study searches besides the penalties (empty if none)."""
        return self.first.user_attrs.get(SETTINGS) or {}

    @property
    def baseline(self) -> str | None:
        return self.first.user_attrs.get(BASELINE)

    @property
    def n(self) -> int:
        return len(self.draws)

    @property
    def mean(self) -> float:
        return sum(self.draws) / len(self.draws)

    @property
    def sd(self) -> float | None:
        return sample_sd(self.draws)

    @property
    def named(self) -> Any:
        """The finished trial that names the configuration everywhere (``#7``): its first
        finished training. Its run, params and placement are the configuration's; its
        value is one draw, never the configuration's figure (``mean``)."""
        return self.complete[0]

    @property
    def name(self) -> str:
        return f"#{self.named.number}" if self.complete else f"#{self.key}"

    def figure(self) -> str:
        """``figure_text`` of this configuration."""
        return figure_text(self.mean, self.sd, self.n)

    def final_means(self) -> dict[str, float]:
        """Each ``final/*`` figure averaged over the configuration's finished seeds (a
        figure a seed did not record is averaged over those that did)."""
        sums: dict[str, list[float]] = {}
        for trial in self.complete:
            for key, value in trial.user_attrs.items():
                if key.startswith(FINAL) and isinstance(value, int | float) \
                        and not isinstance(value, bool):
                    sums.setdefault(key, []).append(float(value))
        return {key: sum(values) / len(values) for key, values in sums.items()}

    def rerun_name(self, trial: Any) -> str:
        """``#7 seed 3`` for a re-run (or seed replicate) of this configuration; ``#7`` for
        the trial that names it."""
        index = seed_index(trial)
        return self.name if not index else f"{self.name} seed {index + 1}"


def _copy(configuration: Configuration) -> Configuration:
    return Configuration(configuration.key, configuration.placement,
                         list(configuration.members), list(configuration.complete),
                         list(configuration.draws), configuration.scheduled)


def _group(trials: Iterable[Any], found: dict[int, Configuration], baselines: dict[str, int],
           skip: set[int], *, shared: dict[int, Configuration] | None = None,
           failed: dict[int, int] | None = None) -> None:
    """Add ``trials`` (by number, after every trial already in ``found``) to ``found``.
    Configurations that are still ``shared``'s own objects are copied before they change;
    FAIL members are noted in ``failed`` (number → key)."""
    for trial in trials:
        attrs = trial.user_attrs
        placement = attrs.get(PLACEMENT)
        if placement is None or DUPLICATE_OF in attrs or trial.number in skip:
            continue
        origin = attrs.get(SEED_OF)
        if origin is None:
            kind = attrs.get(BASELINE)
            origin = trial.number if kind is None else baselines.setdefault(kind, trial.number)
        configuration = found.get(origin)
        if configuration is None:
            configuration = found[origin] = Configuration(origin, placement)
        elif shared is not None and shared.get(origin) is configuration:
            configuration = found[origin] = _copy(configuration)
        configuration.members.append(trial)
        configuration.scheduled += 1
        if trial.state == TrialState.COMPLETE and trial.values:
            configuration.complete.append(trial)
            configuration.draws.append(draw(trial))
        elif failed is not None and trial.state == TrialState.FAIL:
            failed[trial.number] = origin


def configurations(trials: Iterable[Any]) -> list[Configuration]:
    """The configurations of these trials, by first trial. A duplicate trained nothing; a
    FAIL trial whose place went to a retry or a re-queued trial is not a member (its
    successor is)."""
    trials = sorted(trials, key=lambda t: t.number)
    found: dict[int, Configuration] = {}
    _group(trials, found, {}, given_back(trials, retried_numbers(trials)))
    return list(found.values())


@dataclass
class _Fold:
    """The grouping of a study's finished prefix: every trial numbered below ``upto`` is
    finished (and a finished trial never changes), so it is grouped once."""

    upto: int = 0
    found: dict[int, Configuration] = field(default_factory=dict)
    baselines: dict[str, int] = field(default_factory=dict)
    retried: set[int] = field(default_factory=set)
    failed: dict[int, int] = field(default_factory=dict)  # FAIL member -> its key


_folds: weakref.WeakKeyDictionary[Any, dict[int, _Fold]] = weakref.WeakKeyDictionary()


def grouped(study: optuna.Study, trials: Sequence[FrozenTrial]) -> list[Configuration]:
    """``configurations(trials)`` for ``trials``, every trial of ``study`` by number (what
    ``study.get_trials()`` returns), regrouping only the trials past the study's finished
    prefix. The configurations returned may be shared with later calls: read them only."""
    key = internals.study_id(study)
    folds = _folds.setdefault(internals.storage(study), {})
    fold = folds.get(key)
    if fold is None or len(trials) < fold.upto or any(
            trials[i].number != i for i in (0, fold.upto - 1, len(trials) - 1)
            if 0 <= i < len(trials)):
        fold = folds[key] = _Fold()
    tail = trials[fold.upto:]
    retried = retried_numbers(tail)
    if retried & fold.failed.keys():
        # A grouped FAIL member was retried since: its configuration changes membership
        # (rare: a lost worker's trial), so group the study again.
        fold = folds[key] = _Fold()
        tail = trials
        retried = retried_numbers(tail)
    retried |= fold.retried
    skip = given_back(tail, retried)
    end = fold.upto
    while end < len(trials) and trials[end].state.is_finished():
        end += 1
    finished = trials[fold.upto:end]
    _group(finished, fold.found, fold.baselines, skip, failed=fold.failed)
    fold.retried |= retried_numbers(finished)
    fold.upto = end
    # The unfinished rest (and whatever finished after it) on a copy-on-write view.
    found = dict(fold.found)
    _group(trials[end:], found, dict(fold.baselines), skip, shared=fold.found)
    return list(found.values())


def baseline_group(kind: str) -> str:
    """The comparison's row of a baseline kind (``none (baseline)``)."""
    return f"{kind} (baseline)"


def group_label(trial: Any, spec: StudySpec,
                searched: Sequence[Searched] | None = None) -> str:
    """Which row of the comparison a trial belongs to: its baseline kind, the named
    placement it drew, or (mask search) the set of slots it regularized; when the study
    also searches a regularizer (dropout, weight decay), its regularizer family
    (``l2 (all) + dropout``). ``searched``: the study's searched values, when the caller
    holds them (sweep.placement.searched.searched_values)."""
    if searched is None:
        searched = searched_values(spec)
    baseline = trial.user_attrs.get(BASELINE)
    if baseline:
        return baseline_group(baseline)
    placement = trial.user_attrs.get(PLACEMENT) or {}
    settings = trial.user_attrs.get(SETTINGS) or {}
    if PLACEMENT in trial.user_attrs and not regularizer_families(placement, settings,
                                                                  searched):
        # No regularizer anywhere (placement `none`, both coefficients off, dropout
        # switched off): the same model as the no-regularization baseline, so one row,
        # not the same trial twice.
        return baseline_group(BASELINE_NONE)
    if "placement" in trial.params:
        label = str(trial.params["placement"])
    elif (choices := spec.search.placement.choices) is not None and len(choices) == 1:
        label = choices[0]  # a fixed placement is not a parameter
    else:
        label = "+".join(placement) if placement else "none"
    if searches_regularizers(searched):
        return family_label(label, placement, settings, searched)
    return label
