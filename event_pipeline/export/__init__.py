"""Export an imported event back to an Open Event zip (``event-pipeline export``, the ``export`` asset).

``dialects.py`` (kebab, snake; which names), ``source.py`` (the archive's own
shape), ``values.py`` (ids, instants, value types), ``documents.py``
(envelopes, streamed JSON), ``media.py`` (stored objects back into the zip),
``rows.py`` (the event's rows in chunks), ``writer.py`` (the deterministic zip).
"""

from event_pipeline.export.dialects import DIALECTS
from event_pipeline.export.rows import ExportError
from event_pipeline.export.writer import export_event

__all__ = ["DIALECTS", "ExportError", "export_event"]
