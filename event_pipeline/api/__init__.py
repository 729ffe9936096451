"""The HTTP import API: the reference server's upload-and-poll interface, as a thin layer over Dagster.

``app`` (routes), ``auth`` (tokens), ``uploads`` (streaming an upload into
the store), ``runs`` (submitting to Dagster, ownership), ``tasks`` (a run as
a task: state, progress, result), ``config`` (settings), ``serve``
(``make serve``: webserver, daemon and API together).
"""
