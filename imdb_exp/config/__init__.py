"""The run's typed config (schema) and its identity: what every key may hold, and what a run is."""
