"""imdb-exp-ensemble ID...: runs combined by greedy ensemble selection on their validation predictions
(analysis/ensemble.py says how), logged as a run of its own with a servable model."""

import sys

import numpy as np

from imdb_exp.analysis import ensemble
from imdb_exp.analysis.transduction import mixing_warning
from imdb_exp.cli import preamble

PROG = "imdb-exp-ensemble"


def main(argv: list[str] | None = None) -> None:
    parser = preamble.parser(PROG, __doc__.splitlines()[0])
    parser.add_argument(
        "ids", nargs="+", help="run ids, or a sweep's parent run id (its FINISHED jobs but pruned trials)"
    )
    parser.add_argument(
        "--metric", choices=ensemble.METRICS, default="accuracy", help="what each round maximises on validation"
    )
    args = parser.parse_args(argv)
    client = preamble.open_store(PROG, args)
    with preamble.errors_in_one_line(PROG, client):
        found = ensemble.candidates(client, args.ids)
    if warning := mixing_warning(found.runs, found.names):
        print(f"{PROG}: warning: {warning}; the ensemble is tagged transductive", file=sys.stderr)
    val = [predicted.val for predicted in found.predicted]
    counts, p_value = ensemble.beyond_chance(val, ensemble.select(val, metric=args.metric))
    weights = counts / counts.sum()
    run = ensemble.log_ensemble(client, found.runs, found.predicted, weights, args.metric, p_value, found.sweep)
    for name, weight, member in zip(found.names, weights, found.predicted, strict=True):
        print(f"{weight:.2f}  {name}: validation accuracy {np.mean(member.val.correct()):.4f}")
    metrics = run.data.metrics
    kept_what = "its selection" if np.count_nonzero(weights) > 1 else "the best member alone"
    print(f"against the best member on validation: McNemar p = {p_value:.3g}; the ensemble is {kept_what}")
    print(
        f"{PROG}: run {run.info.run_id}: validation accuracy {metrics['final_val_accuracy']:.4f}, "
        f"test accuracy {metrics['test_accuracy']:.4f}"
    )
