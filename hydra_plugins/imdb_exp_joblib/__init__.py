"""imdb-exp's joblib launcher (hydra/launcher=joblib): Hydra's, stopped cleanly by a held SIGINT."""
