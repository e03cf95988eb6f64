"""How runs are named and what their params say about the placement they tried."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sweep.keys import LOG10_COEFFICIENT_PREFIX
from sweep.placement.searched import describe_settings
from sweep.placement.space import Placement, describe_placement


def short_number(value: float) -> str:
    """``4.7e-4`` rather than ``0.00047`` or ``4.7e-04``: short enough for a run name."""
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def coefficient_label(placement: Placement) -> str:
    """The coefficients of a placement in a few characters: ``l1=1e-5 l2=4.7e-4``, or
    ``l2=per-layer`` when the layers differ."""
    values: dict[str, set[float]] = {}
    for _, kind, value in _coefficients(placement):
        values.setdefault(kind, set()).add(value)
    return " ".join(f"{kind}={short_number(next(iter(found)))}" if len(found) == 1
                    else f"{kind}=per-layer" for kind, found in sorted(values.items()))


def trial_run_name(number: int, label: str, placement: Placement,
                   baseline: str | None = None,
                   seed_of: tuple[int, int] | None = None,
                   settings: Mapping[str, Any] | None = None) -> str:
    """What the MLflow UI lists: ``#5 before_flatten l2=4.7e-4``,
    ``#0 baseline: no regularization``, ``#1 baseline: uniform_l2 l2=3.2e-4``; a seed
    racing re-run (``seed_of``: first trial, seed index) ``#9 = #5 seed 2``. The searched
    settings follow (``learning_rate=0.003 dropout/rate=0.2``)."""
    if seed_of is not None:
        return f"#{number} = #{seed_of[0]} seed {seed_of[1] + 1}"
    coefficients = coefficient_label(placement)
    extra = describe_settings(settings or {})
    if baseline:
        what = "no regularization" if not placement else f"{baseline} {coefficients}"
        return f"#{number} baseline: {what} {extra}".strip()[:120]
    return f"#{number} {label} {coefficients} {extra}".strip()[:120]



def duplicate_run_name(number: int, original: int) -> str:
    return f"#{number} = #{original} (duplicate)"


def trial_note(number: int, placement: Placement, metric: str, value: float, *,
               origin: int | None = None, index: int = 0) -> str:
    """A trial run's description (the top of its MLflow page): which configuration it
    trained on which of its seeds (``origin``: the configuration's first trial, for a
    re-run; ``index``: its seed, 0 for the first), its own figure, and where the rest is."""
    what = describe_placement(placement)
    if origin is None:
        seed = "its first seed" if not index else f"seed {index + 1}"
        head = (f"**Configuration #{number}** ({what}), {seed}: {metric} {value:.4f} on "
                "this seed. The configuration's mean over its seeds is `seeds/mean` on the "
                "run that names it; its re-runs are grouped under it in the study's runs "
                "view.")
    else:
        head = (f"**#{origin} seed {index + 1}**: configuration #{origin} ({what}) "
                f"trained again on a further seed: {metric} {value:.4f} on this seed (its "
                f"own draw; the configuration's mean is `seeds/mean` on #{origin}'s run).")
    return (f"{head}\n\nThe kernel norm of every layer beside no regularization's: "
            "Artifacts → `weights.svg`.")


def coefficient_metrics(placement: Placement) -> dict[str, float]:
    """The placement's coefficients as ``coefficients/log10_<kind>`` metrics (one per kind
    when every layer has the same, else ``…/<layer>``), for the runs view's charts. A
    placement without a kind has no such metric: no regularization is no point on a log
    axis."""
    import math

    values: dict[str, dict[str, float]] = {}
    for layer, kind, value in _coefficients(placement):
        if value > 0:
            values.setdefault(kind, {}).setdefault(layer, value)
    found = {}
    for kind, by_layer in sorted(values.items()):
        if len(set(by_layer.values())) == 1:
            found[f"{LOG10_COEFFICIENT_PREFIX}{kind}"] = math.log10(next(iter(
                by_layer.values())))
        else:
            found.update({f"{LOG10_COEFFICIENT_PREFIX}{kind}/{layer}": math.log10(value)
                          for layer, value in by_layer.items()})
    return found


def _coefficients(placement: Placement) -> Iterator[tuple[str, str, float]]:
    """(layer, kind, coefficient) of every penalty a placement applies."""
    for layer, targets in placement.items():
        for kinds in targets.values():
            for kind, value in kinds.items():
                yield layer, kind, float(value)


def placement_params(placement: Placement) -> dict[str, str]:
    """The resolved placement as MLflow params: which layer got which penalty."""
    params = {"resolved": describe_placement(placement)}
    for layer, targets in placement.items():
        for target, kinds in targets.items():
            for kind, value in kinds.items():
                params[f"resolved/{layer}/{target}/{kind}"] = repr(float(value))
    return params


