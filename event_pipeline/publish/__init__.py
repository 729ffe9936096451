"""Stage 3, publish: the plans written in one transaction, the import log, the result."""
