"""The Keras callbacks of every fit, as the config's `callbacks` group names them.

A node named after a built-in callback builds it with the node's keys as its options; a node with a
`_target_` (a class from outside the package) is built by Hydra. Names, not module paths, are what a
run records and what its identity is taken from (identity.py).
"""

from hydra.utils import instantiate

from imdb_exp.errors import ConfigError
from imdb_exp.training.guards import StopOnNonFiniteLoss
from imdb_exp.training.tensorboard_logs import TensorBoardLogs

BUILT_IN = {"stop_on_non_finite_loss": StopOnNonFiniteLoss, "tensorboard": TensorBoardLogs}


def built(nodes: dict[str, dict]) -> list:
    """The callbacks ``nodes`` name, in order; ConfigError for a name that is none of them."""
    callbacks = []
    for name, node in nodes.items():
        if "_target_" in node:
            callbacks.append(instantiate(node))
        elif name in BUILT_IN:
            callbacks.append(BUILT_IN[name](**node))
        else:
            raise ConfigError(
                f"callbacks.{name} is no built-in callback ({', '.join(BUILT_IN)}) and names no _target_ class"
            )
    return callbacks
