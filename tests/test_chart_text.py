"""Measured text widths, which every chart lays out its margins from (audit_lib.chart_text).

Reference: the width matplotlib itself gives the drawn text (``Text.get_window_extent`` on the
Agg renderer the report's PNGs are drawn with). A measured width must never be short of it
(a label would run into the plot or off the figure) and not much over (wasted margin).
"""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from audit_lib import chart_text  # noqa: E402

TEXTS = ["First contact resolution", "Average handle time / Team handle time", "Résolution — délai (%)",
         "WWWWW iiiii", "Kundenzufriedenheit 2026", "a", "Two\nlines, the second longer"]


def _drawn(text: str, size: float, weight: str) -> float:
    fig = plt.figure(figsize=(8, 2))
    try:
        t = fig.text(0, 0.5, text, fontsize=size, weight=weight)
        return t.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    finally:
        plt.close(fig)


@pytest.mark.parametrize("weight", ["normal", "bold"])
@pytest.mark.parametrize("size", [8, 9, 10])
def test_measured_width_covers_the_drawn_text_and_little_more(size, weight):
    for text in TEXTS:
        drawn = _drawn(text, size, weight)
        measured = chart_text.text_width(text, size, weight)
        assert drawn - 1e-9 <= measured <= 1.03 * drawn + 1e-9, (text, size, weight, measured / drawn)


def test_a_character_outside_the_font_is_laid_out_in_full():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # matplotlib warns that the glyph is missing
        drawn = _drawn("Ωmega ✓ 顧客", 10, "normal")
        assert chart_text.text_width("Ωmega ✓ 顧客", 10) >= drawn - 1e-9


def test_widest_and_cut():
    labels = ["AHT", "First contact resolution", "FCR"]
    assert chart_text.widest(labels, 10) == chart_text.text_width("First contact resolution", 10)
    assert chart_text.widest([], 10) == 0.0
    bold = chart_text.cut("First contact resolution (agent-coded)", 1.5, 9, "bold")
    assert bold.endswith("…") and chart_text.text_width(bold, 9, "bold") <= 1.5
    # the longest cut that fits: one more character would not
    longer = "First contact resolution (agent-coded)"[:len(bold)].rstrip() + "…"
    assert chart_text.text_width(longer, 9, "bold") > 1.5
    assert chart_text.cut("AHT", 1.5, 9, "bold") == "AHT"
