"""One source of defaults: a command's flags are generated from its config dataclass.

A config field is a flag when it carries ``flag(...)`` metadata (help, parser, choices, aliases);
the default is the field's own default, so it is written once.  A subclass that only changes a
default redeclares the field plainly (``epochs: int = 3``): its flag keeps the help of the field it
overrides.  The generated flags have no argparse default (``SUPPRESS``), so after parsing the
namespace holds exactly the flags the user gave; ``Config.from_args`` then builds

    field default  <  the chosen preset's override  <  the flag the user gave

so a preset (``--full``, ``--preset demo``) never overwrites a flag given on the command line,
even one given with its default value.  ``Config.given(args)`` lists the given flags, which
``connlab.runs.prepare_run`` compares with a saved config on ``--resume``.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import MISSING, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

from connlab.errors import UserError

FLAG = "flag"   # the metadata key


def flag(default: Any = MISSING, help: str = "", *, type: Callable | None = None, choices=None,
         aliases: tuple[str, ...] = (), metavar: str | None = None, negative: str | None = None,
         optional_bool: bool = False, group: str | None = None, show_default: bool = True,
         option: str | None = None):
    """A config field that is also a command-line flag ``--field-name`` (or ``option``).

    ``type`` parses the text (default: the default value's type); ``aliases`` are more option names;
    a bool field is ``store_true``, or ``store_false`` under ``negative`` (``--no-attention``), or
    ``--x/--no-x`` with ``optional_bool``; ``group`` names the help section. A field without a
    default is a required flag.
    """
    spec = dict(help=help, type=type, choices=choices, aliases=tuple(aliases), metavar=metavar, negative=negative,
                optional_bool=optional_bool, group=group, show_default=show_default, option=option)
    return field(default=default, metadata={FLAG: spec})


def flag_spec(cls, name: str) -> dict | None:
    """The flag metadata of field ``name``: its own, or that of the nearest base class that declares it."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and FLAG in f.metadata:
            return f.metadata[FLAG]
    return None


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


class Config:
    """Mixin for a command's frozen config dataclass: flags from fields, presets, load/save."""

    # Named overrides; ``PRESET_FIELD`` is the field that picks one: a str field names the preset,
    # a bool field picks the preset of its own name when set (``--full`` -> PRESETS["full"]).
    PRESETS: ClassVar[dict[str, dict]] = {}
    PRESET_FIELD: ClassVar[str | None] = None

    @classmethod
    def flag_fields(cls):
        return [f for f in fields(cls) if flag_spec(cls, f.name) is not None]

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser, groups: dict[str, str] | None = None) -> None:
        """One flag per flagged field; ``groups`` maps a spec's group key to its help title."""
        made: dict[str, Any] = {}
        for f in cls.flag_fields():
            spec = flag_spec(cls, f.name)
            target = parser
            if spec["group"]:
                title = (groups or {}).get(spec["group"], spec["group"])
                target = made.setdefault(title, parser.add_argument_group(title))
            default = f.default
            help_text = spec["help"]
            preset = cls._preset_note(f.name)
            shown = default is not MISSING and default is not None and not isinstance(default, bool)
            if spec["show_default"] and shown:
                help_text += f" (default {_shown(default)}{preset})"
            elif preset:
                help_text += f" ({preset.lstrip('; ')})"
            names = [spec.get("option") or option_name(f.name), *spec["aliases"]]
            kwargs: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS, help=help_text.strip() or None)
            if default is MISSING:
                kwargs["required"] = True
            if isinstance(default, bool):
                if spec["optional_bool"]:
                    kwargs["action"] = argparse.BooleanOptionalAction
                elif spec["negative"]:
                    names, kwargs["action"] = [spec["negative"]], "store_false"
                else:
                    kwargs["action"] = "store_true"
            else:
                kind = spec["type"] or (type(default) if default not in (MISSING, None) else str)
                kwargs["type"] = kind
                if spec["choices"] is not None:
                    kwargs["choices"] = spec["choices"]
                if spec["metavar"]:
                    kwargs["metavar"] = spec["metavar"]
            target.add_argument(*names, **kwargs)

    @classmethod
    def _preset_note(cls, name: str) -> str:
        """Where a preset changes this field's default, e.g. "; --full: 10"."""
        default = cls.__dataclass_fields__[name].default
        notes = [f"{preset}: {_shown(values[name])}" for preset, values in cls.PRESETS.items()
                 if name in values and values[name] != default]
        if not notes or cls.PRESET_FIELD is None:
            return ""
        prefix = "--" if isinstance(getattr(cls, cls.PRESET_FIELD, None), bool) else "preset "
        return "; " + ", ".join(prefix + n for n in notes)

    @classmethod
    def check_saved(cls, name: str, value, where) -> None:
        """A value read from config.json (``where``) for field ``name``, checked as its flag would check
        the same text: one ``UserError`` naming the file and the key, never the flag the user did not give."""
        f = cls.__dataclass_fields__[name]
        default, spec = f.default, flag_spec(cls, name)

        def bad(why: str):
            return UserError(f"{where}: \"{name}\": {json.dumps(value)} {why}; the file is damaged")

        if value is None:
            if default is None:
                return
            raise bad("is null")
        if isinstance(default, bool) or isinstance(value, bool):
            if not (isinstance(default, bool) and isinstance(value, bool)):
                raise bad("is not the expected kind of value" if not isinstance(default, bool)
                          else "is not true or false")
            return
        if isinstance(value, dict) or (isinstance(value, list) and not isinstance(default, tuple)):
            raise bad("is not the expected kind of value")
        if isinstance(value, float) and not math.isfinite(value):
            raise bad("is not a finite number")
        if isinstance(default, tuple) and not isinstance(value, list):
            raise bad("is not a list")
        if isinstance(default, tuple) and tuple(value) == default:  # the default itself, e.g. an empty --sweep
            return
        if isinstance(value, list) and not value:
            raise bad("is an empty list")
        if spec is None:  # not a flag: its type is all there is to check
            kind = type(default) if default not in (MISSING, None) else None
            if kind is float and isinstance(value, int) or kind is None or isinstance(value, kind):
                return
            raise bad(f"is not a{'n' if kind.__name__[0] in 'aeiou' else ''} {kind.__name__}")
        parse = spec["type"] or (type(default) if default not in (MISSING, None) else str)
        if parse in (str, Path) and not isinstance(value, str):
            raise bad("is not a string")
        if parse is int and not isinstance(value, int) or parse is float and not isinstance(value, (int, float)):
            raise bad(f"is not a{'n' if parse is int else ''} {parse.__name__}")
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        try:
            parsed = parse(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError, OverflowError) as err:
            raise bad(f"is not valid ({err})") from None
        if spec["choices"] is not None and parsed not in spec["choices"]:
            raise bad(f"is not one of {', '.join(map(str, spec['choices']))}")

    @classmethod
    def given(cls, args: argparse.Namespace) -> dict:
        """The config fields the user gave on the command line, with their values."""
        return {f.name: getattr(args, f.name) for f in cls.flag_fields() if hasattr(args, f.name)}

    @classmethod
    def preset_overrides(cls, given: dict) -> dict:
        if cls.PRESET_FIELD is None:
            return {}
        choice = given.get(cls.PRESET_FIELD, getattr(cls, cls.PRESET_FIELD))
        if isinstance(choice, bool):
            choice = cls.PRESET_FIELD if choice else None
        return dict(cls.PRESETS.get(choice, {})) if choice else {}

    @classmethod
    def from_args(cls, args: argparse.Namespace, **own):
        """Defaults, then the chosen preset, then the given flags, then ``own`` (derived values)."""
        given = cls.given(args)
        return cls(**{**cls.preset_overrides(given), **given, **own})
