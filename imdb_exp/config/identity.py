"""What a run is, apart from how it was launched and where its code lives: the values its identity
(the config_hash tag, by which a re-launched sweep finds work already done) is a digest of.

Pluggable parts are named by their config-group name, never by a module path, so that moving a
module changes no run's identity. Runs recorded before that rule named the callbacks by their
classes' paths (`LEGACY_CALLBACK_TARGETS`); their hashes are still accepted, and their recorded
configs still resume.
"""

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

# Keys that say how a run was launched, not what it is: left out of a run's identity and of its
# `overrides` tag.
LAUNCH_ONLY = ("resume", "retrain", "trial", "tracking.parent_run_id")

# How the built-in callbacks were named until runs were identified by names alone.
LEGACY_CALLBACK_TARGETS = {
    "stop_on_non_finite_loss": "imdb_exp.guards.StopOnNonFiniteLoss",
    "tensorboard": "imdb_exp.tensorboard_logs.TensorBoardLogs",
}


def override_key(override: str) -> str:
    """The key a command-line override sets: ``+trainer.seed=1`` sets trainer.seed."""
    return override.split("=", 1)[0].lstrip("+~")


def is_launch_only(override: str) -> bool:
    key = override_key(override)
    return any(key == name or key.startswith(f"{name}.") for name in LAUNCH_ONLY)


def values(cfg: DictConfig) -> dict:
    """The resolved config less the keys in LAUNCH_ONLY."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in LAUNCH_ONLY:
        *parents, name = key.split(".")
        node = resolved
        for parent in parents:
            node = node[parent]
        node.pop(name, None)
    return resolved


def config_hash(cfg: DictConfig) -> str:
    return _digest(values(cfg))


def accepted_hashes(cfg: DictConfig) -> list[str]:
    """The run's hash, then the one it had before callbacks were named by their names (if it differs)."""
    current = values(cfg)
    legacy = current | {"callbacks": {name: _legacy_node(name, node) for name, node in current["callbacks"].items()}}
    return list(dict.fromkeys([_digest(current), _digest(legacy)]))


def callbacks_by_name(recorded: DictConfig) -> DictConfig:
    """A recorded config with its built-in callbacks named as they are now (a config recorded before
    the rule names their classes' old module paths, which moving a module would break)."""
    for name, node in recorded.get("callbacks", {}).items():
        if node.get("_target_") == LEGACY_CALLBACK_TARGETS.get(name):
            node.pop("_target_")
    return recorded


def _legacy_node(name: str, node: dict) -> dict:
    if name in LEGACY_CALLBACK_TARGETS and "_target_" not in node:
        return {"_target_": LEGACY_CALLBACK_TARGETS[name], **node}
    return node


def _digest(values: dict) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:20]
