"""imdb-exp-predict: reviews classified by a model imdb-exp logged; a label and probability per review."""

import sys
from pathlib import Path

import mlflow
import pandas as pd

from imdb_exp.cli import preamble
from imdb_exp.errors import UserError, first_line
from imdb_exp.serving.classifier import COLUMN
from imdb_exp.tracking import naming, record

PROG = "imdb-exp-predict"


def main(argv: list[str] | None = None) -> None:
    parser = preamble.parser(PROG, "Classify reviews with a model logged by imdb-exp; prints label and probability.")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id", help="the MLflow run whose model to use")
    which.add_argument("--model", help="a model URI: models:/NAME@ALIAS, models:/NAME/VERSION, models:/MODEL_ID")
    parser.add_argument("--file", type=Path, help="a file with one review per line")
    parser.add_argument("reviews", nargs="*", help="review texts; none or '-' reads stdin, one per line")
    args = parser.parse_args(argv)
    if args.file:
        try:
            texts = args.file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            parser.error(f"--file {args.file}: {getattr(err, 'strerror', None) or first_line(err)}")
    elif args.reviews and args.reviews != ["-"]:
        texts = args.reviews
    else:
        texts = sys.stdin.read().splitlines()
    empty = [number for number, text in enumerate(texts, 1) if not text.strip()]
    texts = [text for text in texts if text.strip()]
    one, numbers = len(empty) == 1, ", ".join(map(str, empty))
    if not texts:
        given = f"the {naming.counted(len(empty), 'review')} given {'is' if one else 'are'} empty; " if empty else ""
        parser.error(f"no reviews: {given}give them as arguments, with --file, or one per line on stdin")
    if empty:  # one output line a review: a script pairing them with its input lines is told which went
        said = f"review {numbers} is" if one else f"reviews {numbers} are"
        print(f"{PROG}: warning: {said} empty, left out of the output", file=sys.stderr)
    client = preamble.open_store(PROG, args)
    with preamble.errors_in_one_line(PROG, client):
        run = None if args.model else client.get_run(args.run_id)
        model_uri = args.model or record.logged_model_uri(run)
        if model_uri is None and record.is_sweep(run):
            raise UserError(f"run {args.run_id} is a sweep's parent run: give one of its jobs' run ids")
        if model_uri is None and (why := record.why_nothing_kept(run)):
            raise UserError(f"run {args.run_id} {why}")
        if model_uri is None:
            raise UserError(f"run {args.run_id} logged no model (tracking.log_model=false)")
        try:
            model = mlflow.pyfunc.load_model(model_uri)
        except mlflow.exceptions.MlflowException as err:
            raise UserError(f"no model at {model_uri} ({first_line(err)})") from None
    predictions = model.predict(pd.DataFrame({COLUMN: texts}))
    for text, row in zip(texts, predictions.itertuples(), strict=True):
        print(f"{row.label}\t{row.probability:.6f}\t{text[:70]}")
