"""Which MLflow store, a run's lifecycle and lineage, and the record contract: every tag and artifact path."""
