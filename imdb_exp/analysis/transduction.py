"""Runs that learned from the test reviews' text (tagged transductive: data.unlabeled with test) next to
runs that did not: their test metrics measure different things, so whatever puts them side by side
(compare, ensemble, a sweep's summary) says so. The test labels were never seen by either; the
transductive run has merely had the chance to fit its features to the very reviews it is tested on."""

from mlflow.entities import Run

from imdb_exp.tracking import record

LEARNED_FROM_TEST = "learned from the test reviews' text (transductive)"


def mixing_warning(runs: list[Run], names: list[str]) -> str | None:
    """A line saying which of ``runs`` (named ``names``) are transductive, where some are and some are not."""
    transductive = [name for run, name in zip(runs, names, strict=True) if record.transductive(run)]
    if not transductive or len(transductive) == len(runs):
        return None
    return (
        f"{' and '.join(transductive)} {LEARNED_FROM_TEST} and the others did not: "
        "their test metrics are not comparable"
    )
