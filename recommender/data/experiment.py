"""One call that gives every notebook the same data and the same split.

``load_experiment`` resolves the notebooks' standard parameters (dataset, data folder, split
folder, quick mode, seed) into a :class:`Experiment`, so all notebooks of a run train and
evaluate on identical train/test tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recommender.core.config import data_dir as resolve_data_dir
from recommender.data.releases import MovieLens, load_movielens

__all__ = ["Experiment", "load_experiment", "QUICK_SYNTHETIC", "benchmark_split_dir",
           "LARGE_RELEASE_RATINGS"]

# Small enough for a notebook to run in seconds, big enough for the models to learn something.
QUICK_SYNTHETIC = {"n_users": 300, "n_movies": 400, "n_ratings": 15_000}
# A release with at least this many ratings is big (ml-1m and up; ml-100k and ml-latest-small
# are not): the notebooks then run the models' ``large_data`` settings.
LARGE_RELEASE_RATINGS = 500_000


@dataclass
class Experiment:
    """The data and split a notebook works on."""

    dataset: str
    data: MovieLens
    train: pd.DataFrame
    test: pd.DataFrame
    split: str
    seed: int
    large: bool = False  # a big release: models run with their ``large_data`` settings

    @property
    def movies(self) -> pd.DataFrame:
        return self.data.movies

    def summary(self) -> dict:
        return {"dataset": self.dataset, "split": self.split, "seed": self.seed,
                "train_ratings": len(self.train), "test_ratings": len(self.test),
                **({"settings": "large_data (a big release)"} if self.large else {})}


def benchmark_split_dir(dataset: str, data_root: Path) -> Path | None:
    """The fixed benchmark split shipped beside the data (``../benchmarks/<dataset>-u20``)."""
    candidate = data_root.parent / "benchmarks" / f"{dataset}-u20"
    return candidate if (candidate / "train.csv").is_file() else None


def load_experiment(dataset: str = "ml-latest-small", data_dir: str = "", split_dir: str = "",
                    quick: bool = False, seed: int = 0, large: bool | None = None
                    ) -> Experiment:
    """Load the data and the train/test split the notebooks share.

    ``quick`` (or ``dataset="synthetic"``) uses small generated data with a planted structure.
    Otherwise the release is read from the data folder, and the split is ``split_dir`` if
    given, else the fixed benchmark split beside the data when one exists, else a per-user
    20% holdout drawn with ``seed``. ``large`` marks a big release (None: one with at least
    :data:`LARGE_RELEASE_RATINGS` ratings).
    """
    from recommender.data import splits

    if quick or dataset == "synthetic":
        from recommender.data.synthetic import make_synthetic

        data = make_synthetic(**QUICK_SYNTHETIC, seed=seed)
        train, test = splits.per_user_split(data.ratings, 0.2, seed=seed)
        return Experiment("synthetic", data, train, test, "per-user 20% (seeded)", seed,
                          bool(large))
    root = resolve_data_dir(data_dir or None)
    data = load_movielens(dataset, root)
    if large is None:
        large = len(data.ratings) >= LARGE_RELEASE_RATINGS
    fixed = Path(split_dir) if split_dir else benchmark_split_dir(dataset, root)
    if fixed is not None:
        train, test = splits.from_files(fixed / "train.csv", fixed / "test.csv")
        return Experiment(dataset, data, train, test, f"files: {fixed.name}", seed, large)
    train, test = splits.per_user_split(data.ratings, 0.2, seed=seed)
    return Experiment(dataset, data, train, test, "per-user 20% (seeded)", seed, large)
