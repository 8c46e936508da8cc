"""Scale benchmark: every registered model on synthetic MovieLens-shaped data of growing size.

For each size (default 1M, 5M and 25M ratings; users grow with the ratings as in ml-25m,
162,541 users at 25M, and movies with their square root, 59,047 at 25M) the data is generated
once, then every registered model whose ``large_data`` settings are not ``None`` is fitted
with them and ranks the top 10 unseen movies for every user, each model in its own process so
that its memory is its own. Printed per model and size: fit seconds (for models trained in
epochs: two epochs without validation, and the second epoch's seconds, XLA compilation
excluded), top-10-for-all-users seconds, the CPU seconds of both stages (all threads: on a
machine others load, CPU seconds over the cores are what an idle one would take, when the
stage keeps every core busy) and the peak resident memory of each stage (Linux
``VmHWM``, reset at the stage's start: it includes the ratings and the Python/TensorFlow
runtime already resident). When the ``implicit`` package is installed (the ``[bench]`` extra)
its ALS (64 factors) is measured in the same run as the reference. A log-log plot of seconds
against ratings goes to ``--plot`` and every figure to ``--json``.

Usage: ``python benchmarks/scale.py [--sizes 1e6 5e6 25e6] [--models ...] [--skip ease@25e6]
[--data-dir DIR]`` (``--data-dir`` keeps the generated data for later runs).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL = {"ratings": 25_000_000, "users": 162_541, "movies": 59_047}  # ml-25m
EPOCH_RUN = {"epochs": 2, "head_epochs": 2, "validation": 0.0,  # for models trained in epochs
             "refit": False}


def shape(n_ratings: int) -> tuple[int, int]:
    """Users and movies for ``n_ratings``: ml-25m's at 25M, users linear, movies square-root."""
    share = n_ratings / FULL["ratings"]
    return max(100, round(FULL["users"] * share)), max(100, round(FULL["movies"] * share ** 0.5))


def _reset_peak() -> None:
    """Restart the resident-memory high-water mark (Linux; elsewhere it only grows)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_gib() -> float:
    """Peak resident memory since the last :func:`_reset_peak`, GiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def side_file(ratings_file: Path) -> Path:
    return ratings_file.with_name(ratings_file.stem + "_side.npz")


def save_side_tables(movies, tags, path: Path) -> None:
    """The synthetic movies and tags tables as plain arrays (genres joined by ``|``), so the
    measuring process can give content models what they read without pickle."""
    np.savez(path, movieId=movies["movieId"].to_numpy(), title=movies["title"].to_numpy(str),
             year=movies["year"].fillna(-1).to_numpy(np.int64),
             genres=np.array(["|".join(g) for g in movies["genres"]]),
             tag_userId=tags["userId"].to_numpy(), tag_movieId=tags["movieId"].to_numpy(),
             tag=tags["tag"].to_numpy(str), tag_timestamp=tags["timestamp"].to_numpy())


def load_side_tables(path: Path):
    """``(movies, tags)`` as :func:`save_side_tables` wrote them."""
    import pandas as pd

    a = np.load(path)
    year = pd.Series(a["year"], dtype="Int64")
    movies = pd.DataFrame({"movieId": a["movieId"], "title": a["title"].astype(object),
                           "year": year.mask(year < 0),
                           "genres": [g.split("|") for g in a["genres"]]})
    tags = pd.DataFrame({"userId": a["tag_userId"], "movieId": a["tag_movieId"],
                         "tag": a["tag"].astype(object), "timestamp": a["tag_timestamp"]})
    return movies, tags


