"""A multirun's parent run, Optuna trials and their study's storage, and the launchers' defaults."""
