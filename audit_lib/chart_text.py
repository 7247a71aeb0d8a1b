"""Chart text and layout shared by the lens charts: escaping, measured widths, margins.

The charts lay themselves out from measured text instead of ``fig.tight_layout()``, which
draws a figure's every tick label and title to find their extents (0.3-1.4 s for a
multi-panel figure on the 2-core benchmark machine). Text is measured from the font's
character advances, once per character, and client text that does not fit is wrapped or cut
with an ellipsis, so it can neither squeeze a plot nor run off the figure.
"""
from __future__ import annotations

import functools

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.font_manager import FontProperties, findfont, get_font
from matplotlib.ticker import FixedLocator

__all__ = ["LINE", "STEPS", "TICK", "adjust", "cut", "fit", "inner_ticks", "legend_columns", "plain",
           "text_width", "tick_width", "widest"]

LINE = 1.25 / 72        # inches per point of font size, one line of text with its leading
TICK = 0.13             # tick length, pad and a little air, inches
STEPS = [1, 2, 2.5, 5, 10]   # round tick steps (MaxNLocator would also use 1.5, 3, 4, 6, 8)


def plain(text) -> str:
    r"""Text for a matplotlib label, shown as written: a ``$`` is escaped so mathtext never
    interprets client text (a backslash outside mathtext is drawn as it is).

    >>> plain("cost $5 and $6")
    'cost \\$5 and \\$6'
    """
    return str(text).replace("$", r"\$")


@functools.lru_cache(maxsize=1024)
def _line_width(line: str, size: float, weight: str, dpi: float, fonts: tuple) -> float:
    from matplotlib.backends.backend_agg import RendererAgg
    prop = FontProperties(size=size, weight=weight)
    return RendererAgg(1, 1, dpi).get_text_width_height_descent(line, prop, False)[0] / dpi


_ADVANCES: dict = {}


def text_width(text, size: float, weight: str | None = None) -> float:
    """Width in inches of the widest line of ``text`` (plain, as drawn) at ``size`` points and
    ``weight`` (default: the rc font weight), at the figure resolution.

    Summed from each character's (hinted) advance, measured once per character: laying out a
    whole line costs about a millisecond, and so many labels are measured that it shows. The
    sum leaves out kerning, so it is never short of the drawn width (at most about 1 % over).
    A line with a character the font lacks (drawn from a fallback font) is laid out in full.
    """
    from matplotlib.backends.backend_agg import get_hinting_flag
    rc = plt.rcParams
    dpi = rc["figure.dpi"]
    weight = weight or rc["font.weight"]
    fonts = (tuple(rc["font.family"]), tuple(rc["font.sans-serif"]), rc["text.hinting"])
    key = (size, dpi, weight, fonts)
    if key not in _ADVANCES:
        font = get_font(findfont(FontProperties(size=size, weight=weight)))
        _ADVANCES[key] = (font, set(font.get_charmap()), {})
    font, charmap, advances = _ADVANCES[key]
    longest = 0.0
    for line in str(text).split("\n"):
        if not all(ord(c) in charmap for c in line):
            longest = max(longest, _line_width(line, size, weight, dpi, fonts))
            continue
        width = 0.0
        for c in line:
            if c not in advances:
                font.set_size(size, dpi)          # the font object is matplotlib's own, shared: size it each time
                advances[c] = font.load_char(ord(c), flags=get_hinting_flag()).horiAdvance / 64 / dpi
            width += advances[c]
        longest = max(longest, width)
    return longest


def widest(labels, size: float, weight: str | None = None) -> float:
    """Width in inches of the widest of ``labels`` (see :func:`text_width`); 0 without labels."""
    return max((text_width(t, size, weight) for t in {str(t) for t in labels}), default=0.0)


def cut(text, width: float, size: float, weight: str | None = None) -> str:
    """``text`` cut with an ellipsis to fit ``width`` inches."""
    text = str(text)
    if text_width(text, size, weight) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid].rstrip() + "…", size, weight) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def fit(text, width: float, size: float, lines: int = 2) -> str:
    """Caller text wrapped at spaces to ``width`` inches, at most ``lines`` lines (the rest cut
    with an ellipsis). Returns plain text: escape it with :func:`plain` before drawing."""
    text = " ".join(str(text).split())
    if text_width(text, size) <= width:
        return text
    out, current = [], ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and text_width(candidate, size) > width:
            out.append(current)
            current = word
        else:
            current = candidate
    out.append(current)
    if len(out) > lines:
        out = out[:lines - 1] + [" ".join(out[lines - 1:])]
    return "\n".join(cut(line, width, size) for line in out)


def tick_width(axis, size: float) -> float:
    """Width in inches of the widest tick label ``axis`` will draw (its limits as they stand)."""
    lo, hi = sorted(axis.get_view_interval())
    eps = 1e-9 * (hi - lo)
    ticks = [t for t in axis.get_major_locator()() if lo - eps <= t <= hi + eps]
    return max((text_width(t, size) for t in axis.get_major_formatter().format_ticks(ticks)), default=0.0)


def inner_ticks(axis, locator):
    """Fix ``axis``'s ticks to those ``locator`` places inside the limits as they stand now (a
    locator also returns ticks just outside them, and every tick is an object to build)."""
    locator.set_axis(axis)
    lo, hi = sorted(axis.get_view_interval())
    eps = 1e-9 * (hi - lo)
    t = np.asarray(locator(), float)
    inside = t[(t >= lo - eps) & (t <= hi + eps)]
    axis.set_major_locator(FixedLocator(inside) if len(inside) else locator)
    return locator


def legend_columns(labels, size: float, width: float) -> int:
    """How many legend columns fit in ``width`` inches (entries are laid out row by row)."""
    entries = [text_width(t, size) + 0.55 for t in labels]    # handle, its gap and the space between columns
    for n in range(len(entries), 1, -1):
        if sum(max(entries[j::n]) for j in range(n)) <= width:
            return n
    return 1


def adjust(fig, left: float, right: float, bottom: float, top: float, hgap: float = 0.0,
            wgap: float = 0.0, nrows: int = 1, ncols: int = 1):
    """Place the subplot grid with margins and gaps given in inches."""
    w, h = fig.get_size_inches()
    aw = (w - left - right - (ncols - 1) * wgap) / ncols
    ah = (h - top - bottom - (nrows - 1) * hgap) / nrows
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        hspace=hgap / ah if nrows > 1 else 0, wspace=wgap / aw if ncols > 1 else 0)
