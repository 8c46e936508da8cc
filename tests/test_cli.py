"""The command line: evaluate writes the documented JSON; bad input gives one line and exit 2."""

import json
import os
import subprocess
import sys

import pytest

from recommender.cli import main
from recommender.models import MODELS

JSON_KEYS = {"model", "precision@10", "recall@10", "ndcg@10", "map@10", "hr@10",
             "coverage@10", "users", "fit_seconds"}


@pytest.fixture()
def split_files(synthetic_small, tmp_path):
    from recommender.data.splits import per_user_split

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return tmp_path / "train.csv", tmp_path / "test.csv"


def test_evaluate_prints_a_table_and_writes_json(split_files, tmp_path, capsys):
    train, test = split_files
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--model", "baseline", "--train", str(train), "--test", str(test),
                 "--json", str(out), "--save-model", str(tmp_path / "artifact")]) == 0
    doc = json.loads(out.read_text())
    assert JSON_KEYS | {"rmse", "mae"} <= set(doc) and doc["model"] == "baseline"
    assert "ndcg@10" in capsys.readouterr().out
    assert (tmp_path / "artifact" / "model.json").is_file()


def test_evaluate_accepts_setting_overrides(split_files, capsys):
    train, test = split_files
    assert main(["evaluate", "--model", "ease", "--train", str(train), "--test", str(test),
                 "--param", "l2=50"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--model", "ease", "--param", "nonsense=1"], "ease: unknown setting(s) nonsense"),
    (["--model", "ease", "--param", "novalue"], "expected key=value"),
])
def test_evaluate_bad_arguments_exit_2_with_one_line(argv, message, split_files, capsys):
    train, test = split_files
    code = main(["evaluate", "--train", str(train), "--test", str(test), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_evaluate_bad_file_names_file_line_and_column(split_files, tmp_path, capsys):
    _, test = split_files
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating\n1,2,3.0\n1,3,9\n")
    code = main(["evaluate", "--model", "baseline", "--train", str(bad), "--test", str(test)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "bad.csv, line 3, column rating" in err and len(err.splitlines()) == 1


def test_data_describe_json(tmp_path, synthetic_small, capsys):
    folder = tmp_path / "tiny"
    folder.mkdir()
    synthetic_small.ratings.to_csv(folder / "ratings.csv", index=False)
    movies = synthetic_small.movies.assign(genres=synthetic_small.movies.genres.str.join("|"))
    movies[["movieId", "title", "genres"]].to_csv(folder / "movies.csv", index=False)
    assert main(["data", "describe", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ratings"] == len(synthetic_small.ratings) and 0 < info["sparsity"] < 1


def test_data_describe_unknown_release_says_how_to_fetch(tmp_path, capsys):
    assert main(["data", "describe", "ml-1m", "--data-dir", str(tmp_path)]) == 2
    assert "recommender data fetch ml-1m" in capsys.readouterr().err


# -- what a terminal shows: subprocesses, as a user runs the command -------------------------

TF_STARTUP = ("absl::InitializeLog", "oneDNN", "cuda", "cpu_feature_guard", "TensorRT")


def _recommender(*args, **kwargs) -> subprocess.CompletedProcess:
    code = "import sys; from recommender.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=300, **kwargs)


@pytest.mark.slow  # a CLI subprocess, end to end
def test_bad_input_to_a_numpy_model_is_one_line_and_never_imports_tensorflow(split_files,
                                                                              tmp_path):
    _, test = split_files
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating\n1,2,3.0\n1,3,9\n")
    done = _recommender("evaluate", "--model", "popularity", "--train", bad, "--test", test)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"recommender: error: {bad}, line 3, column rating: "
                                        "9 is outside the rating scale 0.5-5"]
    code = ("import sys; from recommender.cli import main; "
            f"main(['evaluate', '--model', 'popularity', '--train', {str(test)!r}, "
            f"'--test', {str(test)!r}]); main(['models']); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ndcg@10" in done.stdout and "softmax" in done.stdout


@pytest.mark.slow  # a CLI subprocess, end to end
def test_a_tensorflow_model_prints_no_start_up_log(split_files):
    train, test = split_files
    done = _recommender("evaluate", "--model", "softmax-dnn", "--train", train, "--test", test,
                        "--param", "epochs=1", "--param", "refit=false")
    assert done.returncode == 0, done.stderr
    assert "ndcg@10" in done.stdout
    assert not [line for line in done.stderr.splitlines() if any(s in line for s in TF_STARTUP)]


@pytest.mark.slow  # a CLI subprocess, end to end
def test_models_into_a_closed_pipe_prints_no_traceback():
    read, write = os.pipe()
    os.close(read)  # the reader (`| head`) is gone before anything is written
    code = "import sys; from recommender.cli import main; sys.exit(main(['models']))"
    done = subprocess.run([sys.executable, "-c", code], stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write)
    assert done.stderr == "" and done.returncode != 0


# Run in a fresh interpreter, where no model module is imported yet, so that model_summary
# takes the path `recommender models` takes: reading each model's source, not its class.
LIST_MODELS = """
import contextlib, io, json, sys
from recommender.cli import main
from recommender.models import MODELS, model_summary
modules = sorted({entry.split(":")[0] for entry in MODELS.values()})
before = [m for m in modules if m in sys.modules]
summaries = {name: model_summary(name) for name in MODELS}
listing = io.StringIO()
with contextlib.redirect_stdout(listing):
    code = main(["models"])
print(json.dumps({"before": before, "after": [m for m in modules if m in sys.modules],
                  "tensorflow": "tensorflow" in sys.modules, "summaries": summaries,
                  "code": code, "listing": listing.getvalue()}))
"""


@pytest.fixture(scope="module")
def listed_from_source() -> dict:
    """One interpreter without TensorFlow (about a second): kept in the fast suite, the only
    check of the source-reading path."""
    done = subprocess.run([sys.executable, "-c", LIST_MODELS], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_listing_models_reads_their_sources_and_imports_no_tensorflow(listed_from_source):
    listed = listed_from_source
    assert listed["before"] == [] and listed["after"] == []  # no model module was imported
    assert not listed["tensorflow"] and listed["code"] == 0
    header, *lines = listed["listing"].splitlines()
    assert header.split() == ["model", "task", "what", "it", "is"]
    assert [line.split()[0] for line in lines] == list(listed["summaries"]) == list(MODELS)
    for line, (doc, _) in zip(lines, listed["summaries"].values()):
        assert line.endswith(doc)


def test_model_summaries_are_whole_sentences_in_aligned_columns(listed_from_source):
    header, *lines = listed_from_source["listing"].splitlines()
    column = header.index("what it is")
    for line, (doc, _) in zip(lines, listed_from_source["summaries"].values()):
        assert line[column:] == doc and line[column - 2:column] == "  ", line
        assert doc[0].isupper() and doc.endswith("."), f"not a whole sentence: {doc!r}"
        assert "``" not in doc and ":class:" not in doc and ":func:" not in doc, doc


@pytest.mark.parametrize("name", list(MODELS))
def test_model_summary_from_source_is_what_the_class_says(name, listed_from_source):
    from recommender.models import model_class

    cls = model_class(name)  # imported here, in this process, after the listing
    first_line = (cls.__doc__ or "").strip().splitlines()[0]
    assert listed_from_source["summaries"][name] == [first_line, cls.predicts_ratings]


# -- settings, list length, where results go --------------------------------------------------

def test_text_settings_take_the_type_of_the_setting():
    from recommender.models import model_class

    settings = model_class("softmax-dnn").Settings
    parse = lambda text: settings.from_text("softmax-dnn", text)  # noqa: E731
    assert parse({"refit": "False", "epochs": "3", "learning_rate": "1e-3",
                  "hidden": "64,32", "loss": "in-batch"}) == {
        "refit": False, "epochs": 3, "learning_rate": 0.001, "hidden": (64, 32),
        "loss": "in-batch"}
    assert parse({"refit": "yes", "hidden": "[128]"}) == {"refit": True, "hidden": (128,)}


@pytest.mark.parametrize("param, message", [
    ("refit=maybe", "setting refit: Input should be a valid boolean"),
    ("epochs=2.5", "setting epochs: Input should be a valid integer"),
    ("learning_rate=lots", "setting learning_rate: Input should be a valid number"),
    ("learning_rate=-1", "setting learning_rate: Input should be greater than 0"),
    ("learning_rate=nan", "setting learning_rate: Input should be a finite number"),
    ("bogus=1", "unknown setting(s) bogus"),
    ("=1", "expected key=value"),
])
def test_bad_settings_are_refused_in_one_line(param, message, split_files, capsys):
    train, test = split_files
    code = main(["evaluate", "--model", "softmax-dnn", "--train", str(train), "--test",
                 str(test), "--param", param])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("model, params, message", [
    ("feature-embedding", [], "needs the movies table"),
    ("tag-text", [], "needs the tags table"),
    ("multitask", ["--param", "preset=foo"], "multitask: setting preset"),
    ("softmax-dnn", ["--param", "loss=foo"], "softmax-dnn: setting loss: Input should be 'full'"),
    ("content", [], "content needs the movies table"),
    ("content-ridge", [], "content-ridge needs the movies table"),
    ("regression", ["--param", "optimizer=foo"], "regression: setting optimizer"),
])
def test_every_model_reports_bad_settings_and_missing_tables_in_one_line(
        model, params, message, split_files, capsys):
    """What a user gets wrong about a model's settings or side tables is one line, exit 2."""
    train, test = split_files
    code = main(["evaluate", "--model", model, "--train", str(train), "--test", str(test),
                 *params])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("k", ["0", "-3", "ten"])
def test_k_below_one_is_refused(k, split_files, capsys):
    train, test = split_files
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "popularity", "--train", str(train), "--test", str(test),
              "--k", k])
    assert exit_info.value.code == 2
    assert "--k" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--json", "--save-model"])
def test_unwritable_outputs_are_one_line(option, split_files, tmp_path, capsys):
    train, test = split_files
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = main(["evaluate", "--model", "popularity", "--train", str(train), "--test", str(test),
                 option, str(blocker / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cannot write" in err, err


# -- what --help, --version and `models NAME` show; outputs checked before any fit ----------

@pytest.mark.slow  # CLI subprocesses, end to end
def test_every_command_has_a_description_examples_and_its_defaults():
    top = _recommender("--help")
    assert top.returncode == 0
    for command in ("evaluate", "models", "data", "run", "serve"):
        assert command in top.stdout
        page = _recommender(command, "--help").stdout
        assert "examples:" in page and f"recommender {command}" in page.split("examples:")[1]
    evaluate = _recommender("evaluate", "--help").stdout
    assert "--seed SEED" in evaluate and "(default: 0)" in evaluate
    assert "(default: 10)" in evaluate  # --k
    run = _recommender("run", "--help").stdout
    assert "(default: 0)" in run and "(default: ml-latest-small)" in run
    from recommender.data.releases import RELEASES

    fetch = " ".join(_recommender("data", "fetch", "--help").stdout.split())
    assert all(name in fetch for name in RELEASES)
    from importlib import metadata

    version = _recommender("--version")
    assert version.stdout.strip() == f"recommender {metadata.version('recommender')}"


@pytest.mark.slow  # a CLI subprocess, end to end
def test_models_name_shows_what_the_model_does_and_its_settings():
    done = _recommender("models", "ease")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ease: Embarrassingly Shallow Autoencoder")
    assert "scores new users from their ratings" in lines[1]
    header = next(line for line in lines if line.startswith("setting"))
    assert header.split()[:3] == ["setting", "type", "default"]
    assert any(line.split()[:3] == ["l2", "float", "200.0"] for line in lines)
    assert "--param" in lines[-1]


@pytest.mark.slow  # CLI subprocesses, end to end
@pytest.mark.parametrize("option, path, message", [
    ("--json", "{tmp}/missing/dir/x.json", "the folder {tmp}/missing/dir does not exist"),
    ("--json", "/dev/null/x.json", "/dev/null is not a folder"),
    ("--save-model", "{tmp}/missing/model", "the folder {tmp}/missing does not exist"),
    ("--save-model", "{tmp}/notes", "it exists and is not a saved model (give a new folder, "
                                    "or a saved model's folder to replace)"),
])
def test_an_unwritable_output_stops_the_run_before_anything_is_fitted(
        option, path, message, split_files, tmp_path):
    train, test = split_files
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    target = path.format(tmp=tmp_path)
    done = _recommender("evaluate", "--model", "softmax-dnn", "--train", train, "--test", test,
                        option, target)
    assert done.returncode == 2 and done.stdout == ""  # no table: nothing was fitted
    assert done.stderr.splitlines() == [f"recommender: error: cannot write "
                                        f"{'the metrics' if option == '--json' else 'the model'}"
                                        f" to {target}: {message.format(tmp=tmp_path)}"]
    assert not (tmp_path / "missing").exists()  # no folder made on the way
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


@pytest.mark.slow  # a CLI subprocess, end to end
def test_outputs_are_readable_by_others_as_ordinary_files(split_files, tmp_path):
    train, test = split_files
    done = _recommender("evaluate", "--model", "popularity", "--train", train, "--test", test,
                        "--json", tmp_path / "m.json", "--save-model", tmp_path / "model")
    assert done.returncode == 0, done.stderr
    umask = os.umask(0)
    os.umask(umask)
    mode = lambda p: (tmp_path / p).stat().st_mode & 0o777  # noqa: E731
    assert mode("m.json") == mode("model/model.json") == mode("model/arrays.npz") == 0o666 & ~umask
    assert mode("model") == 0o777 & ~umask


def test_a_bug_is_not_disguised_as_bad_input(split_files, monkeypatch):
    import recommender.evaluation.protocol as evaluation

    def broken(*args, **kwargs):
        raise TypeError("a programming error")

    monkeypatch.setattr(evaluation, "fit_and_evaluate", broken)
    train, test = split_files
    with pytest.raises(TypeError, match="a programming error"):
        main(["evaluate", "--model", "popularity", "--train", str(train), "--test", str(test)])


def test_quiet_import_drops_tensorflow_start_up_lines_and_keeps_the_rest(capfd):
    from recommender.core.quiet import captured_stderr

    with captured_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\n")
        os.write(2, b"I0000 00:00:1795602183.837289    7898 port.cc:153] oneDNN custom "
                    b"operations are on.\n")
        os.write(2, b"E0000 00:00:1795602188.947974    7898 cuda_platform.cc:52] failed call "
                    b"to cuInit: INTERNAL\n")
        os.write(2, b"E0000 00:00:1.0 1 real_problem.cc:1] something actually broke\n")
    assert capfd.readouterr().err == "E0000 00:00:1.0 1 real_problem.cc:1] something actually broke\n"
