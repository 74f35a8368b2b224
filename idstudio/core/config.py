"""Job configs are dataclasses: defaults -> file (JSON or TOML) -> flags.

Each field may carry ``metadata={"help": ..., "choices": [...], "group": ...}``. The CLI's
flags and the GUI's form are both generated from the fields, so there is one copy of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from idstudio.core.errors import UserError

T = TypeVar("T")


def field(default: Any, help: str, choices: list[Any] | None = None, group: str = "General",
          special: tuple[Any, str] | None = None, **kw):
    """A dataclass field with the help text and choices that the CLI and GUI show.

    ``special=(value, word)``: the one value that means something other than a number or a
    name (``(-1, "auto")``, ``(0, "never")``, ``("", "all")``). Forms show the word, never the
    value; the CLI takes the word as well as the value."""
    meta = {"help": help, "group": group}
    if choices is not None:
        meta["choices"] = list(choices)
    if special is not None:
        meta["special"] = tuple(special)
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def field_type(cls: type, f: dataclasses.Field) -> Any:
    hints = typing.get_type_hints(cls)
    return hints[f.name]


def base_type(tp: Any) -> Any:
    """int | None -> int; list[int] -> list."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return base_type(args[0])
    return origin or tp


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}
    # read-only facts a job writes beside its settings (e.g. the start a run used)
    data = {k: v for k, v in data.items() if k not in getattr(cls, "INFO_KEYS", ())}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UserError(f"Unknown config key(s) {', '.join(unknown)}; valid keys are {', '.join(sorted(names))}.")
    merged = to_dict(cls())
    merged.update(data)
    return coerce(cls, merged)


def coerce(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from ``data``, converting values to the field types with clear errors."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        base = base_type(field_type(cls, f))
        special = f.metadata.get("special")
        if special is not None and isinstance(value, str) and value.strip() == special[1]:
            value = special[0]
        try:
            if value is None:
                pass
            elif base is bool and isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes", "on")
            elif base is list and isinstance(value, str):
                inner = typing.get_args(field_type(cls, f))
                item = inner[0] if inner and inner[0] is not type(None) else str
                value = [base_type(item)(v) for v in value.replace(",", " ").split()]
            elif base in (int, float, str, bool):
                value = base(value)
        except (TypeError, ValueError):
            raise UserError(f"Config value {f.name}={data[f.name]!r} is not a valid {getattr(base, '__name__', base)}.") from None
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise UserError(f"Config value {f.name}={value!r} is not one of {', '.join(map(str, choices))}.")
        values[f.name] = value
    return cls(**values)


def load_file(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot read config file {path}: {exc.strerror}.") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"Config file {path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}.") from None


def save(config: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(config), indent=2) + "\n", encoding="utf-8")


def ordered_fields(cls: type) -> list[dataclasses.Field]:
    """The fields grouped, as the CLI help and the GUI form show them: groups in the order of
    the class's ``GROUPS`` where it has one (a dataclass lists inherited fields first), else
    in order of first appearance; fields keep their order within a group."""
    fields = dataclasses.fields(cls)
    order = list(getattr(cls, "GROUPS", ()))
    for f in fields:
        if f.metadata.get("group", "General") not in order:
            order.append(f.metadata.get("group", "General"))
    return sorted(fields, key=lambda f: order.index(f.metadata.get("group", "General")))


def add_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per field; the value stays None unless given, so file values survive."""
    for f in ordered_fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        base = base_type(field_type(cls, f))
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        if base is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif base is list:
            parser.add_argument(flag, dest=f.name, default=None, help=help_text + "; comma-separated")
        else:
            special = f.metadata.get("special")
            kind = base if base in (int, float) else str
            if special is not None and base in (int, float):
                kind = _or_word(base, special[1])
                help_text += f"; {special[1]}: {special[0]}"
            parser.add_argument(flag, dest=f.name, default=None, help=help_text, choices=f.metadata.get("choices"),
                                type=kind)


def _or_word(base: type, word: str):
    """An argparse type: a number, or the field's special word (``--augment auto``)."""
    def parse(text: str):
        return base(text) if text.strip() != word else word
    parse.__name__ = base.__name__
    return parse


def build(cls: type[T], config_file: Path | None = None, flags: argparse.Namespace | dict | None = None) -> T:
    """defaults -> file -> flags."""
    return from_dict(cls, given(cls, config_file, flags))


def given(cls: type, config_file: Path | None = None, flags: argparse.Namespace | dict | None = None) -> dict[str, Any]:
    """Only the values given in the file and as flags (flags win), without the defaults."""
    data: dict[str, Any] = {}
    if config_file is not None:
        data.update(load_file(config_file))
    if flags is not None:
        flag_values = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags)
        names = {f.name for f in dataclasses.fields(cls)}
        data.update({k: v for k, v in flag_values.items() if k in names and v is not None})
    return data
