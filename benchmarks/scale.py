"""Scale benchmark: synthetic MovieLens-25M, then popularity and EASE top-10 for every user.

Usage: ``python benchmarks/scale.py [--ratings 25_000_000] [--max-items 20000]``

Memory is reported two ways. ``traced peak``: the highest memory allocated through Python and
numpy during that stage alone (``tracemalloc``, reset per stage; it misses memory that BLAS,
LAPACK or scipy's C++ code allocate directly). ``max RSS``: the process's resident-set
high-water mark so far (``resource.getrusage``), which includes everything but never goes
down, so it bounds each stage from above.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from recommender.metrics import top_k
from recommender.models import make_model
from recommender.synthetic import make_synthetic


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a stage and print its traced peak memory and the process max RSS after it."""
    tracemalloc.reset_peak()
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(f"{name:<34} {seconds:8.1f} s   traced peak {peak:6.2f} GiB   max RSS {rss:6.2f} GiB",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the three stages and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--users", type=int, default=162_541, help="ml-25m has 162,541")
    parser.add_argument("--movies", type=int, default=59_047, help="ml-25m has 59,047 rated")
    parser.add_argument("--max-items", type=int, default=20_000,
                        help="EASE models only this many most-rated movies")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-ease", action="store_true")
    parser.add_argument("--progress", action="store_true", help="tqdm bars for top-k")
    args = parser.parse_args(argv)

    tracemalloc.start()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}; memory: 'traced peak' = "
          "tracemalloc peak within the stage, 'max RSS' = getrusage high-water mark so far")
    with stage(f"generate {args.ratings:,} ratings"):
        data = make_synthetic(args.users, args.movies, args.ratings, rank=16, seed=args.seed)
    ratings, movies = data.ratings, data.movies
    print(f"  {len(ratings):,} ratings, {ratings['userId'].nunique():,} users, "
          f"{ratings['movieId'].nunique():,} movies")

    models = [("popularity", {})]
    if not args.skip_ease:
        models.append(("ease", {"max_items": args.max_items}))
    for name, params in models:
        model = make_model(name, **params)
        label = name + (f" (the {args.max_items:,} most-rated movies)" if params else "")
        with stage(f"fit {label}"):
            model.fit(ratings, movies=movies)
        users = np.arange(len(model.users))
        with stage(f"top-{args.k} for all {len(users):,} users ({name})"):
            top_k(model.score, users, args.k, model.n_items, exclude=model.seen,
                  progress=args.progress)
        del model


if __name__ == "__main__":
    main()
