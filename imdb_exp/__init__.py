"""imdb-exp: config-driven IMDB sentiment experiments with Keras 3, Hydra and MLflow.

The package is built in floors, each a sub-package that imports only from those below it (the
import contract in pyproject.toml): errors, runtime, config, data, tracking, models, training,
serving, analysis, sweeps, run, cli.
"""
