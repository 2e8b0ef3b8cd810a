"""Training parts: the EMA target callback, AdamW with the paper's schedules, health monitoring
and data-parallel set-up."""
