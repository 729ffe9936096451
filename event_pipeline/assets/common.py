"""What every import asset shares: the partitions, the group, failure recording."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
from sqlalchemy.engine import Engine

from event_pipeline.problems import ImportFailed, Problem
from event_pipeline.publish import import_log, result
from event_pipeline.redact import mask

GROUP = "event_import"

# Run tags: the archive key (the queued run coordinator allows one run per
# value), and where an in-process run executes, to tell a killed one.
KEY_TAG = "event_pipeline/key"
HOST_TAG = "event_pipeline/host"
PID_TAG = "event_pipeline/pid"

# One partition per archive key (the file name without .zip), so every
# archive has its own history in the UI.
ARCHIVES = dg.DynamicPartitionsDefinition(name="archives")


@contextlib.contextmanager
def recording_failure(engine: Engine, key: str, run_id: str) -> Iterator[None]:
    """Turn any exception into a FAILURE row in ``import_jobs`` and a clean Dagster failure."""
    try:
        yield
    except dg.Failure:
        raise  # already recorded where it was raised
    except ImportFailed as exc:
        import_log.record_failure(
            engine, key=key, run_id=run_id, error=str(exc), errors=exc.errors, warnings=exc.warnings
        )
        raise failure(exc.errors, exc.warnings) from exc
    except Exception as exc:
        problem = Problem(None, None, None, mask(f"{type(exc).__name__}: {_one_line(exc)}"))
        with contextlib.suppress(Exception):  # the database may be what failed
            import_log.record_failure(engine, key=key, run_id=run_id, error=str(problem), errors=[problem], warnings=[])
        raise


def failure(errors: list[Problem], warnings: list[Problem]) -> dg.Failure:
    exc = ImportFailed(errors, warnings)
    listed = result.listed(errors, warnings)  # bounded: the run's event log is no place for a million problems
    return dg.Failure(
        description=str(exc),
        metadata={name: _metadata(value) for name, value in listed.items()},
        allow_retries=False,
    )


def _metadata(value: object) -> dg.MetadataValue:
    if isinstance(value, (list, dict)):
        return dg.MetadataValue.json(value)
    return dg.MetadataValue.int(value) if isinstance(value, int) else dg.MetadataValue.text(str(value))


def _one_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
