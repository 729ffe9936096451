"""Stage 2, plan: the id map and the inserts, updates and deletes of each model, against the database."""
