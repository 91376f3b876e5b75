"""The checks a config node runs on its values, each ending in one ConfigError that names the key."""

from imdb_exp.errors import ConfigError


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value.startswith("${"):
        return  # an interpolation (trainer.backend's default), checked once `validate` has resolved it
    require(value in allowed, f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}")


def dropout_rate(key: str, value: float) -> None:
    require(0.0 <= value < 1.0, f"{key}={value} must be in [0, 1)")
