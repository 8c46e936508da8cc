"""Every registered model on the fixed ml-latest-small-u20 split, as `recommender evaluate` runs it.

Prints the markdown table the README quotes (seed 0, the CLI's default) and writes the rows
to ``--json``. Each row is what ``recommender evaluate --model NAME --train .../train.csv
--test .../test.csv --movies .../movies.csv`` prints for that model.

Usage: ``python benchmarks/u20.py [--models ease softmax] [--json u20.json]``

``--seeds 0 1 2`` instead fits the headline models (or ``--models``) once per seed and writes
their mean and standard deviation to ``reports/benchmarks/u20_seeds.json``, which the index,
notebook 07 and the README read, so a reader sees how much a seed moves each figure. Models
measured before on the same split and seeds stay in the file, so ``--models NAME`` adds or
updates one row.
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import date
from pathlib import Path

from recommender.data import load_movielens, read_ratings
from recommender.evaluation import fit_and_evaluate
from recommender.core.config import REPORTS_DIR
from recommender.core.files import atomic_write_text
from recommender.models import MODELS
from recommender.reporting.records import SEED_SPREAD, read_seed_spread

SHARED = Path(__file__).resolve().parents[2] / "shared"
COLUMNS = ("rmse", "mae", "precision@10", "recall@10", "ndcg@10", "map@10", "hr@10",
           "coverage@10", "fit_seconds")
HEADLINE = ("baseline", "popularity", "ease", "ease-rated", "dlae", "regression",
            "regression-hybrid", "softmax", "softmax-dnn", "multitask", "feature-embedding", "bpmf",
            "blend")
SPREAD = (*COLUMNS, "top1pct_share")


def seed_spread(names, seeds, train, test, movies, tags) -> dict[str, dict]:
    """``{model: {metric: {"mean", "sd", "values"}}}`` over one fit per seed (sample sd)."""
    out = {}
    for name in names:
        runs = [fit_and_evaluate(name, train, test, movies=movies, tags=tags, seed=s)[1].metrics
                for s in seeds]
        out[name] = {m: {"mean": statistics.fmean(v), "sd": statistics.stdev(v), "values": v}
                     for m in SPREAD if m in runs[0]
                     for v in [[float(run[m]) for run in runs]]}
        print(name, {m: f"{s['mean']:.4f} ± {s['sd']:.4f}" for m, s in out[name].items()},
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, default=SHARED / "benchmarks" / "ml-latest-small-u20")
    parser.add_argument("--movies", type=Path, default=SHARED / "data" / "ml-latest-small")
    parser.add_argument("--models", nargs="+",
                        help="default: every registered model (with --seeds: the headline ones)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="fit the headline models once per seed; write their spread to "
                             f"reports/{SEED_SPREAD}")
    args = parser.parse_args()
    train, test = read_ratings(args.split / "train.csv"), read_ratings(args.split / "test.csv")
    data = load_movielens(args.movies)
    if args.seeds:
        names = args.models or list(HEADLINE)
        split = f"files: {args.split.name}"
        before = read_seed_spread(REPORTS_DIR, split=split, dataset=args.movies.name)
        models = before["models"] if before and before["seeds"] == args.seeds else {}
        models.update(seed_spread(names, args.seeds, train, test, data.movies, data.tags))
        spread = {"dataset": args.movies.name, "split": split, "seeds": args.seeds,
                  "date": date.today().isoformat(), "models": models}
        atomic_write_text(REPORTS_DIR / SEED_SPREAD, json.dumps(spread, indent=2))
        return
    rows = []
    print("| model | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name in args.models or MODELS:
        _, result = fit_and_evaluate(name, train, test, movies=data.movies, tags=data.tags)
        row = {"model": name, **result.metrics}
        rows.append(row)
        cells = [f"{row[c]:.4f}" if c in row and c != "fit_seconds" else
                 (f"{row[c]:.1f}" if c in row else "–") for c in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
