"""The ``recommender`` command: evaluate models, fetch and describe data, run the notebooks.

Bad input exits with status 2 and one line saying what was wrong, a failed run with status 1
and one line; only a bug shows a traceback. TensorFlow is imported only by the models that
use it, and quietly (see :mod:`recommender.core.quiet`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from recommender.core.errors import RecommenderError, UsageError

__all__ = ["main"]

TOPN_KEYS = ("precision@10", "recall@10", "ndcg@10", "map@10", "hr@10", "coverage@10")


def _split_params(pairs: list[str] | None) -> dict[str, str]:
    """``key=value`` pairs as text; the model's settings parse them (``Settings.from_text``)."""
    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {pair!r}: expected key=value")
        params[key.strip()] = value
    return params


def _positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return value


@contextlib.contextmanager
def _writing(path: str, what: str) -> Iterator[None]:
    """Turn a file-system error while writing ``what`` to ``path`` into one line."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot write {what} to {path}: {reason}") from None


def _format_table(rows: dict) -> str:
    width = max(len(k) for k in rows)
    lines = []
    for key, value in rows.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recommender.data import load_movielens, read_ratings
    from recommender.evaluation.protocol import fit_and_evaluate
    from recommender.models import model_class
    from recommender.core.files import atomic_write_text

    # Unknown names and bad settings fail before any data is read or model trained.
    cls = model_class(args.model)
    settings = cls.Settings.from_text(cls.name, _split_params(args.param))
    train, test = read_ratings(args.train), read_ratings(args.test)
    movies = tags = None
    if args.movies:
        source = Path(args.movies)
        data = load_movielens(source.parent if source.is_file() else source)
        movies, tags = data.movies, data.tags
    model, result = fit_and_evaluate(args.model, train, test, movies=movies, tags=tags,
                                     seed=args.seed, k=args.k, **settings)
    out = {"model": args.model, **result.metrics}
    print(_format_table(out))
    if args.json:
        with _writing(args.json, "the metrics"):
            atomic_write_text(Path(args.json), json.dumps(out, indent=2))
    if args.save_model:
        with _writing(args.save_model, "the model"):
            model.save(args.save_model)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from recommender.models import MODELS, model_class, model_summary

    if args.name:
        cls = model_class(args.name)
        doc, _ = model_summary(args.name)
        print(f"{args.name}: {doc}\n")
        rows = cls.Settings.describe()
        if not rows:
            print("no settings")
        widths = {key: max([len(key)] + [len(row[key]) for row in rows])
                  for key in ("name", "type", "default")}
        for row in [{"name": "setting", "type": "type", "default": "default",
                     "help": "what it does"}] * bool(rows) + rows:
            print("  ".join(f"{row[key]:<{widths[key]}}" for key in widths) + "  " + row["help"])
        return 0
    for name in MODELS:
        doc, predicts_ratings = model_summary(name)
        kind = "ratings + top-N" if predicts_ratings else "top-N"
        print(f"{name:<16} {kind:<16} {doc}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from recommender.data.fetch import fetch

    path = fetch(args.name, data_dir=args.data_dir, force=args.force)
    print(path)
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from recommender.data.releases import load_movielens

    info = load_movielens(args.name, args.data_dir).describe()
    print(json.dumps(info, indent=2) if args.json else _format_table(info))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from recommender.core.config import shown
    from recommender.reporting.runner import run_notebooks

    result = run_notebooks(dataset=args.dataset, data_dir=args.data_dir,
                           split_dir=args.split_dir, quick=args.quick, seed=args.seed,
                           only=args.only)
    index = shown(result.reports_dir / "index.html")
    print(f"{len(result.notebooks)} notebooks in {result.seconds:.0f} s; open {index}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from recommender.serve.server import is_private, limits, serve
        from recommender.serve.service import ServeConfig
    except ImportError as exc:
        raise UsageError(f"serving needs the serve extra ({exc.name} is missing): "
                         f"pip install -e '.[serve]' or make serve") from None
    if args.write_token is not None:
        raise UsageError("--write-token is gone: a token on the command line is visible to "
                         "every user of the machine (ps); put the operator token in "
                         "RECOMMENDER_OPERATOR_TOKEN or in a file named by "
                         "--operator-token-file")
    config = ServeConfig(dataset=args.dataset, data_dir=args.data_dir,
                         artifacts=Path(args.artifacts) if args.artifacts else None,
                         list_model=args.list_model, rating_model=args.rating_model,
                         database=args.database, list_cache_mb=args.list_cache_mb)
    allowed_hosts = tuple(args.allowed_host or ())
    rate_limits = limits(args.rate_limit, args.signups_per_hour,
                         is_private(args.host, allowed_hosts))
    serve(config, host=args.host, port=args.port, workers=args.workers,
          operator_token_file=args.operator_token_file,
          allowed_hosts=allowed_hosts, rate_limits=rate_limits)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="train on a train CSV, evaluate on a test CSV")
    ev.add_argument("--model", required=True, help="a registered model (see `recommender models`)")
    ev.add_argument("--train", required=True, help="ratings CSV: userId,movieId,rating[,timestamp]")
    ev.add_argument("--test", required=True, help="ratings CSV with the same columns")
    ev.add_argument("--movies", help="movies.csv (or a release folder) for content features")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--k", type=_positive_int, default=10, help="list length for top-N metrics")
    ev.add_argument("--param", action="append", metavar="KEY=VALUE",
                    help="override a model setting (repeatable; `recommender models NAME` lists "
                         "them)")
    ev.add_argument("--json", help="also write the metrics to this JSON file")
    ev.add_argument("--save-model", help="save the trained model to this artifact folder")
    ev.set_defaults(func=cmd_evaluate)

    models = sub.add_parser("models", help="list the registered models, or one model's settings")
    models.add_argument("name", nargs="?", help="a registered model: print its settings with "
                        "their defaults and help")
    models.set_defaults(func=cmd_models)

    data = sub.add_parser("data", help="fetch or describe MovieLens releases")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fe = data_sub.add_parser("fetch", help="download, verify and extract a release")
    fe.add_argument("name")
    fe.add_argument("--data-dir", help="target folder (default: RECOMMENDER_DATA or data/raw)")
    fe.add_argument("--force", action="store_true", help="download again even if present")
    fe.set_defaults(func=cmd_fetch)
    de = data_sub.add_parser("describe", help="counts, rating scale and sparsity")
    de.add_argument("name", help="release name or path to a folder/zip")
    de.add_argument("--data-dir")
    de.add_argument("--json", action="store_true")
    de.set_defaults(func=cmd_describe)

    run = sub.add_parser("run", help="execute every notebook and write reports/")
    run.add_argument("--dataset", default="ml-latest-small")
    run.add_argument("--data-dir")
    run.add_argument("--split-dir", help="folder with train.csv and test.csv")
    run.add_argument("--quick", action="store_true", help="synthetic data, few epochs")
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--only", nargs="+", metavar="PREFIX", help="e.g. --only 01 07")
    run.set_defaults(func=cmd_run)

    se = sub.add_parser("serve", help="the REST API and web page (needs the serve extra)")
    se.add_argument("--dataset", default="ml-latest-small", help="release name or folder/zip")
    se.add_argument("--data-dir")
    se.add_argument("--artifacts", help="folder of saved models (default: reports/artifacts, "
                                        "else the models are fitted at start-up)")
    se.add_argument("--list-model", default="ease-rated", help="ranks lists and similar movies")
    se.add_argument("--rating-model", default="baseline", help="predicts ratings")
    se.add_argument("--database", help="SQLite path or postgresql:// URL "
                                       "(default: data/processed/serve-<dataset>.sqlite3)")
    se.add_argument("--host", default="127.0.0.1")
    se.add_argument("--port", type=int, default=8000)
    se.add_argument("--workers", type=int, default=1,
                    help="server processes sharing the store (each holds the models)")
    se.add_argument("--list-cache-mb", type=float, default=64.0,
                    help="memory per process for recommendation lists kept until the user's "
                         "ratings change (default 64; 0 computes every list)")
    se.add_argument("--allowed-host", action="append", metavar="NAME",
                    help="a Host name clients use (repeatable; needed beyond loopback; makes "
                         "the server public: reads need the user's secret, limits on)")
    se.add_argument("--operator-token-file", metavar="PATH",
                    help="a file (mode 600) holding the operator token, which may read and "
                         "write every user (default: RECOMMENDER_OPERATOR_TOKEN, if set)")
    se.add_argument("--rate-limit", type=float, metavar="PER_SECOND",
                    help="requests per second per client and process, 0 for none "
                         "(default: 20 for a public server, none for a private one)")
    se.add_argument("--signups-per-hour", type=float,
                    help="new users per hour per client and process, 0 for no limit "
                         "(default: 20 for a public server, none for a private one)")
    se.add_argument("--write-token", help=argparse.SUPPRESS)  # refused: see cmd_serve
    se.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``recommender`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe (`recommender models | head`) surfaces here
        return status
    except RecommenderError as exc:
        print(f"recommender: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, (ValueError, KeyError)) else 1
    except KeyboardInterrupt:
        print("recommender: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away: stop quietly, and keep Python's exit-time flush quiet too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
