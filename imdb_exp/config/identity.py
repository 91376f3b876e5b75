"""What a run is, apart from how it was launched and where its code lives: the values its identity
(the config_hash tag, by which a re-launched sweep finds work already done) is a digest of.

Pluggable parts are named by their config-group name, never by a module path, so that moving a
module changes no run's identity. Each built-in callback's name stands in the digest for a frozen
token (`HASHED_AS`): the text its node held when runs were first hashed, a class path of that time,
so that every hash recorded since is still the hash of the same config; it names no module that
code now lives in. Configs recorded then (with those paths in them) still resume.
"""

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

# Keys that say how a run was launched, not what it is: left out of a run's identity and of its
# `overrides` tag.
LAUNCH_ONLY = (
    "resume",
    "retrain",
    "trial",
    "tracking.parent_run_id",
    "tracking.sweep_varies",
    "trainer.one_device_per_job",
)

# Keys added after runs were first hashed -> their default: left out at that value, so that every
# hash recorded before them is still the hash of the same run.
ADDED_LATER = {"data.unlabeled": []}

# A built-in callback's name -> the token its node stands for in the digest; frozen, never a live path.
HASHED_AS = {
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
    """The resolved config less the keys in LAUNCH_ONLY, and those of ADDED_LATER at their default."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for key in LAUNCH_ONLY + tuple(ADDED_LATER):
        *parents, name = key.split(".")
        node = resolved
        for parent in parents:
            node = node[parent]
        if key in LAUNCH_ONLY or node.get(name) == ADDED_LATER[key]:
            node.pop(name, None)
    return resolved


def config_hash(cfg: DictConfig) -> str:
    identified = values(cfg)
    identified["callbacks"] = {name: _hashed(name, node) for name, node in identified.get("callbacks", {}).items()}
    return hashlib.sha256(json.dumps(identified, sort_keys=True).encode()).hexdigest()[:20]


def callbacks_by_name(recorded: DictConfig) -> DictConfig:
    """A recorded config with its built-in callbacks named as they are now: one recorded before the rule
    names their classes' module paths of that time, which moving a module would break."""
    for name, node in recorded.get("callbacks", {}).items():
        if node.get("_target_") == HASHED_AS.get(name):
            node.pop("_target_")
    return recorded


def _hashed(name: str, node: dict) -> dict:
    if name in HASHED_AS and "_target_" not in node:
        return {"_target_": HASHED_AS[name], **node}
    return node