def measure_model(name: str, ratings_file: Path, k: int) -> dict:
    """Fit one registered model with its ``large_data`` settings (and the movies and tags
    tables, for the models that read content) and rank for every user."""
    import pandas as pd

    from recommender.models import model_class

    ratings = pd.DataFrame(dict(np.load(ratings_file)))
    movies, tags = load_side_tables(side_file(ratings_file))
    cls = model_class(name)
    known = cls.Settings.model_fields
    model = cls(**{**cls.large_data, **{key: v for key, v in EPOCH_RUN.items() if key in known}})
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(ratings, movies=movies, tags=tags)
    out = {"fit_s": time.perf_counter() - start, "fit_cpu_s": time.process_time() - cpu,
           "fit_peak_gib": _peak_gib()}
    history = getattr(model, "history", None)
    if isinstance(history, list) and history and hasattr(history[-1], "rows"):
        out["epoch_s"] = history[-1].rows[-1]["train_seconds"]
    elif "epoch_seconds" in model.meta:  # models that keep no loop history say it here
        out["epoch_s"] = model.meta["epoch_seconds"]
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    model.top_k(np.arange(len(model.users)), k)
    out.update(top_k_s=time.perf_counter() - start, top_k_cpu_s=time.process_time() - cpu,
               top_k_peak_gib=_peak_gib())
    return out


def measure_implicit(ratings_file: Path, k: int, factors: int = 64) -> dict:
    """implicit's ALS: seconds per iteration (2 iterations / 2) and its batched top-k."""
    import implicit
    import scipy.sparse as sp

    arrays = np.load(ratings_file)
    users, user_rows = np.unique(arrays["userId"], return_inverse=True)
    items, item_cols = np.unique(arrays["movieId"], return_inverse=True)
    matrix = sp.csr_matrix((np.ones(len(user_rows), np.float32), (user_rows, item_cols)),
                           shape=(len(users), len(items)))
    model = implicit.cpu.als.AlternatingLeastSquares(factors=factors, iterations=2,
                                                     random_state=0)
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(matrix, show_progress=False)
    out = {"fit_s": time.perf_counter() - start, "fit_cpu_s": time.process_time() - cpu,
           "fit_peak_gib": _peak_gib()}
    out["epoch_s"] = out["fit_s"] / 2
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    model.recommend(np.arange(len(users)), matrix, N=k, filter_already_liked_items=True)
    out.update(top_k_s=time.perf_counter() - start, top_k_cpu_s=time.process_time() - cpu,
               top_k_peak_gib=_peak_gib(),
               version=implicit.__version__)
    return out


def run_isolated(target: str, ratings_file: Path, k: int, timeout: float) -> dict:
    """Measure in a fresh process (its memory is its own; a crash is reported, not fatal)."""
    command = [sys.executable, __file__, "--measure", target, str(ratings_file), "--k", str(k)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1])


