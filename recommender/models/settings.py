"""Typed model settings: one class per model holds each setting's type, allowed values,
bounds, default and one-line help, so values are checked once, when a model is made.

A model declares ``Settings = MySettings``, a subclass of :class:`Settings` (a frozen
pydantic model: ``dim: int = Field(64, ge=1, description="...")``). Python values are
checked strictly (``True`` is not a number, ``"4"`` is not an int); text from the command
line (``--param dim=32``) is parsed by :meth:`Settings.from_text`. Every problem is one
:class:`~recommender.core.errors.SettingError` line naming the model and the setting.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from recommender.core.errors import SettingError

__all__ = ["Settings", "Sizes", "Names", "NoSettings", "TowerSettings"]


def _as_tuple(value: Any) -> Any:
    """Lists (from JSON) and comma-separated text (``"64,32"``) as tuples; others unchanged."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[,\s]+", value.strip().strip("[]()")) if part)
    return value


# Layer sizes and other whole-number sequences: ``(256, 128)``, ``[256, 128]`` or "256,128".
Sizes = Annotated[tuple[int, ...], BeforeValidator(_as_tuple)]
# Sequences of names (a blend's member models): ``("bpmf", "ease")`` or "bpmf,ease".
Names = Annotated[tuple[str, ...], BeforeValidator(_as_tuple)]


class Settings(BaseModel):
    """Base of every model's settings: frozen, no unknown names, strict types."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)

    @classmethod
    def of(cls, model: str, values: dict[str, Any]) -> "Settings":
        """Validated settings of ``model`` from Python values (defaults for the rest)."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingError(_one_line(model, cls, exc)) from None

    @classmethod
    def from_text(cls, model: str, text: dict[str, str]) -> dict[str, Any]:
        """Typed values from ``key=value`` text (the command line's ``--param``): booleans from
        true/false (yes/no, 1/0), numbers, sequences from comma-separated items, text as is.

        Returns only the keys given, so they can be merged with other overrides.
        """
        unknown = sorted(set(text) - set(cls.model_fields))
        if unknown:
            raise SettingError(_unknown(model, cls, unknown))
        try:
            parsed = cls.model_validate(text, strict=False)  # text is parsed, not type-checked
        except ValidationError as exc:
            raise SettingError(_one_line(model, cls, exc)) from None
        return {key: getattr(parsed, key) for key in text}

    def replace(self, model: str, **changes: Any) -> "Settings":
        """A copy with ``changes`` applied and checked like new settings."""
        return type(self).of(model, {**self.model_dump(), **changes})

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name, as saved with an artifact (sequences as lists)."""
        return self.model_dump(mode="json")

    @classmethod
    def describe(cls) -> list[dict[str, str]]:
        """One row per setting, the model's own first: ``name``, ``type``, ``default`` and
        ``help`` (with the allowed values of a choice), for ``recommender models NAME``."""
        order: list[str] = []  # the model's own settings first, then its bases', in turn
        for klass in cls.__mro__:
            order += [name for name in vars(klass).get("__annotations__", {})
                      if name in cls.model_fields and name not in order]
        rows = []
        for name in order:
            field = cls.model_fields[name]
            kind, help_text = getattr(field.annotation, "__name__", "value"), field.description
            if get_origin(field.annotation) is Literal:
                kind = "choice"
                help_text += f" ({', '.join(map(str, get_args(field.annotation)))})"
            elif _is_sequence(cls, name):
                kind = "names" if "str" in str(field.annotation) else "sizes"
            default = field.default
            shown = (",".join(map(str, default)) if isinstance(default, tuple)
                     else str(default).lower() if isinstance(default, bool) else str(default))
            rows.append({"name": name, "type": kind, "default": shown, "help": help_text or ""})
        return rows


class NoSettings(Settings):
    """Settings of a model that has none."""


class TowerSettings(Settings):
    """The training settings every model of the shared loop has."""

    epochs: int = Field(30, ge=1, description="most epochs; early stopping picks the count")
    batch_size: int = Field(1024, ge=1, description="examples per step")
    learning_rate: float = Field(1e-3, gt=0, description="Adam's step size")
    patience: int = Field(3, ge=1, description="epochs without a better validation metric "
                          "before stopping")
    validation: float = Field(0.1, ge=0, lt=1, description="share of train held out to early-"
                              "stop on (0: none, train every epoch)")
    refit: bool = Field(True, description="retrain on all of train for the best epoch count")
    progress: bool = Field(False, description="show a progress bar per epoch")
    epoch_fraction: float = Field(1.0, gt=0, le=1, description="share of the training "
                                  "examples an epoch draws afresh (1: every example)")


def _is_sequence(cls: type[Settings], key: str) -> bool:
    return "tuple" in str(cls.model_fields[key].annotation)


def _unknown(model: str, cls: type[Settings], names: list[str]) -> str:
    return (f"{model}: unknown setting(s) {', '.join(names)}; known: "
            f"{', '.join(cls.model_fields) or 'none'}")


def _one_line(model: str, cls: type[Settings], exc: ValidationError) -> str:
    """The first problem of a validation error as one line a person can act on."""
    errors = exc.errors(include_url=False)
    extra = [str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        return _unknown(model, cls, sorted(extra))
    error = errors[0]
    where = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
    message = error["msg"].replace("Value error, ", "")
    if where:
        return f"{model}: setting {where}: {message} (got {error['input']!r})"
    return f"{model}: {message}"
