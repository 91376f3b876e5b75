"""The imdb-exp command: Hydra composes the config, then each job trains (train.py), continues a run
that was cut off, or counts one already done; signals and errors end the run and the sweep cleanly.

MLflow, the backends and the sweep's module are imported only once a job runs, so that --help and
--version answer at once.
"""

import functools
import logging
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from imdb_exp import errors
from imdb_exp.config import identity, schema
from imdb_exp.runtime import devices, paths, process
from imdb_exp.runtime.interrupts import Interrupted, Interrupts, signal_of
from imdb_exp.runtime.redaction import redact
from imdb_exp.sweeps import launchers
from imdb_exp.tracking import naming, record

HELP = """imdb-exp: train and compare IMDB sentiment classifiers (Keras 3), tracked in MLflow.
Usage: imdb-exp [GROUP=OPTION ...] [KEY=VALUE ...]      one run
       imdb-exp -m GROUP=A,B KEY=X,Y ...                 a sweep (one run per combination)
Results: mlflow ui --backend-store-uri {store}

== Groups (GROUP=OPTION) ==
{groups}

== The config{overridden} (KEY=VALUE sets any key) ==
{config}
Keys are documented in docs/configuration.md; IMDB_EXP_HOME moves the store and cache.
Hydra's own options: imdb-exp --hydra-help"""

log = logging.getLogger("imdb_exp")

# Groups that carry the schema or Hydra's own settings, not choices for a user.
INTERNAL_GROUPS = ("hydra", "model_schema")


def register_plugins() -> None:
    from hydra_plugins.imdb_exp_joblib.joblib_launcher import StoppableJoblibLauncher
    from hydra_plugins.imdb_exp_optuna.optuna_sweeper import OptunaSweeper

    schema.register()
    launchers.register()
    # Hydra finds plugins by listing the hydra_plugins namespace, which an editable install hides from it.
    Plugins.instance().register(OptunaSweeper)
    Plugins.instance().register(StoppableJoblibLauncher)


