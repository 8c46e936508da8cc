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
import re
import shutil
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
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


def _check_output(path: str, what: str, folder: bool = False) -> None:
    """Refuse, before anything is read or trained, an output path that cannot be written:
    a parent folder that is missing or is not a folder, or (for a saved model) an existing
    folder that is not a saved model and would be replaced."""
    target = Path(path)
    parent = target.parent
    if not parent.exists():
        raise UsageError(f"cannot write {what} to {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"cannot write {what} to {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write {what} to {path}: the folder {parent} is not writable")
    if folder and target.exists() and not (target / "model.json").is_file() and (
            not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"cannot write {what} to {path}: it exists and is not a saved model "
                         "(give a new folder, or a saved model's folder to replace)")
    if not folder and target.is_dir():
        raise UsageError(f"cannot write {what} to {path}: it is a folder")


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

    # Unwritable outputs, unknown names and bad settings fail before any data is read or
    # model trained (outputs first: checking them imports nothing).
    if args.json:
        _check_output(args.json, "the metrics")
    if args.save_model:
        _check_output(args.save_model, "the model", folder=True)
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


_SPHINX_ROLE = re.compile(r":\w+:`~?([^`]+)`")


def _plain(text: str) -> str:
    """A docstring line as a terminal shows it: no Sphinx roles, no double backquotes."""
    return _SPHINX_ROLE.sub(r"\1", text).replace("``", "")


def _aligned(rows: list[list[str]], last_width: int | None = None) -> list[str]:
    """Rows of cells as lines with aligned columns; the last cell wraps to ``last_width``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    indent = sum(widths) + 2 * len(widths)
    lines = []
    for row in rows:
        head = "".join(f"{cell:<{width}}  " for cell, width in zip(row, widths))
        tail = (textwrap.wrap(row[-1], max(last_width - indent, 30)) if last_width else
                [row[-1]]) or [""]
        lines.append(head + tail[0])
        lines += [" " * indent + more for more in tail[1:]]
    return lines


def cmd_models(args: argparse.Namespace) -> int:
    from recommender.models import MODELS, model_class, model_summary

    if args.name:
        cls = model_class(args.name)
        doc, _ = model_summary(args.name)
        does = ("predicts ratings and ranks movies" if cls.predicts_ratings else "ranks movies")
        folds = ("scores new users from their ratings without refitting" if cls.folds_in
                 else "scores only the users it was trained on")
        print(f"{args.name}: {_plain(doc)}\n{does}; {folds}\n")
        rows = cls.Settings.describe()
        if not rows:
            print("no settings")
            return 0
        table = [["setting", "type", "default", "what it does"]]
        table += [[r["name"], r["type"], r["default"] or "(none)", _plain(r["help"])]
                  for r in rows]
        print("\n".join(_aligned(table, _terminal_width())))
        first = rows[0]
        print(f"\nchange one with --param, e.g. recommender evaluate --model {args.name} "
              f"--param {first['name']}={first['default']} ...")
        return 0
    table = [["model", "task", "what it is"]]
    for name in MODELS:
        doc, predicts_ratings = model_summary(name)
        table.append([name, "ratings, top-N" if predicts_ratings else "top-N", _plain(doc)])
    print("\n".join(_aligned(table)))
    return 0


def _terminal_width() -> int:
    return max(shutil.get_terminal_size((100, 24)).columns, 60)


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
                           only=args.only, jobs=args.jobs)
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


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; every option with a default shows it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("%(default)" in text or default is None or default is False
                or default is argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def _command(sub, name: str, summary: str, description: str, examples: str):
    """A subcommand with a one-line summary (in ``recommender --help``), a description and
    examples (in ``recommender NAME --help``)."""
    return sub.add_parser(name, help=summary,
                          description=f"{summary[0].upper()}{summary[1:]}.\n\n{description}",
                          epilog="examples:\n" + textwrap.indent(examples.strip(), "  "),
                          formatter_class=_HelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recommender", formatter_class=_HelpFormatter,
        description="Movie recommendation on MovieLens: evaluate models on any split, fetch "
                    "and describe data,\nrun the notebooks into HTML reports, serve "
                    "recommendations over HTTP.",
        epilog="Run `recommender COMMAND --help` for a command's options and examples.")
    parser.add_argument("--version", action="version",
                        version=f"recommender {metadata.version('recommender')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ev = _command(sub, "evaluate", "train a model on a train CSV and evaluate it on a test CSV",
                  "Fits the model with its shipped (validation-tuned) settings, evaluates it "
                  "with the benchmark protocol\n(docs/protocol.md) and prints RMSE and MAE "
                  "(rating models), precision, recall, NDCG, MAP and hit\nrate at K, coverage, "
                  "novelty and timings. Output paths are checked before anything is fitted.",
                  """
recommender evaluate --model ease --train train.csv --test test.csv
recommender evaluate --model regression --train train.csv --test test.csv \\
    --param dim=64 --json regression.json --save-model models/regression
recommender evaluate --model feature-embedding --train train.csv --test test.csv \\
    --movies data/raw/ml-latest-small""")
    ev.add_argument("--model", required=True, help="a registered model (see `recommender models`)")
    ev.add_argument("--train", required=True, help="ratings CSV: userId,movieId,rating[,timestamp]")
    ev.add_argument("--test", required=True, help="ratings CSV with the same columns")
    ev.add_argument("--movies", help="movies.csv (or a release folder, whose tags.csv is read "
                                     "too) for the models that read content")
    ev.add_argument("--seed", type=int, default=0,
                    help="random seed of the model (initial weights, shuffles, validation slice)")
    ev.add_argument("--k", type=_positive_int, default=10, help="list length for top-N metrics")
    ev.add_argument("--param", action="append", metavar="KEY=VALUE",
                    help="override a model setting (repeatable; `recommender models NAME` lists "
                         "them)")
    ev.add_argument("--json", metavar="FILE", help="also write the metrics to this JSON file "
                                                   "(its folder must exist)")
    ev.add_argument("--save-model", metavar="FOLDER",
                    help="save the trained model to this folder (new, or a saved model's)")
    ev.set_defaults(func=cmd_evaluate)

    models = _command(sub, "models", "list the registered models, or one model's settings",
                      "Without a name: every registered model, what it predicts and what it "
                      "is. With a name: the\nmodel's settings with their types, defaults and "
                      "help, to change with `evaluate --param`.", """
recommender models
recommender models softmax-dnn""")
    models.add_argument("name", nargs="?", help="a registered model: print its settings with "
                        "their defaults and help")
    models.set_defaults(func=cmd_models)

    data = _command(sub, "data", "fetch or describe MovieLens releases",
                    "Releases live in the data folder: --data-dir, else RECOMMENDER_DATA, else "
                    "data/raw (see\nrecommender/core/config.py).", """
recommender data fetch ml-1m
recommender data describe ml-latest-small --json""")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fe = _command(data_sub, "fetch", "download, verify and extract a release",
                  "Downloads from GroupLens with a progress bar, checks the published MD5, "
                  "extracts safely\nthrough a temporary folder; a release already present is "
                  "skipped.", "recommender data fetch ml-latest-small")
    fe.add_argument("name", help="a release: ml-latest-small, ml-100k, ml-1m, ml-10m, ml-20m, "
                                 "ml-25m, ml-32m, ml-latest")
    fe.add_argument("--data-dir", help="target folder (default: RECOMMENDER_DATA or data/raw)")
    fe.add_argument("--force", action="store_true", help="download again even if present")
    fe.set_defaults(func=cmd_fetch)
    de = _command(data_sub, "describe", "counts, rating scale and sparsity of a release",
                  "Reads any MovieLens layout (folder or zip) and prints what it holds.",
                  "recommender data describe ml-latest-small\n"
                  "recommender data describe path/to/ml-1m.zip --json")
    de.add_argument("name", help="release name or path to a folder/zip")
    de.add_argument("--data-dir", help="folder holding the releases (default: RECOMMENDER_DATA "
                                       "or data/raw)")
    de.add_argument("--json", action="store_true", help="print JSON instead of a table")
    de.set_defaults(func=cmd_describe)

    run = _command(sub, "run", "execute every notebook and write the HTML reports",
                   "Runs notebooks/NN_*.ipynb in order with papermill, exports each to "
                   "reports/NN_*.html and writes\nreports/index.html. A failed notebook stops "
                   "the run and leaves the last good reports untouched.", """
recommender run                      # what `make run` does
recommender run --quick              # synthetic data, a minute or two
recommender run --only 01 07 --seed 1""")
    run.add_argument("--dataset", default="ml-latest-small",
                     help="a MovieLens release (fetched if missing) or 'synthetic'")
    run.add_argument("--jobs", type=_positive_int, default=2,
                     help="notebooks run at once (the comparison last, after the others); "
                          "default 2")
    run.add_argument("--data-dir", help="folder holding the releases (default: "
                                        "RECOMMENDER_DATA or data/raw)")
    run.add_argument("--split-dir", help="folder with train.csv and test.csv (default: the "
                                         "fixed benchmark split when there is one, else a "
                                         "seeded per-user 20%% split)")
    run.add_argument("--quick", action="store_true", help="synthetic data, few epochs")
    run.add_argument("--seed", type=int, default=0, help="random seed passed to every notebook")
    run.add_argument("--only", nargs="+", metavar="PREFIX", help="run only these notebooks, "
                                                                 "e.g. --only 01 07")
    run.set_defaults(func=cmd_run)

    se = _command(sub, "serve", "the REST API and web page (needs the serve extra)",
                  "Serves recommendations, similar movies and predicted ratings over HTTP, with "
                  "a web page at /;\nratings added through the API are stored and used at once "
                  "(see docs/serving.md).", """
recommender serve                       # http://127.0.0.1:8000/
recommender serve --list-model softmax-dnn --workers 2""")
    se.add_argument("--dataset", default="ml-latest-small", help="release name or folder/zip")
    se.add_argument("--data-dir", help="folder holding the releases (default: "
                                       "RECOMMENDER_DATA or data/raw)")
    se.add_argument("--artifacts", help="folder of saved models (default: reports/artifacts, "
                                        "else the models are fitted at start-up)")
    se.add_argument("--list-model", default="ease-rated", help="ranks lists and similar movies")
    se.add_argument("--rating-model", default="baseline", help="predicts ratings")
    se.add_argument("--database", help="SQLite path or postgresql:// URL "
                                       "(default: data/processed/serve-<dataset>.sqlite3)")
    se.add_argument("--host", default="127.0.0.1", help="address to listen on")
    se.add_argument("--port", type=int, default=8000, help="port to listen on")
    se.add_argument("--workers", type=int, default=1,
                    help="server processes sharing the store (each holds the models)")
    se.add_argument("--list-cache-mb", type=float, default=64.0,
                    help="memory per process for recommendation lists kept until the user's "
                         "ratings change (0 computes every list)")
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
