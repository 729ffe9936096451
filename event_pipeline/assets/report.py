"""The ``schedule_report`` asset: per archive, the imported schedule analysed with pandas.

It reads the committed tables (not the import's outputs), so it can be
materialized for any imported partition at any time; its checks warn, and
never fail, when the schedule has conflicts: they are the organiser's to fix.
"""

import base64
from typing import TYPE_CHECKING

import dagster as dg
import sqlalchemy as sa

from event_pipeline import settings
from event_pipeline.assets.common import ARCHIVES
from event_pipeline.assets.result import import_result
from event_pipeline.model.schema import events
from event_pipeline.resources import DatabaseResource

if TYPE_CHECKING:
    from event_pipeline.report.schedule import ScheduleReport
# The report modules (pandas, matplotlib) are imported when the report runs: pandas alone took ~0.45 s of
# every CLI import's start-up, which loads these definitions but never runs the report (BENCHMARKS.md).

REPORTS_GROUP = "reports"
_CHECKS = {
    "no_room_double_booking": ("room_conflicts", "rooms booked twice at once"),
    "no_speaker_overlaps": ("speaker_overlaps", "speakers in two sessions at once"),
}


def _check_results(report: "ScheduleReport") -> list[dg.AssetCheckResult]:
    from event_pipeline.report.render import table

    results = []
    for name, (attribute, what) in _CHECKS.items():
        frame = getattr(report, attribute)
        results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=frame.empty,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"{len(frame)} {what}",
                metadata={"count": len(frame), "first": dg.MetadataValue.md(table(frame, 10))},
            )
        )
    return results


@dg.asset(
    name="schedule_report",
    partitions_def=ARCHIVES,
    group_name=REPORTS_GROUP,
    deps=[import_result],
    kinds={"pandas", "python"},
    check_specs=[dg.AssetCheckSpec(name, asset="schedule_report") for name in _CHECKS],
)
def schedule_report_asset(context: dg.AssetExecutionContext, database: DatabaseResource) -> dg.MaterializeResult:
    """The imported event's schedule: sessions per day, room and track; speakers in two sessions at once,
    rooms booked twice, sessions outside the event's dates or without speakers (pandas over the tables)."""
    from event_pipeline.report.render import markdown, plot_png
    from event_pipeline.report.schedule import schedule_report

    key = context.partition_key
    with database.engine().connect() as conn:
        event_id = conn.execute(sa.select(events.c.id).where(events.c.import_key == key)).scalar_one_or_none()
        if event_id is None:
            raise dg.Failure(f"archive {key!r} has not been imported yet: materialize import_result first")
        report = schedule_report(conn, event_id)
    png = plot_png(report)
    folder = settings.data_dir() / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.png"
    path.write_bytes(png)
    image = f"![sessions per day](data:image/png;base64,{base64.b64encode(png).decode()})"
    return dg.MaterializeResult(
        metadata={
            "event_id": event_id,
            "report": dg.MetadataValue.md(markdown(report)),
            "plot": dg.MetadataValue.md(image),
            "plot_path": dg.MetadataValue.path(str(path)),
            "sessions": int(report.per_day["sessions"].sum()),
            **{name: dg.MetadataValue.int(count) for name, count in report.conflicts.items()},
        },
        check_results=_check_results(report),
    )
