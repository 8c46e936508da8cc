"""Training speed of our regression model against Surprise's SVD, in one run on one machine.

1. u20 train split: Surprise SVD (defaults, 20 epochs) and our ``regression`` model run for the
   same 20 epochs at ``--batch-size`` (no validation), at each of ``--dims`` factor sizes, on
   both update paths (Adam with the whole-table penalty, SGD with the batch penalty); prints
   rating-updates per second (ours:
   steady state, i.e. epochs after the first, and in total including XLA compilation), RMSE on
   the u20 test split for both, and the speed ratio. Our shipped defaults (early stopping, refit)
   are timed too, for the RMSE they reach.
2. ``--synthetic-ratings`` (default 25 million) synthetic ratings in the shape of MovieLens 25M:
   seconds per epoch and peak resident memory, on both update paths.

Surprise is the optional ``[bench]`` extra: ``pip install -e '.[bench]'`` (or
``pip install scikit-surprise==1.1.5``).

Usage: ``python benchmarks/speed.py [--synthetic-ratings 25000000] [--batch-size 16384]
[--dims 32 64 100 128]`` (``--synthetic-ratings 0`` skips part 2).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recommender import metrics
from recommender.data import read_ratings
from recommender.models import make_model
from recommender.data.synthetic import make_synthetic

U20 = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "ml-latest-small-u20"
EPOCHS = 20  # Surprise SVD's default
# The two ways a step can apply L2 (see recommender.models.factorization): whole tables with
# Adam (dense updates, the shipped default) or the batch's rows with SGD (sparse updates).
PATHS = {"adam, table penalty": {"learning_rate": 0.02},
         "sgd, batch penalty": {"penalty": "batch", "optimizer": "sgd", "learning_rate": 30.0}}


def surprise_svd(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Fit Surprise's SVD with its defaults; rating-updates per second and test RMSE."""
    try:
        from surprise import SVD, Dataset, Reader
    except ImportError:
        raise SystemExit("Surprise is missing: pip install -e '.[bench]' "
                         "(or pip install scikit-surprise==1.1.5)") from None
    data = Dataset.load_from_df(train[["userId", "movieId", "rating"]],
                                Reader(rating_scale=(0.5, 5)))
    algo = SVD(n_epochs=EPOCHS, random_state=0)
    start = time.perf_counter()
    algo.fit(data.build_full_trainset())
    seconds = time.perf_counter() - start
    pred = [algo.predict(u, i).est for u, i in zip(test["userId"], test["movieId"])]
    return {"seconds": seconds, "updates_per_s": EPOCHS * len(train) / seconds,
            "rmse": metrics.rmse(test["rating"], pred)}


def ours(train: pd.DataFrame, test: pd.DataFrame | None, **params) -> dict:
    """Fit our regression model; steady-state and total updates per second, test RMSE."""
    model = make_model("regression", **params)
    start = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - start
    history = model.history[-1]
    rows = history.rows[1:] or history.rows
    per_epoch = history.examples_seen / len(history.rows)
    examples = sum(h.examples_seen for h in model.history)
    out = {"seconds": seconds, "epochs": len(history.rows),
           "steady_updates_per_s": per_epoch * len(rows) / sum(r["train_seconds"] for r in rows),
           "total_updates_per_s": examples / seconds,
           "seconds_per_epoch": float(np.median([r["train_seconds"] for r in rows]))}
    if test is not None:
        out["rmse"] = metrics.rmse(test["rating"], model.predict(test["userId"], test["movieId"]))
    return out


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=U20, help="folder with train.csv, test.csv")
    parser.add_argument("--batch-size", type=int, default=16384)
    parser.add_argument("--synthetic-ratings", type=int, default=25_000_000)
    parser.add_argument("--synthetic-epochs", type=int, default=2)
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 64, 100, 128],
                        help="factor sizes timed on u20 (Surprise's SVD uses 100; ours ships 128)")
    args = parser.parse_args()

    train, test = read_ratings(args.data / "train.csv"), read_ratings(args.data / "test.csv")
    svd = surprise_svd(train, test)
    print(f"u20 train ({len(train):,} ratings), {EPOCHS} epochs")
    print(f"  Surprise SVD      {svd['updates_per_s'] / 1e6:6.2f} M updates/s  "
          f"fit {svd['seconds']:.2f} s  RMSE {svd['rmse']:.4f}")
    for label, params in PATHS.items():
        for dim in args.dims:
            run = ours(train, test, epochs=EPOCHS, batch_size=args.batch_size, validation=0.0,
                       dim=dim, **params)
            print(f"  ours, {label}, {dim} factors, batch {args.batch_size}: steady "
                  f"{run['steady_updates_per_s'] / 1e6:.2f} M updates/s "
                  f"({run['steady_updates_per_s'] / svd['updates_per_s']:.2f}x SVD), total incl. "
                  f"compile {run['total_updates_per_s'] / 1e6:.2f} M/s  fit {run['seconds']:.2f} "
                  f"s  RMSE {run['rmse']:.4f}")
    tuned = ours(train, test)
    print(f"  ours, shipped defaults (early stopping + refit): fit {tuned['seconds']:.1f} s  "
          f"steady {tuned['steady_updates_per_s'] / 1e6:.2f} M updates/s  "
          f"RMSE {tuned['rmse']:.4f}")

    n = args.synthetic_ratings
    if not n:
        return
    start = time.perf_counter()
    big = make_synthetic(n_users=162_541, n_movies=59_047, n_ratings=n, seed=0).ratings
    print(f"synthetic: {n:,} ratings generated in {time.perf_counter() - start:.0f} s, "
          f"peak memory {peak_memory_gb():.1f} GB")
    for label, params in PATHS.items():
        run = ours(big, None, epochs=args.synthetic_epochs, batch_size=args.batch_size,
                   validation=0.0, **params)
        print(f"  ours, {label}, batch {args.batch_size}: {run['seconds_per_epoch']:.1f} s "
              f"per epoch ({run['steady_updates_per_s'] / 1e6:.2f} M updates/s), fit "
              f"{run['seconds']:.0f} s for {run['epochs']} epochs, "
              f"peak memory {peak_memory_gb():.1f} GB")


if __name__ == "__main__":
    main()