def print_help(overrides: list[str]) -> None:
    """The user's groups and the composed config as written (Hydra's --help lists the schema's
    internal groups too, and resolves nothing but still types a count as a float)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    schema.register()
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        try:
            config = compose("config", overrides)
        except HydraException as err:
            errors.refuse("imdb-exp", errors.hydra_in_one_line(err))
        loader = GlobalHydra.instance().config_loader()
        groups = [group for group in loader.list_groups("") if group not in INTERNAL_GROUPS]
        listed = "\n".join(f"{group}: {', '.join(sorted(loader.get_group_options(group)))}" for group in sorted(groups))
    overridden = f" with {' '.join(overrides)}" if overrides else ""
    store = redact(paths.resolve_uri(config.tracking.uri))
    print(HELP.format(store=store, groups=listed, overridden=overridden, config=OmegaConf.to_yaml(config)))


def run_tags(cfg: DictConfig) -> dict[str, str]:
    """The group choices and overrides of this Hydra job, its configuration's label, and its number when
    it is a sweep job."""
    job = HydraConfig.get()
    choices = job.runtime.choices
    tags = {group: choices.get(group, "") for group in record.CHOSEN_GROUPS}
    tags[record.OVERRIDES] = redact(" ".join(o for o in job.overrides.task if not identity.is_launch_only(o)))
    tags[record.CONFIG_GROUP] = configuration(cfg, choices)  # equal across seeds: what the UI's group-by gathers
    if job.mode == RunMode.MULTIRUN:
        tags[record.JOB] = str(job.job.num)
    return tags


def device_tag(cfg: DictConfig) -> dict[str, str]:
    """A parallel launcher's job takes one GPU of those visible, before its backend is imported; the tag
    names it. Jobs one after another in this process (the basic launcher) share what it sees."""
    job = HydraConfig.get()
    parallel = job.mode == RunMode.MULTIRUN and not job.launcher._target_.endswith("BasicLauncher")
    if not (parallel and cfg.trainer.one_device_per_job):
        return {}
    device = devices.one_per_process(Path(job.sweep.dir) / ".devices", job.job.num)
    return {} if device is None else {record.DEVICE: device}


def configuration(cfg: DictConfig, choices) -> str:
    """The label of what the job trains, against its presets composed alone (whatever order it was typed in)."""
    groups = {group: choices[group] for group in naming.LABEL_GROUPS if choices.get(group)}
    preset = composed_preset(choices.get("model"), tuple(sorted(groups.items())))
    return naming.configuration(OmegaConf.to_container(cfg, resolve=True), preset, choices.get("model"), groups)


@functools.cache
def composed_preset(model: str, groups: tuple[tuple[str, str], ...]) -> dict:
    """The config of a model option with a debug or experiment option, and nothing else set."""
    from hydra import compose

    overrides = [f"model={model}", *(f"+{g}={o}" if g == "experiment" else f"{g}={o}" for g, o in groups)]
    return OmegaConf.to_container(compose("config", overrides), resolve=True)


def run_job(cfg: DictConfig, tags: dict[str, str], interrupts: Interrupts) -> float | None:
    """resume=RUN_ID continues that run; a sweep job whose exact config already FINISHED in the store
    is counted as done, and one that was cut off is continued from its checkpoint (unless retrain)."""
    from imdb_exp.run import resume
    from imdb_exp.sweeps import multirun, stopping

    schema.validate(cfg)  # a value out of range is reported before the store is searched
    # Only joblib's workers: the one launcher whose sweep holds a signal for its running jobs (stopping.py).
    if record.JOB in tags and in_joblib_worker() and (why := stopping.why_not_started(cfg.tracking)):
        print(f"imdb-exp: not started: its sweep is stopping ({why})")
        return None
    run_id = None
    if cfg.resume:
        recorded = resume.recorded_config(cfg, list(HydraConfig.get().overrides.task))
        cfg, tags, run_id = recorded, resume.recorded_tags(cfg), cfg.resume
    elif cfg.tracking.parent_run_id and not cfg.retrain and (earlier := resume.earlier_run(cfg)):
        if earlier.finished:
            return multirun.count_done_job(cfg, tags, earlier.run)
        run_id = earlier.run.info.run_id
    process.use_backend(cfg.trainer.backend)  # before Keras's first import, which train.py's is
    from imdb_exp.run.train import train

    if run_id is None:
        return train(cfg, tags, interrupts)
    try:
        return train(cfg, tags, interrupts, run_id=run_id)
    except resume.StartOver as cut:  # its history stays as it was, in the run that ended FAILED
        log.warning("run %s cannot continue (%s); training the same config as a new run", run_id, cut)
        return train(cfg, tags | {record.STARTED_OVER_FROM: run_id}, interrupts)


@hydra.main(config_path="pkg://imdb_exp.conf", config_name="config", version_base="1.3")
def job(cfg: DictConfig) -> float | None:
    from imdb_exp.sweeps import multirun

    process.configure()  # also here: a launcher's worker process runs this function, not main()
    tags = run_tags(cfg) | device_tag(cfg)
    sweeping = record.JOB in tags
    interrupts = Interrupts()
    try:
        with interrupts.handled():
            return run_job(cfg, tags, interrupts)
    except KeyboardInterrupt as err:
        signum = signal_of(err)
        # The command's own handler (main's, which says so) or a scheduler's (submitit's requeue on
        # preemption) acts now; a run that was open has said it is KILLED and how to resume it.
        interrupts.pass_on(signum)
        print(f"imdb-exp: stopped by {signum.name}", file=sys.stderr)  # a launcher's worker has neither
        if sweeping and in_joblib_worker():
            return None  # an exit would make joblib kill the other workers, their runs not ended (stopping.py)
        sys.exit(128 + signum)
    except Exception as err:
        if isinstance(err, errors.UserError):
            print(f"imdb-exp: error: {err}", file=sys.stderr)
        if not sweeping:
            if isinstance(err, errors.UserError):
                sys.exit(2)
            raise  # a bug, outside a sweep: its traceback is what helps
        if not isinstance(err, errors.UserError):
            log.exception("sweep job failed")
        # The other jobs go on; the sweep's end reports the failures and exits non-zero.
        multirun.record_unstarted_job(cfg, tags, err)
    finally:
        if sweeping:  # wherever the job ran, its log goes with its run (the traceback of a failure too)
            multirun.attach_job_log(cfg, tags)
    return None


def in_joblib_worker() -> bool:
    from imdb_exp.sweeps import multirun

    # Outside Hydra (a job run by a test or a script) there is no launcher.
    launched = HydraConfig.initialized() and launchers.is_joblib(HydraConfig.get().launcher)
    return launched and not multirun.launched_here()


def check_group_choices(arguments: list[str]) -> None:
    """A config group's choice must be an option's name: Hydra reads `optimizer=0` as a number and
    fails with a traceback (a ValueError of its defaults list), null too, even for a group whose
    default is null (`~debug` removes a choice); said here in one line instead."""
    from importlib import resources

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep
    from hydra.errors import HydraException

    groups = {path.name for path in resources.files("imdb_exp.conf").iterdir() if path.is_dir()}
    parser = OverridesParser.create()
    for argument in (a for a in arguments if not a.startswith(("-", "~"))):  # ~group deletes a choice
        try:
            (override,) = parser.parse_overrides([argument])
        except HydraException:
            continue  # Hydra says what is wrong with its syntax, in one line
        value = override.value()
        choices = value.list if isinstance(value, ChoiceSweep) else [value]
        names = [name for choice in choices for name in (choice if isinstance(choice, list) else [choice])]
        if override.key_or_group in groups and any(isinstance(name, int | float | dict | None) for name in names):
            raise errors.ConfigError(f"{argument}: {override.key_or_group} takes the name of one of its options")


def check_composes(arguments: list[str]) -> None:
    """The config composed with the command's overrides, as Hydra will: an option that is none, a
    misspelt key or a value of the wrong type is one line here, where Hydra's report lists the options
    over lines and a search path. A sweep's values are left to its own check of each (sweeps/multirun.py);
    a command with Hydra's flags (-cn, --cfg, ...) to Hydra."""
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = [a for a in arguments if a not in ("-m", "--multirun")]
    if any(a.startswith("-") for a in overrides):
        return
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        with initialize_config_module("imdb_exp.conf", version_base="1.3"):
            compose("config", [o.input_line for o in parsed if not o.is_sweep_override()])
    except HydraException as err:
        raise errors.ConfigError(errors.hydra_in_one_line(err)) from None


