"""Item and user cold start on ml-latest-small for every registered model that folds in.

Item cold start is the LightFM-paper protocol with the issue-11 reference draw (20% of the
rated movies held out with all their ratings, ``default_rng(42)``); its table sits next to the
reference rows (LightFM, TF-IDF cosine, random). User cold start holds out 20% of the users
and reveals k = 1, 5, 10 random ratings of each (seed 42). Models that cannot score users
outside their training data are listed with the reason.

Usage: ``python benchmarks/cold_start.py [--models content popularity] [--json cold.json]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from recommender.data.releases import load_movielens
from recommender.evaluation import LIGHTFM_REFERENCE, cold_start_table

SHARED = Path(__file__).resolve().parents[2] / "shared"
COLUMNS = ["ndcg@10", "recall@10", "auc", "users", "fit_seconds"]


def markdown(table: pd.DataFrame, columns: list[str]) -> str:
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for _, row in table.iterrows():
        cells = ["–" if pd.isna(row.get(c)) else
                 (f"{row[c]:.0f}" if c == "users" else
                  f"{row[c]:.1f}" if c == "fit_seconds" else f"{row[c]:.4f}") for c in columns]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "ml-latest-small")
    parser.add_argument("--models", nargs="+", help="registered names (default: all)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = load_movielens(args.data)
    table = cold_start_table(args.models, data.ratings, data.movies, data.tags, seed=args.seed,
                             progress=True)
    scored = table[table["skipped"] == ""]
    print("\n## Item cold start (LightFM protocol)\n")
    items = scored[scored["protocol"] == "items"]
    print(markdown(pd.concat([items, LIGHTFM_REFERENCE]), COLUMNS))
    for k, rows in scored[scored["protocol"] == "users"].groupby("revealed"):
        print(f"\n## User cold start, {k:.0f} rating(s) revealed\n")
        print(markdown(rows, COLUMNS))
    for _, row in table[table["skipped"] != ""].iterrows():
        print(f"\nskipped {row['model']}: {row['skipped']}")
    if args.json:
        args.json.write_text(table.to_json(orient="records", indent=2))


if __name__ == "__main__":
    main()
