"""imdb-exp's Hydra sweeper for Optuna >= 4 (hydra/sweeper=optuna); Hydra finds it in hydra_plugins."""
