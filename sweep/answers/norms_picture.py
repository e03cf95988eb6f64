"""A trial's per-layer weight norms in one picture beside no regularization's: the SVG
each trial run carries (artifact ``weights.svg``), so that its MLflow page shows what the
penalty did to every layer at a glance, instead of one chart per layer, each on its own
axis and none with the baseline, in the 7th of 8 metric sections.

Written as SVG text (no plotting library: it is drawn at the end of every trial, and
matplotlib's import and rendering would cost the trial more than the drawing is worth).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from sweep.keys import BASELINE, SEED, SEED_INDEX, SEED_OF, WEIGHTS_L2_PREFIX

if TYPE_CHECKING:
    import optuna

__all__ = ["ARTIFACT", "WeightsPicture", "norms_svg"]

ARTIFACT = "weights.svg"
Curve = Sequence[tuple[int, float]]  # (epoch, value), by epoch

# Colour-blind-safe (Okabe & Ito), one per layer in the order the model has them.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
            "#F0E442")
_W, _H = 700, 340
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 210, 40, 40


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)


def _number(value: float) -> str:
    return f"{value:g}"


def norms_svg(curves: Mapping[str, Curve], baseline: Mapping[str, Curve] | None, *,
              title: str, own: str, other: str | None) -> str:
    """One chart: each layer's ``weights_l2`` over the epochs, this trial's solid (``own``
    names it) and the no-regularization baseline's dashed in the same colour (``other``
    names it; None: the baseline has no curves yet, or this is the baseline)."""
    baseline = baseline or {}
    layers = list(curves) + [layer for layer in baseline if layer not in curves]
    points = [p for curve in (*curves.values(), *baseline.values()) for p in curve]
    if not points:
        return ""
    last_epoch = max(epoch for epoch, _ in points)
    first_epoch = min(epoch for epoch, _ in points)
    top = max(value for _, value in points) or 1.0
    step = _nice_step(top)
    top = math.ceil(top / step) * step
    width, height = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(epoch: float) -> float:
        span = max(1, last_epoch - first_epoch)
        return _LEFT + (epoch - first_epoch) / span * width

    def y(value: float) -> float:
        return _TOP + height - value / top * height

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
             f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="11">',
             f'<rect width="{_W}" height="{_H}" fill="white"/>',
             f'<text x="{_LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>']
    ticks = round(top / step)
    for index in range(ticks + 1):
        value = index * step
        parts.append(f'<line x1="{_LEFT}" x2="{_LEFT + width}" y1="{y(value):.1f}" '
                     f'y2="{y(value):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                     f'{_number(value)}</text>')
    epoch_step = max(1, int(_nice_step(max(1, last_epoch - first_epoch), 5)))
    for epoch in range(first_epoch, last_epoch + 1):
        if epoch % epoch_step == 0 or epoch == first_epoch:
            parts.append(f'<text x="{x(epoch):.1f}" y="{_TOP + height + 16}" '
                         f'text-anchor="middle">{epoch}</text>')
    parts.append(f'<text x="{_LEFT + width / 2:.1f}" y="{_H - 6}" text-anchor="middle">'
                 'epoch</text>')
    parts.append(f'<text x="14" y="{_TOP + height / 2:.1f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {_TOP + height / 2:.1f})">L2 norm of the kernel'
                 '</text>')
    for index, layer in enumerate(layers):
        colour = _COLOURS[index % len(_COLOURS)]
        for curve, dash in ((baseline.get(layer), ' stroke-dasharray="5 4"'),
                            (curves.get(layer), "")):
            if not curve:
                continue
            line = " ".join(f"{x(epoch):.1f},{y(value):.1f}" for epoch, value in curve)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{dash}/>')
        legend_y = _TOP + 14 * index
        parts.append(f'<line x1="{_W - _RIGHT + 12}" x2="{_W - _RIGHT + 32}" '
                     f'y1="{legend_y}" y2="{legend_y}" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{_W - _RIGHT + 36}" y="{legend_y + 4}">{escape(layer)}</text>')
    key_y = _TOP + 14 * len(layers) + 14
    keys = [(own, "")] + ([(other, ' stroke-dasharray="5 4"')] if other else [])
    for index, (label, dash) in enumerate(keys):
        row = key_y + 14 * index
        parts.append(f'<line x1="{_W - _RIGHT + 12}" x2="{_W - _RIGHT + 32}" y1="{row}" '
                     f'y2="{row}" stroke="#555" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{_W - _RIGHT + 36}" y="{row + 4}">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


class WeightsPicture:
    """A worker's trial pictures: collects the running trial's kernel norms epoch by epoch,
    and at its end logs ``weights.svg`` on its run beside the baseline's curves (read from
    MLflow once per baseline run: a finished run never changes)."""

    def __init__(self, tracker: Any):
        self.tracker = tracker
        self._norms: dict[str, list[tuple[int, float]]] = {}
        self._baselines: dict[str, dict[str, list[tuple[int, float]]]] = {}

    def start(self) -> None:
        self._norms = {}

    def epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            if key.startswith(WEIGHTS_L2_PREFIX):
                self._norms.setdefault(key.removeprefix(WEIGHTS_L2_PREFIX), []).append(
                    (epoch, value))

    def draw(self, trial: Any, run: Any) -> None:
        """The trial's kernel norms beside no regularization's, on its run."""
        from sweep.placement.space import BASELINE_NONE

        attrs = trial.user_attrs
        own = f"#{attrs[SEED_OF]} seed {attrs.get(SEED_INDEX, 0) + 1}" if SEED_OF in attrs \
            else f"#{trial.number}"
        is_baseline = attrs.get(BASELINE) == BASELINE_NONE
        baseline = None if is_baseline else self._baseline(trial.study, attrs.get(SEED))
        svg = norms_svg(self._norms, baseline[1] if baseline else None,
                        title="L2 norm of each layer's kernel, per epoch",
                        own=f"{own}: no regularization" if is_baseline else own,
                        other=f"no regularization ({baseline[0]})" if baseline else None)
        if svg:
            run.log_text(ARTIFACT, svg)

    def _baseline(self, study: optuna.Study, seed: Any
                  ) -> tuple[str, dict[str, list[tuple[int, float]]]] | None:
        """The no-regularization baseline's name and kernel norms, on this ``seed`` where
        it trained on it (the same initial weights: an extra seed is every
        configuration's), else on its first; None before it has finished, or when MLflow
        cannot say (the picture then shows the trial alone)."""
        import logging

        import optuna

        from sweep.errors import describe_failure
        from sweep.placement.space import BASELINE_NONE
        from sweep.results.queries import logged_run_id
        from sweep.search.grouping import seed_index

        done = [t for t in study.get_trials(deepcopy=False,
                                            states=(optuna.trial.TrialState.COMPLETE,))
                if t.user_attrs.get(BASELINE) == BASELINE_NONE]
        if not done:
            return None
        first = done[0]
        base = next((t for t in done if t.user_attrs.get(SEED) == seed), first)
        name = f"#{first.number} seed {seed_index(base) + 1}" if base is not first else \
            f"#{first.number}, other seed"
        run_id = logged_run_id(base, study.user_attrs)
        if run_id is None:
            return None
        if run_id not in self._baselines:
            try:
                self._baselines[run_id] = self.tracker.weight_norm_curves(run_id, "l2")
            except Exception as error:  # a picture is no reason to fail a trial
                logging.getLogger("sweep").debug("no baseline curves: %s",
                                                 describe_failure(error, 200))
                return None
        return name, self._baselines[run_id]
