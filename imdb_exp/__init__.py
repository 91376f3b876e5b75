"""imdb-exp: config-driven IMDB sentiment experiments with Keras 3, Hydra and MLflow."""