def refuse_unless(check: Callable[[list[str]], None], arguments: list[str]) -> None:
    """Ends the command in one line, exit status 2, where ``check`` refuses the arguments."""
    try:
        check(arguments)
    except errors.UserError as err:
        errors.refuse("imdb-exp", str(err))


def main() -> None:
    """The imdb-exp command. Hydra runs `job` once, or once per sweep job; however the command ends
    (a job's signal, Hydra's error for a later job's config, a launcher's failure), a sweep's parent
    run ends with it, KILLED or FAILED, with the table of the jobs so far."""
    arguments = sys.argv[1:]
    if arguments == ["--version"]:
        print(f"imdb-exp {version('imdb-exp')}")
        return
    if "--help" in arguments or "-h" in arguments:
        print_help([a for a in arguments if a not in ("--help", "-h", "-m", "--multirun")])
        return
    refuse_unless(check_group_choices, arguments)  # before MLflow's import: at once
    process.configure()
    register_plugins()
    refuse_unless(check_composes, arguments)  # with the sweeper plugins known
    with Interrupts().handled():
        try:
            job()
        except BaseException as err:
            from imdb_exp.sweeps import multirun

            stopped_by = multirun.end_unfinished(err)
            if isinstance(stopped_by, Interrupted):  # between jobs, before the first one, or held by the sweep
                print(f"imdb-exp: stopped by {stopped_by.signal.name}", file=sys.stderr)
                sys.exit(128 + stopped_by.signal)
            raise
        finally:
            process.between_jobs.writer.wait()  # a run's records are never cut off by the command's exit
