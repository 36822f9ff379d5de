"""The postmortem's chart: one panel per key metric over the incident window, step boundaries marked.

Owns the drawing (matplotlib, Agg backend, imported only when a chart is drawn so the rest of the console
works without it) and nothing else: series come from `console.prometheus_range`, boundaries from the
incident's status.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tradesense_operator.console.prometheus_range import PanelData


class ChartUnavailable(Exception):
    """matplotlib is not installed (pip install 'tradesense-operator[console]')."""


@dataclass(frozen=True)
class Boundary:
    """A vertical marker: a step starting or finishing."""

    at: datetime
    label: str


def render_png(panels: Sequence[PanelData], *, window: tuple[datetime, datetime],
               view_range: tuple[datetime, datetime], boundaries: Sequence[Boundary], title: str) -> bytes:
    """A PNG: the incident window shaded, `view_range` (window plus margins) on the x axis."""
    try:
        import matplotlib as mpl  # noqa: PLC0415  # optional dependency, only needed for charts
        mpl.use("Agg")
        import matplotlib.dates as mdates  # noqa: PLC0415
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise ChartUnavailable(f"matplotlib cannot be imported ({exc}): pip install 'tradesense-operator[console]'") from exc
    figure, axes = plt.subplots(len(panels), 1, figsize=(11, 2.1 * len(panels) + 0.8), sharex=True, squeeze=False)
    try:
        for ax, data in zip(axes[:, 0], panels, strict=True):
            ax.axvspan(window[0], window[1], color="#fde9c9", alpha=0.6, zorder=0)
            for boundary in boundaries:
                ax.axvline(boundary.at, color="#777", linewidth=0.8, linestyle="--", zorder=1)
            plotted = False
            for name, points in sorted(data.series.items()):
                if points:
                    ax.plot([datetime.fromtimestamp(ts, UTC) for ts, _ in points], [v for _, v in points],
                            label=name or None, linewidth=1.4, zorder=2)
                    plotted = True
            if not plotted:
                ax.text(0.5, 0.5, data.error or "no data", transform=ax.transAxes, ha="center", va="center",
                        color="#a00" if data.error else "#777", fontsize=9)
            if plotted and any(data.series):
                ax.legend(loc="upper right", fontsize=7)
            ax.set_ylabel(data.panel.unit, fontsize=8)
            ax.set_title(data.panel.title, fontsize=9, loc="left")
            ax.grid(alpha=0.3)
        top = axes[0, 0]
        for boundary in boundaries:
            top.annotate(boundary.label, xy=(boundary.at, 1.0), xycoords=("data", "axes fraction"),
                         rotation=60, fontsize=6, ha="left", va="bottom", color="#444")
        bottom = axes[-1, 0]
        bottom.set_xlim(view_range[0], view_range[1])
        bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
        bottom.set_xlabel("UTC", fontsize=8)
        figure.suptitle(title, fontsize=11, x=0.01, ha="left")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()
    finally:
        plt.close(figure)
