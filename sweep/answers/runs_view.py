"""The study's configurations in MLflow's runs view: each trial's run is tagged with its
configuration's name (``#7``), what the saved view groups by (sweep.tracking.links
``runs_view_state``), and the run that names a configuration carries its figures over
seeds (``seeds/mean``, ``seeds/sd``, ``seeds/n``), the estimate the ranking orders by
(``seeds/estimate``) and the view's sort key (``seeds/order``). Only that run carries
them: a group row shows the average of its runs' values, so one holder keeps it the
configuration's own."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sweep.errors import describe_failure
from sweep.keys import CONFIGURATION_TAG, SEEDS_PREFIX
from sweep.results.queries import logged_run_id
from sweep.search.grouping import Configuration
from sweep.spec import StudySpec

if TYPE_CHECKING:
    import optuna

__all__ = ["publish_configuration", "publish_ranking"]

log = logging.getLogger("sweep")

# A study's end refreshes the sort key of this many configurations, best first: with seed
# racing every estimate moves a little with each trial (they are shrunk toward the mean of
# all), and one write per configuration would cost minutes at thousands of them. Below the
# first hundred the view's order is that of each configuration's last trial.
REFRESHED = 100


def figures(configuration: Configuration, estimate: float, sign: float) -> dict[str, float]:
    """What the run that names ``configuration`` shows of it. ``seeds/order`` is the
    view's sort key: the estimate, with ties going to the earlier configuration as in the
    ranking (1e-12 per trial number; MLflow breaks ties by the later run), ``sign`` +1
    when the objective is maximized."""
    found = {f"{SEEDS_PREFIX}mean": configuration.mean, f"{SEEDS_PREFIX}n": float(configuration.n),
             f"{SEEDS_PREFIX}estimate": estimate,
             f"{SEEDS_PREFIX}order": estimate - sign * 1e-12 * configuration.key}
    if configuration.sd is not None:
        found[f"{SEEDS_PREFIX}sd"] = configuration.sd
    return found


def publish_configuration(study: optuna.Study, spec: StudySpec, ranking: Sequence[Configuration],
                          trial: Any, tracker: Any) -> None:
    """After ``trial`` finished: tag its run with its configuration's name and write the
    configuration's figures (``ranking``: the study's, with ``trial`` in it) on the run
    that names it. Never worth stopping a worker for; a duplicate (no configuration) and
    a run still spooled (no run to write to yet) are left as they are."""
    from sweep.search.racing import direction_sign, ranking_estimates

    mine = next((c for c in ranking if any(m.number == trial.number for m in c.complete)),
                None)
    if mine is None:
        return
    links = study.user_attrs
    finished = logged_run_id(trial, links)
    if finished is None:
        return  # its run went to the spool: the store is unreachable, the trial must not wait
    estimate, sign = ranking_estimates(ranking, spec)[mine.key], direction_sign(spec)
    # On the tracker's thread: the next trial need not wait for it.
    tracker.later(lambda: _write(tracker, mine, estimate, sign, links, finished),
                  f"write configuration {mine.name}'s figures to MLflow")


def publish_ranking(study: optuna.Study, spec: StudySpec, tracker: Any) -> None:
    """At a study's end (and each report): the figures and sort key of its best
    configurations as the final ranking has them, so the view opens in that order."""
    from sweep.results.ranking import ranked_configurations
    from sweep.search.racing import direction_sign, ranking_estimates

    if spec.is_multi_objective:
        return
    ranking = ranked_configurations(study, spec)
    estimates = ranking_estimates(ranking, spec)
    links, sign = study.user_attrs, direction_sign(spec)
    try:
        for configuration in ranking[:REFRESHED]:
            _write(tracker, configuration, estimates[configuration.key], sign, links)
    except Exception as error:
        log.warning("could not write the ranking to MLflow: %s", describe_failure(error, 200))


def _write(tracker: Any, configuration: Configuration, estimate: float, sign: float,
           links: Any, finished: str | None = None) -> None:
    """The figures on the run that names ``configuration``; its name as a tag on that run
    and on ``finished`` (the run of the trial that just finished, a re-run's)."""
    from mlflow.entities import Metric, RunTag

    from sweep.tracking.client import now_ms

    named = logged_run_id(configuration.named, links)
    name = RunTag(CONFIGURATION_TAG, configuration.name)
    if finished is not None and finished != named:
        tracker.client.set_tag(finished, name.key, name.value)
    if named is None:
        return
    stamp = now_ms()
    tracker.client.log_batch(named, tags=[name], metrics=[
        Metric(k, float(v), stamp, 0) for k, v in figures(configuration, estimate, sign).items()])
