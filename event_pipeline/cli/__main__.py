"""``python -m event_pipeline.cli``: the console script."""

from event_pipeline.cli import run

run()