def plot(results: list[dict], path: Path) -> None:
    """Seconds against ratings on log-log axes: fit (per epoch where trained in epochs) and
    top-10 for all users, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    names = list(dict.fromkeys(r["model"] for r in results))
    colours = dict(zip(names, plt.get_cmap("tab10").colors))
    for ax, key, title in ((axes[0], "fit", "fit (seconds per epoch where trained in epochs)"),
                           (axes[1], "top_k_s", "top-10 for every user (seconds)")):
        for name in names:
            rows = [r for r in results if r["model"] == name and "error" not in r]
            if key == "fit":
                points = [(r["ratings"], r.get("epoch_s", r["fit_s"])) for r in rows]
            else:
                points = [(r["ratings"], r[key]) for r in rows]
            if points:
                x, y = zip(*points)
                ax.plot(x, y, marker="o", label=name, color=colours[name],
                        linestyle="--" if name.startswith("implicit") else "-")
        ax.set(xscale="log", yscale="log", xlabel="ratings", title=title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("seconds")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.suptitle("Synthetic MovieLens-shaped data, one 2-core machine (shared while measured)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; generate each size, measure every model, print, plot, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 5e6, 25e6])
    parser.add_argument("--models", nargs="+", help="default: every registered model whose "
                        "large_data settings are not None")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="MODEL or MODEL@SIZE to leave out (e.g. ease@25e6: 9.5 GB)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per model and size")
    parser.add_argument("--plot", type=Path, default=ROOT / "reports" / "figures" / "scale.png")
    parser.add_argument("--json", type=Path,
                        default=ROOT / "reports" / "benchmarks" / "scale.json")
    parser.add_argument("--data-dir", type=Path, help="keep the generated data here and reuse "
                        "it on later runs (same sizes, same seed: the same data); default: a "
                        "temporary folder")
    parser.add_argument("--measure", nargs=2, metavar=("MODEL", "RATINGS_NPZ"),
                        help=argparse.SUPPRESS)  # the per-model child process
    args = parser.parse_args(argv)

    if args.measure:
        name, ratings_file = args.measure[0], Path(args.measure[1])
        result = (measure_implicit(ratings_file, args.k) if name == "implicit-als"
                  else measure_model(name, ratings_file, args.k))
        print(json.dumps(result))
        return

    from recommender.models import MODELS, model_class
    from recommender.data.synthetic import make_synthetic

    names = args.models or [n for n in MODELS if model_class(n).large_data is not None]
    not_scaling = [n for n in MODELS if n not in names]
    try:
        import implicit  # noqa: F401
        names.append("implicit-als")
    except ImportError:
        print("implicit is not installed (pip install -e '.[bench]'): no ALS reference")
    print(f"models: {', '.join(names)}; not run (large_data = None or not asked for): "
          f"{', '.join(not_scaling) or 'none'}")
    print("times are wall seconds on this machine; memory is the peak resident set of the "
          "stage's process")
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.data_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for size in (int(s) for s in args.sizes):
            n_users, n_movies = shape(size)
            ratings_file = folder / f"ratings_{size}.npz"
            if ratings_file.exists() and side_file(ratings_file).exists():
                print(f"\n{size:,} ratings from {ratings_file}")
            else:
                start = time.perf_counter()
                data = make_synthetic(n_users, n_movies, size, rank=16, seed=0)
                ratings = data.ratings
                np.savez(ratings_file, **{c: ratings[c].to_numpy() for c in
                                          ("userId", "movieId", "rating")})
                save_side_tables(data.movies, data.tags, side_file(ratings_file))
                print(f"\n{size:,} ratings, {ratings['userId'].nunique():,} users, "
                      f"{ratings['movieId'].nunique():,} movies (generated in "
                      f"{time.perf_counter() - start:.0f} s)")
                del ratings, data
            print(f"  {'model':<16} {'fit s':>8} {'epoch s':>8} {'fit GiB':>8} "
                  f"{'top-k s':>8} {'top-k GiB':>9} {'fit CPU s':>9} {'top-k CPU s':>11}")
            for name in names:
                if name in args.skip or any(s.split("@")[0] == name and
                                            int(float(s.split("@")[1])) == size
                                            for s in args.skip if "@" in s):
                    print(f"  {name:<16} skipped (--skip)")
                    continue
                row = {"model": name, "ratings": size, "users": n_users, "movies": n_movies,
                       **run_isolated(name, ratings_file, args.k, args.timeout)}
                results.append(row)
                if "error" in row:
                    print(f"  {name:<16} failed: {row['error']}")
                    continue
                epoch = f"{row['epoch_s']:8.2f}" if "epoch_s" in row else f"{'-':>8}"
                print(f"  {name:<16} {row['fit_s']:8.2f} {epoch} {row['fit_peak_gib']:8.2f} "
                      f"{row['top_k_s']:8.2f} {row['top_k_peak_gib']:9.2f} "
                      f"{row['fit_cpu_s']:9.2f} {row['top_k_cpu_s']:11.2f}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    plot(results, args.plot)
    print(f"\nwrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}"
          f" and {args.plot.relative_to(ROOT) if args.plot.is_relative_to(ROOT) else args.plot}")


if __name__ == "__main__":
    main()
