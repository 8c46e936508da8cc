"""Scale benchmark: every registered model on synthetic MovieLens-shaped data of growing size.

For each size (default 1M, 5M and 25M ratings; users grow with the ratings as in ml-25m,
162,541 users at 25M, and movies with their square root, 59,047 at 25M) the data is generated
once and 10% of each user's ratings are held out (the validation slice). Every registered
model whose ``large_data`` settings are not ``None`` is fitted on the rest with them and
ranks the top 10 unseen movies for every user, each model in its own process so that its
memory is its own. Printed per model and size: fit seconds (models trained in epochs run
two epochs without validation, unless their ``large_data`` settings fix the epochs, which
then make the whole fit; the second epoch's seconds, XLA compilation excluded), top-10-for-
all-users seconds, the CPU seconds of both stages (all threads: CPU seconds over wall
seconds is the number of cores a stage kept busy), the peak resident memory of each stage
(Linux ``VmHWM``, reset at the stage's start: it includes the ratings and the
Python/TensorFlow runtime already resident), and NDCG@10 of those lists on the validation
slice (movies rated >= 4). ``NAME@defaults`` fits a model with its shipped defaults instead
(early stopping and refit included), to put the quality of the ``large_data`` settings next
to theirs; ``NAME+key=value+...`` changes some of the ``large_data`` settings. When the ``implicit`` package is installed (the ``[bench]`` extra) its ALS (64
factors) is measured in the same run as the reference.

``--evaluate`` times ``recommender evaluate --model popularity`` (read, validate, fit, top-10
for every test user, every metric) on a per-user 80/20 split of one size written as CSV,
against a plain pandas/numpy/scipy pipeline doing the same work, both in fresh processes,
and checks that both give the same NDCG@10.

A log-log plot of seconds against ratings goes to ``--plot`` and every figure to ``--json``.

Usage: ``python benchmarks/scale.py [--sizes 1e6 5e6 25e6] [--models ...] [--skip ease@25e6]
[--data-dir DIR] [--evaluate 5e6] [--update]`` (``--data-dir`` keeps the generated data for
later runs; ``--update`` adds this run's figures to those already in ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL = {"ratings": 25_000_000, "users": 162_541, "movies": 59_047}  # ml-25m
EPOCH_RUN = {"epochs": 2, "head_epochs": 2}  # models trained in epochs, unless large_data says
NO_VALIDATION = {"validation": 0.0, "refit": False}  # the benchmark holds its own slice out
HELD_OUT = 0.1  # share of each user's ratings in the validation slice
DEFAULTS = "@defaults"


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


def held_file(ratings_file: Path) -> Path:
    return ratings_file.with_name(ratings_file.stem + "_held.npz")


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


def _settings(cls, spec: str) -> dict:
    """What a benchmark fit of ``spec`` runs with: ``NAME@defaults``, the shipped defaults;
    ``NAME``, the ``large_data`` settings without validation (the benchmark's slice judges)
    and, unless they fix the epochs, two epochs; ``NAME+key=value+...``, those with changes
    (settings tried before choosing ``large_data``)."""
    if spec.endswith(DEFAULTS):
        return {}
    changes = dict(part.split("=", 1) for part in spec.split("+")[1:])
    settings = {**cls.large_data, **cls.Settings.from_text(cls.name, changes)}
    known = cls.Settings.model_fields
    run = {**NO_VALIDATION, **({} if "epochs" in settings else EPOCH_RUN)}
    return {**{key: v for key, v in run.items() if key in known}, **settings}


def measure_model(name: str, ratings_file: Path, k: int) -> dict:
    """Fit one registered model (and the movies and tags tables, for the models that read
    content), rank for every user and score the lists on the validation slice."""
    import pandas as pd

    from recommender import metrics
    from recommender.evaluation import relevance_matrix
    from recommender.models import model_class

    ratings = pd.DataFrame(dict(np.load(ratings_file)))
    held = pd.DataFrame(dict(np.load(held_file(ratings_file))))
    movies, tags = load_side_tables(side_file(ratings_file))
    cls = model_class(name.removesuffix(DEFAULTS).split("+")[0])
    model = cls(**_settings(cls, name))
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(ratings, movies=movies, tags=tags)
    out = {"fit_s": time.perf_counter() - start, "fit_cpu_s": time.process_time() - cpu,
           "fit_peak_gib": _peak_gib()}
    history = getattr(model, "history", None)
    if isinstance(history, list) and history and hasattr(history[-1], "rows"):
        out["epoch_s"] = history[-1].rows[-1]["train_seconds"]
        out["epochs"] = len(history[-1].rows)
    elif "epoch_seconds" in model.meta:  # models that keep no loop history say it here
        out["epoch_s"] = model.meta["epoch_seconds"]
    del ratings
    _reset_peak()
    start, cpu = time.perf_counter(), time.process_time()
    listed = model.top_k(np.arange(len(model.users)), k)
    out.update(top_k_s=time.perf_counter() - start, top_k_cpu_s=time.process_time() - cpu,
               top_k_peak_gib=_peak_gib())
    users, relevant = relevance_matrix(model, held)
    out["val_ndcg"] = float(np.mean(metrics.ranking_metrics(listed[users], relevant, k)["ndcg"]))
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


def plain_popularity(train_csv: Path, test_csv: Path, k: int = 10) -> dict:
    """What ``recommender evaluate --model popularity`` does, written plainly with pandas,
    numpy and scipy: read both files, encode, rank the catalogue by rating count, take each
    evaluated user's first ``k`` unrated movies, and their precision, recall and NDCG."""
    import pandas as pd
    import scipy.sparse as sp

    types = {"userId": np.int32, "movieId": np.int32, "rating": np.float32,
             "timestamp": np.int64}
    train, test = pd.read_csv(train_csv, dtype=types), pd.read_csv(test_csv, dtype=types)
    users, u = np.unique(train["userId"].to_numpy(), return_inverse=True)
    items, i = np.unique(train["movieId"].to_numpy(), return_inverse=True)
    seen = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(len(users), len(items)))
    order = np.lexsort((np.arange(len(items)), -np.bincount(i, minlength=len(items))))
    liked = test[test["rating"] >= 4.0]
    lu, li = liked["userId"].to_numpy(), liked["movieId"].to_numpy()
    tu = np.minimum(np.searchsorted(users, lu), len(users) - 1)
    ti = np.minimum(np.searchsorted(items, li), len(items) - 1)
    ok = (users[tu] == lu) & (items[ti] == li)
    evaluated, row = np.unique(tu[ok], return_inverse=True)
    relevant = sp.csr_matrix((np.ones(ok.sum(), np.float32), (row, ti[ok])),
                             shape=(len(evaluated), len(items)))
    relevant.data[:] = 1.0
    prefix = order[:1000]  # nearly every user finds k unrated movies among the most rated
    taken = seen[evaluated][:, prefix].toarray() > 0
    first = np.argsort(taken, axis=1, kind="stable")[:, :k]
    top = prefix[first]
    for r in np.flatnonzero(np.take_along_axis(taken, first, axis=1).any(axis=1)):
        top[r] = order[~np.isin(order, seen[evaluated[r]].indices)][:k]
    hits = np.asarray(relevant[np.arange(len(evaluated))[:, None], top].todense()) > 0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    n_relevant = np.diff(relevant.indptr)
    ndcg = (hits * discount).sum(axis=1) / np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    return {f"ndcg@{k}": float(ndcg.mean()), f"precision@{k}": float(hits.mean()),
            f"recall@{k}": float((hits.sum(axis=1) / n_relevant).mean()),
            "users": int(len(evaluated))}


