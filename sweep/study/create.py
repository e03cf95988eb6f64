"""Optuna studies that carry their own spec.

The validated spec is stored inside the study (user attr ``spec``) with its fingerprint, so
a worker needs only the study name and the storage URL. The budget is part of the stored
spec but not of the fingerprint: raising it extends a study, anything else is a new study.
"""

from __future__ import annotations

import datetime as _dt
import uuid
import warnings
from typing import TYPE_CHECKING, Any

from sweep.errors import SpecError
from sweep.keys import (
    BASELINE,
    FINGERPRINT,
    PLACEMENT,
    SEED,
    SEED_REPLICATE,
    SETTINGS,
    SPACE_CONFIGURATIONS,
    SPEC,
    STUDY_UID,
    WARM_START_OF,
)
from sweep.redact import mask_url
from sweep.seeds import extra_seed, sampler_seed
from sweep.spec import StudySpec, parse_spec
from sweep.spec.study import identity_part
from sweep.storage import optuna_internals as internals

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def make_sampler(spec: StudySpec, space: Any = None, *, worker_index: int = 0,
                 trials_so_far: int = 0):
    import optuna

    # `group`/`constant_liar` are marked experimental but are what makes TPE handle
    # conditional placements and several workers; the warning would only alarm users.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    seed = sampler_seed(spec.seed, worker_index, trials_so_far)
    name = spec.sampler
    if name == "tpe":
        from sweep.search.history import RecentHistory

        return RecentHistory(optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                                        group=True, constant_liar=True))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name in ("cmaes", "gp"):
        from sweep.search.history import RecentHistory

        model = optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False) \
            if name == "cmaes" else optuna.samplers.GPSampler(seed=seed)
        # Model-based samplers are shown each raced configuration's mean over its seeds
        # (sweep.search.history.seed_means), as TPE is.
        return RecentHistory(model) if spec.racing is not None else model
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler(space.grid(), seed=seed)
    raise SpecError("sampler", "unknown sampler", name)


def make_pruner(spec: StudySpec):
    import optuna

    pruner = spec.pruner
    if pruner.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=pruner.warmup_epochs,
                                           interval_steps=pruner.interval)
    if pruner.name == "median_per_placement":
        from sweep.placement.searched import searched_values
        from sweep.search.pruners import PlacementMedianPruner

        return PlacementMedianPruner(n_startup_trials=3, n_warmup_steps=pruner.warmup_epochs,
                                     interval_steps=pruner.interval,
                                     searched=searched_values(spec))
    if pruner.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, pruner.warmup_epochs),
                                              max_resource=spec.train.epochs)
    if pruner.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, pruner.warmup_epochs))
    return optuna.pruners.NopPruner()


def stored_spec(study: optuna.Study) -> StudySpec:
    data = study.user_attrs.get(SPEC)
    if data is None:
        raise SpecError("STUDY_NAME", "this study was not created by regsweep (no stored spec)",
                        study.study_name)
    spec = parse_spec(data)
    # The spec is what workers train (a builder in it is code they run): one rewritten in
    # the database behind `sweep create`'s back is refused, not obeyed.
    recorded = study.user_attrs.get(FINGERPRINT)
    if recorded is not None and recorded != spec.fingerprint():
        raise SpecError("STUDY_NAME", "the spec stored in this study was changed outside "
                        "`sweep create`/`sweep run` (its fingerprint does not match); "
                        "refusing to train it", study.study_name)
    return spec


def _spec_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out: list[str] = []
    for key in keys:
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _spec_differences(a, b, path + ".")
        elif a != b:
            out.append(f"{path}: stored {a!r}, file {b!r}")
    return out


def create_or_resume(spec: StudySpec, storage: Any, *, force_new: bool = False,
                     n_trials: int | None = None, space: Any = None,
                     warm_start: list[tuple[str, dict[str, Any]]] | None = None):
    """The study for ``spec``: created (with the spec inside) or resumed.

    A stored spec that differs from the file (budget aside) is refused, unless
    ``force_new``, which archives the old study under a new name and starts afresh.
    ``warm_start``: configurations (sweep.study.warm) queued after the baselines of a new
    study; a study that exists already took its warm start when it was created."""
    import optuna

    if n_trials is not None:
        spec = spec.model_copy(update={"budget": spec.budget.model_copy(
            update={"n_trials": n_trials})})
    existing = _find(storage, spec.name)
    if existing is not None and force_new:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
        archive = f"{spec.name}.archived-{stamp}"
        optuna.copy_study(from_study_name=spec.name, from_storage=storage,
                          to_storage=storage, to_study_name=archive)
        optuna.delete_study(study_name=spec.name, storage=storage)
        existing = None
    if existing is not None:
        if warm_start and not any(WARM_START_OF in t.user_attrs
                                  for t in existing.get_trials(deepcopy=False)):
            raise SpecError("--warm-start", f"study '{spec.name}' exists already; a warm "
                            "start applies when a study is created (--force-new archives "
                            "the old one and starts afresh)", spec.name, show_value=False)
        if existing.user_attrs.get(FINGERPRINT) != spec.fingerprint():
            stored = existing.user_attrs.get(SPEC) or {}
            differences = _spec_differences(
                identity_part(stored),
                spec.canonical(operational=False))
            raise SpecError(
                "STUDY_FILE",
                f"differs from the spec stored in study '{spec.name}' "
                f"({'; '.join(differences[:5]) or 'fingerprint differs'}); "
                "rename the study, or pass --force-new to archive the old one and start afresh",
                spec.name, show_value=False)
        if existing.user_attrs[SPEC] != spec.canonical():
            existing.set_user_attr(SPEC, spec.canonical())
        if space is not None and SPACE_CONFIGURATIONS not in existing.user_attrs:
            record_space(existing, space)  # a study created before this was recorded
        enqueue_seed_replicates(existing, spec, space)  # stop_within_noise switched on later
        return existing, spec
    directions = spec.directions
    study = optuna.create_study(
        study_name=spec.name, storage=storage, directions=directions,
        sampler=make_sampler(spec, space), pruner=make_pruner(spec),
    )
    study.set_user_attr(SPEC, spec.canonical())
    study.set_user_attr(FINGERPRINT, spec.fingerprint())
    study.set_user_attr(STUDY_UID, uuid.uuid4().hex)
    if space is not None:
        record_space(study, space)
        enqueue_baselines(study, spec, space)
    if warm_start:
        from sweep.study.warm import enqueue_warm_start

        enqueue_warm_start(study, warm_start)
    return study, spec


