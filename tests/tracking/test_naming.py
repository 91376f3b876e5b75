"""Names a person reads in the MLflow UI: jobs told apart, sweeps named by what they vary, configurations
labelled by what they train."""

from omegaconf import OmegaConf

from imdb_exp.tracking import naming, record


def test_a_job_is_named_by_its_values_of_the_keys_its_sweep_varies_rounded_for_reading():
    assert naming.job_name(["trainer.seed", "optimizer"], {"optimizer": "adam", "trainer.seed": "2"}) == "adam seed=2"
    varies = ["optimizer.learning_rate", "model.dropout"]
    overrides = {"optimizer.learning_rate": "0.0022232859607302508", "model.dropout": "0.3512", "trainer.epochs": "2"}
    assert naming.job_name(varies, overrides, trial=3) == "trial 3 lr=0.0022 dropout=0.35"
    assert naming.job_name(["experiment"], {"experiment": "lstm_plain"}) == "lstm_plain"
    assert (
        naming.readable("512") == "512"
        and naming.readable("1e-05") == "1e-05"
        and naming.readable("[16,16]") == "[16,16]"
    )


def test_a_run_of_its_own_keeps_its_model_and_optimizer_and_a_sweep_job_its_values(compose_cfg):
    tags = {record.MODEL: "lstm", record.OPTIMIZER: "adam", record.OVERRIDES: "model=lstm trainer.seed=4 +debug=tiny"}
    assert naming.run_name(tags, compose_cfg("model=lstm")) == "lstm-adam"
    job = compose_cfg("model=lstm", "tracking.sweep_varies=[trainer.seed]")
    assert naming.run_name(tags, job) == "seed=4"
    assert naming.ended_name("seed=4", "failed") == "seed=4 (failed)"
    # A trial's long name is cut in the UI's run list: its outcome goes right after its number.
    assert naming.ended_name("trial 13 lr=0.0022 units=[64]", "pruned") == "trial 13 (pruned) lr=0.0022 units=[64]"
    assert naming.ended_name("trial 1", "failed") == "trial 1 (failed)"


def test_a_sweep_is_named_by_the_keys_it_varies_sorted_and_never_longer_than_60_characters():
    assert naming.sweep_name(["trainer.seed", "optimizer"], 6, search=False) == "sweep optimizer x seed, 6 jobs"
    space = ["optimizer.learning_rate", "model.hidden_units", "model.dropout", "trainer.batch_size"]
    assert naming.sweep_name(space, 6, search=True) == "search batch x dropout x lr x units, 6 trials"
    many = [f"model.setting_number_{i}" for i in range(12)]
    name = naming.sweep_name(many, 4096, search=False)
    assert len(name) <= 60 and name.endswith("more, 4096 jobs") and "/" not in name


def test_a_configuration_is_labelled_by_its_model_optimizer_and_what_differs_from_its_presets(compose_cfg):
    preset = OmegaConf.to_container(compose_cfg("model=dense", "debug=tiny"), resolve=True)

    def label(*overrides: str) -> str:
        values = OmegaConf.to_container(compose_cfg("model=dense", "debug=tiny", *overrides), resolve=True)
        return naming.configuration(values, preset, "dense", {"debug": "tiny"})

    typed = label("optimizer=adam", "trainer.epochs=2", "trainer.seed=3", "data.archive=/data/a.tar.gz")
    assert typed == "dense adam debug=tiny epochs=2"  # no seed, no path
    assert label("trainer.epochs=2", "optimizer=adam", "tracking.misclassified_reviews=5", "data.fold=0") == typed
    assert label("optimizer.learning_rate=0.0022232859607302508") == "dense rmsprop debug=tiny lr=0.00222329"
    assert label("optimizer.learning_rate=0.001") == label()  # a default typed out is the default
