"""The Open Event models, described once (the catalog), and what is generated from them: records, tables."""
