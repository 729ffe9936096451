"""The Dagster instance's ``dagster.yaml``: the project's copy installed in the home, and kept up to date."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path


def install_instance_config(template: Path, config: Path) -> None:
    """Copy the project's ``dagster.yaml`` into the home, and again when the project's changes.

    A copy this function wrote and nobody edited since is replaced by the new
    template (an upgrade brings its run queue settings along); one an operator
    edited is left alone, with a warning, since their settings win; a copy of another
    variant the project ships next to it (``dagster.postgres.yaml``) is left alone quietly. What was
    written last is remembered by its hash next to it.
    """
    wanted = template.read_bytes()
    stamp = config.with_name(".dagster.yaml.written-sha256")
    if config.exists():
        current = config.read_bytes()
        if current == wanted:
            return
        written = stamp.read_text().strip() if stamp.exists() else None
        if any(current == variant.read_bytes() for variant in template.parent.glob("dagster.*.yaml")):
            return  # the operator chose a variant the project ships (dagster.postgres.yaml): not an edit
        if written != hashlib.sha256(current).hexdigest():
            logging.getLogger("event_pipeline").warning(
                "%s differs from the project's %s and was edited; leaving it as it is", config, template
            )
            return
    config.write_bytes(wanted)
    stamp.write_text(hashlib.sha256(wanted).hexdigest() + "\n")
