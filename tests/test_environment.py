"""environment.yml (conda) and pyproject.toml (pip) install the same thing."""

import re
import tomllib

import yaml

from recommender.core.config import PROJECT_ROOT


def test_environment_yml_pins_what_pyproject_pins():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((PROJECT_ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))

    python = next(d for d in conda if d.startswith("python"))
    assert python == "python=3.11" and project["requires-python"] == ">=3.11,<3.12"
    pins = [p for p in pip if not p.startswith("-e")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+(\[\w+\])?==[\w.]+", p) for p in pins), pins
    assert sorted(pins) == sorted(project["dependencies"]
                                  + project["optional-dependencies"]["dev"]
                                  + project["optional-dependencies"]["serve"])
    assert "-e ." in pip  # the package itself, whose dependencies are the same pins
