"""The schedule report as the Dagster UI shows it: markdown tables and a PNG plot."""

from __future__ import annotations

import io

import pandas as pd

from event_pipeline.report.schedule import ScheduleReport

ROWS_SHOWN = 20  # per table; the counts say how many there are in all


def table(frame: pd.DataFrame, limit: int = ROWS_SHOWN) -> str:
    """A DataFrame as a markdown table (first ``limit`` rows), or a line saying it is empty."""
    if frame.empty:
        return "_none_"
    shown = frame.head(limit).astype(str)
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + " --- |" * len(shown.columns)]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in shown.itertuples(index=False)]
    if len(frame) > limit:
        lines.append(f"\n_first {limit} of {len(frame)}_")
    return "\n".join(lines)


def markdown(report: ScheduleReport) -> str:
    """The whole report as one markdown document."""
    sections = [
        ("Sessions per day", report.per_day),
        ("Sessions per room", report.per_room),
        ("Sessions per track", report.per_track),
        ("Speakers in two sessions at once", report.speaker_overlaps),
        ("Rooms booked twice at once", report.room_conflicts),
        ("Sessions outside the event's dates", report.outside_event),
        ("Sessions without speakers", report.without_speakers),
    ]
    parts = [f"# Schedule of {report.event_name}"]
    parts += [f"## {title} ({len(frame)})\n\n{table(frame)}" for title, frame in sections]
    return "\n\n".join(parts)


def plot_png(report: ScheduleReport) -> bytes:
    """A bar chart of sessions per day, as PNG bytes (matplotlib's Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3), dpi=100)
    try:
        if report.per_day.empty:
            axes.text(0.5, 0.5, "no timed sessions", ha="center", va="center")
        else:
            axes.bar(report.per_day["day"], report.per_day["sessions"], color="#4f6fa8")
            axes.tick_params(axis="x", labelrotation=45)
        axes.set_title(f"Sessions per day: {report.event_name}"[:70])
        axes.set_ylabel("sessions")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(figure)
