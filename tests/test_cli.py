"""The command line: evaluate writes the documented JSON; bad input gives one line and exit 2."""

import json

import pytest

from recommender.cli import main

JSON_KEYS = {"model", "precision@10", "recall@10", "ndcg@10", "map@10", "hr@10",
             "coverage@10", "users", "fit_seconds"}


@pytest.fixture()
def split_files(synthetic_small, tmp_path):
    from recommender.splits import per_user_split

    train, test = per_user_split(synthetic_small.ratings, 0.2, seed=0)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    return tmp_path / "train.csv", tmp_path / "test.csv"


def test_evaluate_prints_a_table_and_writes_json(split_files, tmp_path, capsys):
    train, test = split_files
    out = tmp_path / "out" / "metrics.json"
    assert main(["evaluate", "--model", "baseline", "--train", str(train), "--test", str(test),
                 "--json", str(out), "--save-model", str(tmp_path / "artifact")]) == 0
    doc = json.loads(out.read_text())
    assert JSON_KEYS | {"rmse", "mae"} <= set(doc) and doc["model"] == "baseline"
    assert "ndcg@10" in capsys.readouterr().out
    assert (tmp_path / "artifact" / "model.json").is_file()


def test_evaluate_accepts_parameter_overrides(split_files, capsys):
    train, test = split_files
    assert main(["evaluate", "--model", "ease", "--train", str(train), "--test", str(test),
                 "--param", "l2=50"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["--model", "nope"], "unknown model 'nope'"),
    (["--model", "ease", "--param", "nonsense=1"], "unknown parameter"),
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