def measure_evaluate(ratings_file: Path, folder: Path, timeout: float) -> dict:
    """``recommender evaluate --model popularity`` and :func:`plain_popularity` on the same
    per-user 80/20 split of one size's ratings, each in a fresh process, timed whole."""
    train_csv, test_csv = folder / "train.csv", folder / "test.csv"
    if not (train_csv.exists() and test_csv.exists()):
        import pandas as pd

        from recommender.data.splits import per_user_split

        ratings = pd.DataFrame(dict(np.load(ratings_file)))
        ratings["timestamp"] = np.arange(len(ratings), dtype=np.int64)  # as a release has
        train, test = per_user_split(ratings, 0.2, seed=0)
        train.to_csv(train_csv, index=False)
        test.to_csv(test_csv, index=False)
    command = [str(Path(sys.executable).with_name("recommender")), "evaluate", "--model",
               "popularity", "--train", str(train_csv), "--test", str(test_csv), "--json",
               str(folder / "evaluate.json")]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    ours = {"seconds": time.perf_counter() - start,
            **json.loads((folder / "evaluate.json").read_text())}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--plain", str(train_csv), str(test_csv)],
                          check=True, capture_output=True, text=True, timeout=timeout)
    plain = {"seconds": time.perf_counter() - start, **json.loads(done.stdout.splitlines()[-1])}
    return {"ratings": int(sum(1 for _ in open(train_csv)) + sum(1 for _ in open(test_csv))
                           - 2),
            "evaluate_s": ours["seconds"], "plain_s": plain["seconds"],
            "ratio": ours["seconds"] / plain["seconds"], "ndcg": ours["ndcg@10"],
            "plain_ndcg": plain["ndcg@10"], "users": ours["users"]}


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

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6), sharex=True)
    names = list(dict.fromkeys(r["model"] for r in results if "error" not in r))
    colours = dict(zip(names, plt.get_cmap("tab20").colors))
    for ax, key, title in ((axes[0], "fit", "fit (seconds per epoch where trained in epochs)"),
                           (axes[1], "top_k_s", "top-10 for every user (seconds)")):
        for name in names:
            rows = sorted((r for r in results if r["model"] == name and "error" not in r),
                          key=lambda r: r["ratings"])
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
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Synthetic MovieLens-shaped data, one 2-core machine")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _generate(size: int, folder: Path) -> Path:
    """The ratings of one size (fit part and validation slice) and the side tables, written
    once into ``folder`` and reused (same size, same seed: the same data)."""
    from recommender.data.splits import validation_split
    from recommender.data.synthetic import make_synthetic

    ratings_file = folder / f"ratings_{size}.npz"
    if ratings_file.exists() and side_file(ratings_file).exists() and \
            held_file(ratings_file).exists():
        print(f"\n{size:,} ratings from {ratings_file}")
        return ratings_file
    n_users, n_movies = shape(size)
    start = time.perf_counter()
    data = make_synthetic(n_users, n_movies, size, rank=16, seed=0)
    columns = ["userId", "movieId", "rating"]
    fit, held = validation_split(data.ratings[columns].assign(timestamp=0), HELD_OUT, seed=0)
    for table, path in ((fit, ratings_file), (held, held_file(ratings_file))):
        np.savez(path, **{c: table[c].to_numpy() for c in columns})
    save_side_tables(data.movies, data.tags, side_file(ratings_file))
    print(f"\n{size:,} ratings, {n_users:,} users, {n_movies:,} movies, {len(held):,} held out "
          f"(generated in {time.perf_counter() - start:.0f} s)")
    return ratings_file


