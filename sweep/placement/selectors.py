"""Placement selectors: which slots a named placement regularizes.

Grammar: ``none``, ``all``, ``first``, ``last`` (the output layer),
``penultimate``, ``before_flatten`` (the slot feeding a Flatten or global-pooling layer),
``after_flatten`` (the slot fed by it), ``conv``, ``dense``, a layer name, and unions
``a+b``. ``before_flatten``/``after_flatten`` follow the model graph, so they work for
functional models with several branches (one slot per branch).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from sweep.placement.slots import FLATTENING_CLASSES, LayerInfo

KEYWORDS = (
    "none", "all", "first", "last", "penultimate", "before_flatten", "after_flatten",
    "conv", "dense",
)


class SelectorError(ValueError):
    """A selector that is not in the grammar or matches no slot."""


def _nearest_slots(layers: Sequence[LayerInfo], start: LayerInfo, *, upstream: bool) -> list[str]:
    by_name = {layer.name: layer for layer in layers}
    downstream: dict[str, list[str]] = {layer.name: [] for layer in layers}
    for layer in layers:
        for parent in layer.inbound:
            downstream.setdefault(parent, []).append(layer.name)

    def neighbours(name: str) -> Sequence[str]:
        return by_name[name].inbound if upstream else downstream.get(name, [])

    found: list[str] = []
    seen = {start.name}
    queue = deque(neighbours(start.name))
    while queue:
        name = queue.popleft()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        if by_name[name].is_slot:
            found.append(name)  # stop here: the nearest slot on this path
        else:
            queue.extend(neighbours(name))
    return found


def _flatten_neighbours(layers: Sequence[LayerInfo], *, upstream: bool) -> list[str]:
    names: list[str] = []
    for layer in layers:
        if layer.class_name in FLATTENING_CLASSES:
            names += _nearest_slots(layers, layer, upstream=upstream)
    return names


def _term(term: str, layers: Sequence[LayerInfo], slots: list[LayerInfo]) -> list[str]:
    names = [s.name for s in slots]
    rules: dict[str, Callable[[], list[str]]] = {
        "none": lambda: [],
        "all": lambda: names,
        "first": lambda: names[:1],
        "last": lambda: names[-1:],
        "penultimate": lambda: names[-2:-1],
        "before_flatten": lambda: _flatten_neighbours(layers, upstream=True),
        "after_flatten": lambda: _flatten_neighbours(layers, upstream=False),
        "conv": lambda: [s.name for s in slots if "Conv" in s.class_name],
        "dense": lambda: [s.name for s in slots if s.class_name in ("Dense", "EinsumDense")],
    }
    if term in rules:
        matched = rules[term]()
        if not matched and term != "none":
            raise SelectorError(f"'{term}' matches no layer of this model (slots: "
                                f"{', '.join(names) or 'none'})")
        return matched
    if term in names:
        return [term]
    if any(layer.name == term for layer in layers):
        raise SelectorError(f"layer '{term}' has no kernel to regularize (slots: "
                            f"{', '.join(names) or 'none'})")
    raise SelectorError(f"unknown selector '{term}': use one of {', '.join(KEYWORDS)}, "
                        f"a slot name ({', '.join(names) or 'none'}) or a union 'a+b'")


def select(selector: str, layers: Sequence[LayerInfo]) -> tuple[str, ...]:
    """Slot names the selector picks, in model order."""
    slots = [layer for layer in layers if layer.is_slot]
    terms = [t.strip() for t in str(selector).split("+")]
    if any(not t for t in terms):
        raise SelectorError(f"empty term in '{selector}'")
    if "none" in terms and len(terms) > 1:
        raise SelectorError(f"'none' cannot be part of a union ('{selector}')")
    chosen: set[str] = set()
    for term in terms:
        chosen.update(_term(term, layers, slots))
    return tuple(s.name for s in slots if s.name in chosen)
