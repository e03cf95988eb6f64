"""sweep.answers.norms_picture: a trial's kernel norms per layer in one SVG, beside the
no-regularization baseline's (dashed, same colour per layer)."""

from __future__ import annotations

from xml.etree import ElementTree

from sweep.answers.norms_picture import norms_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_each_layer_is_one_line_and_the_baseline_is_dashed_beside_it() -> None:
    own = {"dense": [(1, 2.0), (2, 1.0)], "dense_1": [(1, 4.0), (2, 3.0)]}
    base = {"dense": [(1, 2.0), (2, 3.0)], "dense_1": [(1, 4.0), (2, 8.0)]}
    svg = ElementTree.fromstring(norms_svg(own, base, title="L2 norms", own="#7 seed 2",
                                           other="no regularization (#0)"))
    lines = [(x.attrib["stroke"], "stroke-dasharray" in x.attrib, x.attrib["points"])
             for x in svg.iter(f"{SVG}polyline")]
    # The y axis runs 0..8 over 260 px up from y=300, the x axis epochs 1..2 over 434 px
    # from x=56.
    assert lines == [
        ("#0072B2", True, "56.0,235.0 490.0,202.5"),
        ("#0072B2", False, "56.0,235.0 490.0,267.5"),
        ("#D55E00", True, "56.0,170.0 490.0,40.0"),
        ("#D55E00", False, "56.0,170.0 490.0,202.5"),
    ]
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert texts[0] == "L2 norms"
    assert {"dense", "dense_1", "#7 seed 2", "no regularization (#0)", "epoch"} <= set(texts)


def test_without_a_baseline_the_trial_is_drawn_alone_and_nothing_for_no_curves() -> None:
    svg = ElementTree.fromstring(norms_svg({"dense": [(1, 1.0), (2, 0.5)]}, None,
                                           title="t", own="#0: no regularization",
                                           other=None))
    assert ["stroke-dasharray" in x.attrib for x in svg.iter(f"{SVG}polyline")] == [False]
    assert norms_svg({}, None, title="t", own="#0", other=None) == ""
