"""What the study figures draw where a value cannot sit on the axis: off-scale ratios of the
attention_error panel, and shoot-out intervals that reach 0 on a log axis. Synthetic rows, no draws."""

from __future__ import annotations

import matplotlib.pyplot as plt

from studies.figures import attention_error as attention_error_figures
from studies.figures import estimator_shootout as shootout_figures

from .test_captions import _attention_rows


def test_the_ratio_panel_names_every_off_scale_point_under_its_axis():
    """Ratios outside the panel's range are drawn as open triangles at its edge; their values are
    listed under the x label, grouped by row and regime, none left out."""
    rows = _attention_rows(lambda m: {16: 5325.33, 64: 2.27}.get(m, 1.0))
    rows[2]["mc_over_delta"] = 0.1  # positive-iid, isotropic, m = 256: below the range
    fig, ax = plt.subplots()
    attention_error_figures._ratio_panel(ax, rows, {"positive": "C0", "trig": "C1"})
    label = ax.get_xlabel()
    plt.close(fig)
    off_scale = [r for r in rows if r["estimator"].endswith("iid") and not 0.3 <= r["mc_over_delta"] <= 2.0]
    assert len(off_scale) == 9
    for r in off_scale:
        group = f"off scale (open triangles), {r['estimator']}, {r['regime']}:"
        assert group in label and f"m = {r['m']}: {r['mc_over_delta']:.2f}" in label.split(group)[1]
    assert label.count("off scale") == 4


def test_the_attention_panel_marks_an_interval_that_reaches_zero_at_its_left_edge():
    """A normal 99% interval whose lower end is ≤ 0 has no place on a log axis: it is drawn to the
    panel's left edge, marked there and named in the legend; the edge lies below every value and
    every positive lower end, so no other interval is cut."""
    values = {"positive-iid": (0.1, 0.01), "trig-ort": (0.02, 0.005), "gerf-trig-iid": (0.34, 0.47)}
    rows = [
        {"kind": "attention", "estimator": name, "value": value, "ci99": ci, "m": 8, "d": 4}
        for name, (value, ci) in values.items()
    ]
    fig, ax = plt.subplots()
    shootout_figures._attention_panel(ax, rows)
    left = ax.get_xlim()[0]
    title = ax.get_legend().get_title().get_text()
    edge_markers = [line for line in ax.get_lines() if line.get_marker() == "<"]
    plt.close(fig)
    assert 0 < left < 0.02 - 0.005
    assert "the 99% interval reaches 0 (gerf-trig-iid)" in title
    assert len(edge_markers) == 1 and edge_markers[0].get_xdata()[0] >= left