def _merged(before: dict, results: list[dict], evaluations: list[dict]):
    """``before``'s model rows and evaluate runs, those measured now replaced, in size order."""
    measured = {(r["model"], r["ratings"]) for r in results}
    rows = [r for r in before.get("models", []) if (r["model"], r["ratings"]) not in measured]
    sizes = {e["size"] for e in evaluations}
    runs = [e for e in before.get("evaluate", []) if e["size"] not in sizes]
    return (sorted(rows + results, key=lambda r: r["ratings"]),
            sorted(runs + evaluations, key=lambda e: e["size"]))


def _skipped(name: str, size: int, rule: str) -> bool:
    """Whether ``--skip`` ``rule`` (``MODEL`` or ``MODEL@SIZE``) leaves ``name`` out at
    ``size``."""
    if rule == name:
        return True
    model, _, at = rule.rpartition("@")
    try:
        return model == name and int(float(at)) == size
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; generate each size, measure every model, print, plot, save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 5e6, 25e6])
    parser.add_argument("--models", nargs="+", help="default: every registered model whose "
                        "large_data settings are not None; NAME@defaults: its shipped defaults; "
                        "NAME+key=value: large_data with a change")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="MODEL or MODEL@SIZE to leave out (e.g. softmax-dnn@25e6)")
    parser.add_argument("--evaluate", type=float, nargs="*", default=[5e6],
                        help="sizes at which to time `recommender evaluate --model popularity` "
                        "against the plain pipeline (none: leave out)")
    parser.add_argument("--no-reference", action="store_true", help="leave implicit's ALS out")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per model and size")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "figures" / "scale.png")
    parser.add_argument("--json", type=Path,
                        default=ROOT / "reports" / "benchmarks" / "scale.json")
    parser.add_argument("--update", action="store_true", help="keep the figures already in "
                        "--json for the models and sizes this run does not measure (one table "
                        "from several shorter runs), and plot them all")
    parser.add_argument("--data-dir", type=Path, help="keep the generated data here and reuse "
                        "it on later runs (same sizes, same seed: the same data); default: a "
                        "temporary folder")
    parser.add_argument("--measure", nargs=2, metavar=("MODEL", "RATINGS_NPZ"),
                        help=argparse.SUPPRESS)  # the per-model child process
    parser.add_argument("--plain", nargs=2, metavar=("TRAIN", "TEST"),
                        help=argparse.SUPPRESS)  # the plain pipeline's child process
    args = parser.parse_args(argv)

    if args.measure:
        name, ratings_file = args.measure[0], Path(args.measure[1])
        result = (measure_implicit(ratings_file, args.k) if name == "implicit-als"
                  else measure_model(name, ratings_file, args.k))
        print(json.dumps(result))
        return
    if args.plain:
        print(json.dumps(plain_popularity(Path(args.plain[0]), Path(args.plain[1]), args.k)))
        return

    from recommender.models import MODELS, model_class

    names = args.models or [n for n in MODELS if model_class(n).large_data is not None]
    not_scaling = [n for n in MODELS if n not in names]
    if not args.no_reference:
        try:
            import implicit  # noqa: F401
            names.append("implicit-als")
        except ImportError:
            print("implicit is not installed (pip install -e '.[bench]'): no ALS reference")
    print(f"models: {', '.join(names)}; not run (large_data = None or not asked for): "
          f"{', '.join(not_scaling) or 'none'}")
    print(f"times are wall seconds on this machine ({os.cpu_count()} cores); memory is the "
          "peak resident set of the stage's process; val NDCG: the lists on a 10% per-user "
          f"slice held out of the fit (load average at the start {os.getloadavg()[0]:.1f})")
    results, evaluations = [], []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.data_dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for size in (int(s) for s in args.sizes):
            ratings_file = _generate(size, folder)
            n_users, n_movies = shape(size)
            print(f"  {'model':<22} {'fit s':>8} {'epoch s':>8} {'fit GiB':>8} "
                  f"{'top-k s':>8} {'top-k GiB':>9} {'fit CPU s':>9} {'top-k CPU s':>11} "
                  f"{'val NDCG':>8}")
            for name in names:
                if any(_skipped(name, size, s) for s in args.skip):
                    print(f"  {name:<22} skipped (--skip)")
                    continue
                row = {"model": name, "ratings": size, "users": n_users, "movies": n_movies,
                       **run_isolated(name, ratings_file, args.k, args.timeout)}
                results.append(row)
                if "error" in row:
                    print(f"  {name:<22} failed: {row['error']}")
                    continue
                epoch = f"{row['epoch_s']:8.2f}" if "epoch_s" in row else f"{'-':>8}"
                ndcg = f"{row['val_ndcg']:8.4f}" if "val_ndcg" in row else f"{'-':>8}"
                print(f"  {name:<22} {row['fit_s']:8.2f} {epoch} {row['fit_peak_gib']:8.2f} "
                      f"{row['top_k_s']:8.2f} {row['top_k_peak_gib']:9.2f} "
                      f"{row['fit_cpu_s']:9.2f} {row['top_k_cpu_s']:11.2f} {ndcg}", flush=True)
            if size in {int(s) for s in args.evaluate}:
                split = folder / f"split_{size}"
                split.mkdir(exist_ok=True)
                result = {"size": size, **measure_evaluate(ratings_file, split, args.timeout)}
                evaluations.append(result)
                print(f"  evaluate --model popularity on {result['ratings']:,} ratings: "
                      f"{result['evaluate_s']:.1f} s; plain pipeline {result['plain_s']:.1f} s "
                      f"({result['ratio']:.2f}x); NDCG@10 {result['ndcg']:.4f} and "
                      f"{result['plain_ndcg']:.4f}", flush=True)
    if args.update and args.json.is_file():
        results, evaluations = _merged(json.loads(args.json.read_text()), results, evaluations)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"models": results, "evaluate": evaluations}, indent=1))
    plot(results, args.plot)
    print(f"\nwrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}"
          f" and {args.plot.relative_to(ROOT) if args.plot.is_relative_to(ROOT) else args.plot}")


if __name__ == "__main__":
    main()
