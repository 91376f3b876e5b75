"""A launcher's settings as the shipped config composes them."""

from hydra import compose, initialize_config_module


def launcher(*overrides: str):
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True).hydra.launcher
