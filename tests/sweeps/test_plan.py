"""What a sweep launches, read from its command line and its sweeper's params before any job."""

from omegaconf import OmegaConf

from imdb_exp.sweeps import plan


def sweep(command: list[str], params: dict[str, str], search: bool = False):
    sweeper = {"params": params} | ({"direction": "maximize", "n_trials": 6} if search else {})
    return OmegaConf.create({"hydra": {"overrides": {"task": command}, "sweeper": sweeper}})


def test_a_key_the_command_line_gives_one_value_is_not_swept_and_names_nothing():
    grid = sweep(["model.hidden_units=[16]"], {"model.hidden_units": "[16],[32]", "model.loss": "bce,mse"})
    assert plan.varied_keys(grid) == ["model.loss"] and plan.job_count(grid) == 2
    space = {"optimizer.learning_rate": "tag(log, interval(1e-4, 1e-2))", "model.dropout": "interval(0, 0.5)"}
    search = sweep(["optimizer.learning_rate=0.001", "trainer.batch_size=choice(128,512)"], space, search=True)
    assert plan.varied_keys(search) == ["trainer.batch_size", "model.dropout"]