def record_space(study: optuna.Study, space: Any) -> None:
    """Store the keys of a finite space's configurations (see limits.exhausted)."""
    from sweep.placement.configurations import space_keys

    keys = space_keys(space)
    if keys is not None:
        study.set_user_attr(SPACE_CONFIGURATIONS, keys)


def enqueue_baselines(study: optuna.Study, spec: StudySpec, space: Any) -> None:
    """Queue the baselines ahead of anything the sampler proposes (workers take waiting
    trials first), so every study answers "better than no regularization, and than plain
    weight decay?" The queued trials carry their placement; they count in the budget.
    With ``budget.stop_within_noise``, the no-regularization baseline's extra seeds follow
    (sweep.search.noise)."""
    for name, placement in space.baselines()[:spec.budget.n_trials]:
        attrs = {BASELINE: name, PLACEMENT: placement}
        settings = space.baseline_settings()
        if settings:  # what else the study searches, at typical values (no regularizer)
            attrs[SETTINGS] = settings
        study.enqueue_trial({}, user_attrs=attrs, skip_if_exists=False)
    enqueue_seed_replicates(study, spec, space)


def enqueue_seed_replicates(study: optuna.Study, spec: StudySpec, space: Any = None) -> None:
    """The no-regularization baseline again, ``seeds.noise - 1`` times, on its extra seeds
    1, 2, … (those seed racing would give it), unless already queued."""
    from sweep.placement.space import BASELINE_NONE

    if not spec.budget.stop_within_noise:
        return
    trials = study.get_trials(deepcopy=False)
    queued = {t.user_attrs.get(SEED_REPLICATE) for t in trials}
    # The baseline's own settings (its first trial's), so its replicates train the same.
    settings = next((t.user_attrs[SETTINGS] for t in trials
                     if t.user_attrs.get(BASELINE) == BASELINE_NONE
                     and SETTINGS in t.user_attrs), None)
    if settings is None and space is not None:
        settings = space.baseline_settings()
    for replicate in range(1, spec.seeds.noise):
        if replicate not in queued:
            attrs = {BASELINE: BASELINE_NONE, PLACEMENT: {}, SEED_REPLICATE: replicate,
                     SEED: extra_seed(spec.seed, replicate)}
            if settings:
                attrs[SETTINGS] = settings
            study.enqueue_trial({}, user_attrs=attrs, skip_if_exists=False)


def _find(storage: Any, name: str):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None


def load(storage: Any, name: str, *, storage_url: str = "", name_field: str = "STUDY_NAME"):
    """An existing study and the spec stored inside it (``name_field``: how the caller
    names the study in errors)."""
    study = _find(storage, name)
    if study is None:
        raise SpecError(name_field, f"no such study in {mask_url(storage_url) or 'storage'}",
                        name)
    return study, stored_spec(study)


def load_named(storage_url: str, name: str, *, read_only: bool = True,
               field: str = "--storage", name_field: str = "STUDY_NAME"):
    """(storage, study, spec) of the study ``name`` in an existing storage (``field``,
    ``name_field``: how the caller names the storage and the study in errors)."""
    from sweep.storage.connect import quiet_optuna, read_storage

    quiet_optuna()
    storage = read_storage(storage_url, read_only=read_only, field=field)
    study, spec = load(storage, name, storage_url=storage_url, name_field=name_field)
    return storage, study, spec


def configure(study: optuna.Study, spec: StudySpec, space: Any, *, worker_index: int = 0) -> None:
    """Give a loaded study this worker's sampler and the spec's pruner (Optuna does not
    store either)."""
    from optuna.trial import TrialState

    # Trials queued (baselines, a warm start) were drawn by no sampler: a fresh study's
    # first worker samples with the study seed.
    started = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, space, worker_index=worker_index,
                                 trials_so_far=started)
    study.pruner = make_pruner(spec)


def finished_count(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> int:
    """``budget.finished_in_budget`` of the study's trials, by any worker: counted by the
    database where it can (after every trial; reading 10,000 trials for it took 40 ms),
    else over ``trials`` (read here if not given)."""
    from sweep.storage.budget import budgeted_backend, finished_in_budget

    backend = budgeted_backend(internals.storage(study))
    if backend is not None:
        return backend.finished_in_budget(internals.study_id(study))
    return finished_in_budget(study.get_trials(deepcopy=False) if trials is None else trials)
