"""How does ensemble selection do on reviews it did not choose on? Measured on validation reviews alone.

For each set of candidates, the members' validation reviews are cut into two halves by whole blocks of
consecutive reviews (data.REVIEWS_PER_BLOCK, as data.val_holdout=movies holds them out, so that no
movie is in both halves); a selection is made on one half and scored on the other, both ways, over
many random cuts. The test reviews are not read. Prints, per set, the mean accuracy on the unseen half of: the greedy
selection maximising each metric; the selection kept only beyond chance (imdb-exp-ensemble's
default, ensemble.beyond_chance); and the member best on the selection half.

    python scripts/ensemble_holdout.py --tracking-uri sqlite:///HOME/mlflow.db CANDIDATES...

Each CANDIDATES is one set of candidates: run ids or sweep parent run ids, joined by commas.
"""

import argparse

import numpy as np

from imdb_exp.analysis import ensemble, predictions
from imdb_exp.analysis.predictions import Scored
from imdb_exp.data.splits import REVIEWS_PER_BLOCK
from imdb_exp.tracking import store

CUTS = 50


def part(scored: Scored, keep: np.ndarray) -> Scored:
    return Scored(scored.rows[keep], scored.labels[keep], scored.probabilities[keep])


def accuracy(scored: Scored) -> float:
    return float(np.mean(scored.correct()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidates", nargs="+", help="comma-joined run or sweep parent ids, one set each")
    parser.add_argument("--tracking-uri")
    args = parser.parse_args()
    client = store.client(args.tracking_uri)
    for candidates in args.candidates:
        runs = ensemble.members_of(client, candidates.split(","))
        val = [predictions.of_run(client, run.info.run_id).val for run in runs]
        blocks = val[0].rows // REVIEWS_PER_BLOCK
        results = {metric: [] for metric in ensemble.METRICS} | {"beyond chance": [], "best member": []}
        rng = np.random.default_rng(0)
        for _ in range(CUTS):
            first = np.isin(blocks, rng.permutation(np.unique(blocks))[: len(np.unique(blocks)) // 2])
            for choose, score in ((first, ~first), (~first, first)):
                chosen_on, scored_on = [part(v, choose) for v in val], [part(v, score) for v in val]
                for metric in ensemble.METRICS:
                    counts = ensemble.select(chosen_on, metric=metric)
                    results[metric].append(accuracy(ensemble.combined(scored_on, counts / counts.sum())))
                counts, _ = ensemble.beyond_chance(chosen_on, ensemble.select(chosen_on))
                results["beyond chance"].append(accuracy(ensemble.combined(scored_on, counts / counts.sum())))
                best = max(range(len(val)), key=lambda i, c=chosen_on: accuracy(c[i]))
                results["best member"].append(accuracy(scored_on[best]))
        names = ", ".join(sorted({run.info.run_name for run in runs}))
        print(f"{candidates[:40]}... ({names}), {len(val[0].rows)} validation reviews, {CUTS} cuts x 2:")
        for name, values in results.items():
            print(f"  {name:13s} accuracy on the unseen half: mean {np.mean(values):.4f}, sd {np.std(values):.4f}")


if __name__ == "__main__":
    main()
