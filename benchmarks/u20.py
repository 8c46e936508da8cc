"""Every registered model on the fixed ml-latest-small-u20 split, as `recommender evaluate` runs it.

Prints the markdown table the README quotes (seed 0, the CLI's default) and writes the rows
to ``--json``. Each row is what ``recommender evaluate --model NAME --train .../train.csv
--test .../test.csv --movies .../movies.csv`` prints for that model.

Usage: ``python benchmarks/u20.py [--models ease softmax] [--json u20.json]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recommender.data import load_movielens, read_ratings
from recommender.evaluation import fit_and_evaluate
from recommender.models import MODELS

SHARED = Path(__file__).resolve().parents[2] / "shared"
COLUMNS = ("rmse", "mae", "precision@10", "recall@10", "ndcg@10", "map@10", "hr@10",
           "coverage@10", "fit_seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", type=Path, default=SHARED / "benchmarks" / "ml-latest-small-u20")
    parser.add_argument("--movies", type=Path, default=SHARED / "data" / "ml-latest-small")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    train, test = read_ratings(args.split / "train.csv"), read_ratings(args.split / "test.csv")
    data = load_movielens(args.movies)
    rows = []
    print("| model | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name in args.models:
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
