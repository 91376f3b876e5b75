"""imdb-exp-compare RUN_A RUN_B: whether two runs' test accuracies differ beyond chance (analysis/compare.py)."""

import sys

from imdb_exp.analysis import predictions
from imdb_exp.analysis.compare import compare, report
from imdb_exp.analysis.transduction import mixing_warning
from imdb_exp.cli import preamble

PROG = "imdb-exp-compare"


def main(argv: list[str] | None = None) -> None:
    parser = preamble.parser(PROG, __doc__.splitlines()[0])
    parser.add_argument("run_a", help="an MLflow run id")
    parser.add_argument("run_b", help="another run id, tested on the same reviews")
    args = parser.parse_args(argv)
    if args.run_a == args.run_b:
        parser.error(f"run_a and run_b are the same run ({args.run_a}): give two runs to compare")
    client = preamble.open_store(PROG, args)
    with preamble.errors_in_one_line(PROG, client):
        runs = [client.get_run(run_id) for run_id in (args.run_a, args.run_b)]
        comparison = compare(*(predictions.of_run(client, run.info.run_id) for run in runs))
    names = [f"{run.info.run_id} ({run.info.run_name})" for run in runs]
    if warning := mixing_warning(runs, names):
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    print(report(comparison, *names))
