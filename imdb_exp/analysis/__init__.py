"""What is made of finished runs: metrics, figures, predictions, seed summaries, comparisons, ensembles."""
