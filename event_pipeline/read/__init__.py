"""Stage 1, read: an archive's bytes to one normalised shape per model, every problem found before any write."""
