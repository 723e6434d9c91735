"""Command-line flags from a config dataclass, so that a recipe's settings are typed once (the dataclass) and every
command spells them the same way (`--batch-size` for `batch_size`; `--output` for folders written, `--out` kept as
an alias).

    add_dataclass_arguments(parser, PretrainConfig, aliases={"out": ["--output", "--out"]})
    config = PretrainConfig(**dataclass_values(args, PretrainConfig))

Flags default to None, so `dataclass_values` returns only what the user set and the dataclass keeps its own
defaults (and a --config file can sit underneath).
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from bertkit.errors import UserError

# field annotation (as a string, under `from __future__ import annotations`) -> argparse type
_TYPES = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float, "str | None": str}


def add_dataclass_arguments(parser: argparse.ArgumentParser | Any, cls: type, aliases: dict[str, list[str]] | None = None,
                            help: dict[str, str] | None = None, skip: tuple[str, ...] = (),
                            required: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> None:
    """One flag per field of `cls` (`--field-name`, or the names in `aliases[field]`), typed from the annotation;
    booleans get --x / --no-x. `defaults` are the values the command fills in where they differ from the
    dataclass's own (shown in the help)."""
    aliases, help, defaults = aliases or {}, help or {}, defaults or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flags = aliases.get(f.name, ["--" + f.name.replace("_", "-")])
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
        default = defaults.get(f.name, f.default if f.default is not dataclasses.MISSING else None)
        text = help.get(f.name, "")
        text = f"{text} (default {default})" if text and f.name not in required else text or f"(default {default})"
        if kind in ("bool", "bool | None"):
            parser.add_argument(*flags, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=text)
        else:
            parser.add_argument(*flags, dest=f.name, type=_TYPES.get(kind, str), default=None,
                                required=f.name in required, help=text)


def dataclass_values(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of `cls` the user set on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name, None) is not None}


class HfArgumentParser(argparse.ArgumentParser):
    """HF's `HfArgumentParser`: the fields of one or more dataclasses (TrainingArguments and the script's own) as
    flags, spelled `--field_name` as HF spells them (and `--field-name`).

        parser = HfArgumentParser((ModelArguments, TrainingArguments))
        model_args, training_args = parser.parse_args_into_dataclasses()
    """

    def __init__(self, dataclass_types: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dataclass_types = list(dataclass_types) if isinstance(dataclass_types, (list, tuple)) else [dataclass_types]
        for cls in self.dataclass_types:
            fields = [f for f in dataclasses.fields(cls) if f.init]
            spellings = {f.name: list(dict.fromkeys([f"--{f.name}", "--" + f.name.replace("_", "-")])) for f in fields}
            required = tuple(f.name for f in fields if f.default is dataclasses.MISSING
                             and f.default_factory is dataclasses.MISSING)  # type: ignore[misc]
            add_dataclass_arguments(self, cls, aliases=spellings, required=required,
                                    skip=tuple(f.name for f in dataclasses.fields(cls) if not f.init))

    def parse_args_into_dataclasses(self, args: list[str] | None = None,
                                    return_remaining_strings: bool = False) -> tuple[Any, ...]:
        namespace, remaining = self.parse_known_args(args)
        if remaining and not return_remaining_strings:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        built = tuple(cls(**dataclass_values(namespace, cls)) for cls in self.dataclass_types)
        return (*built, remaining) if return_remaining_strings else built

    def parse_dict(self, values: dict[str, Any], allow_extra_keys: bool = False) -> tuple[Any, ...]:
        names = {f.name for cls in self.dataclass_types for f in dataclasses.fields(cls)}
        extra = sorted(set(values) - names)
        if extra and not allow_extra_keys:
            raise UserError(f"keys that no dataclass has: {', '.join(extra)}")
        return tuple(cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})
                     for cls in self.dataclass_types)

    def parse_json_file(self, json_file: str, allow_extra_keys: bool = False) -> tuple[Any, ...]:
        from bertkit.files import read_json_object

        return self.parse_dict(read_json_object(json_file, "a JSON object of arguments"), allow_extra_keys)
