"""`--config FILE` for the `hero-gym` commands: a TOML, YAML or JSON file of option values, read as if its keys had
been typed before the explicit arguments.

Why command-line tokens: argparse keeps the last value of an option, so the file's values come first and every flag
given explicitly wins, with the same type checks, choices and error messages as a typed flag. A key is

- an option of the command (``env``, ``group_size``, ``out``; dashes or underscores), or
- a field with no flag of its own (for ``hero-gym train``: any TrainConfig / method config field), sent as
  ``--set name=<JSON value>``; an explicit ``--set name=...`` comes later and wins.

Values: strings, numbers, booleans (a true boolean is the bare flag, false leaves the flag out, and a
``--x/--no-x`` option gets ``--no-x``), lists (joined with commas: ``tasks = [0, 1, 2]``, ``seeds = [0, 1, 2]``)
and tables (sent as JSON through ``--set``). A key that is neither is an error naming the nearest valid key, so a
typo never silently falls back to a default. Tables listed in `sections` (e.g. ``[plan]``) are returned apart for
the command that reads them.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import Any, Iterable

SUFFIXES = (".toml", ".yaml", ".yml", ".json")


class ConfigFileError(ValueError):
    """A config file that cannot be read or holds a key no command option or field matches."""


def read_config(path: str | Path) -> dict[str, Any]:
    """The file's top-level mapping (TOML via tomllib, YAML via PyYAML, JSON), keys with dashes as underscores."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigFileError(f"config file {str(path)!r} does not exist")
    suffix = p.suffix.lower()
    text = p.read_text()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigFileError(f"{p}: reading YAML needs PyYAML (pip install pyyaml), or write it as TOML") from None
            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigFileError(f"{p}: unknown config format {suffix!r}; use one of {', '.join(SUFFIXES)}")
    except ConfigFileError:
        raise
    except Exception as e:  # tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError
        raise ConfigFileError(f"{p}: not valid {suffix[1:].upper()}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigFileError(f"{p}: the top level must be a mapping of option names to values")
    return _normalise(data)


def _normalise(data: dict) -> dict:
    return {str(k).replace("-", "_"): (_normalise(v) if isinstance(v, dict) else v) for k, v in data.items()}


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """dest -> action of every ``--long`` option (help and --config excluded)."""
    out = {}
    for a in parser._actions:
        if a.dest in ("help", "config") or not any(s.startswith("--") for s in a.option_strings):
            continue
        out[a.dest] = a
    return out


def _flag(action: argparse.Action) -> str:
    return next(s for s in action.option_strings if s.startswith("--") and not s.startswith("--no-"))


def _scalar(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_scalar(v) for v in value)
    return str(value)


def nearest(name: str, valid: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest valid name, or ''."""
    near = difflib.get_close_matches(name, sorted(set(valid)), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def config_tokens(data: dict, parser: argparse.ArgumentParser, fields: Iterable[str] = (),
                  sections: Iterable[str] = (), source: str = "config") -> tuple[list[str], dict[str, dict]]:
    """(command-line tokens for `parser`, the tables named in `sections`) from a config mapping.

    `fields`: names that have no option of their own but are accepted through ``--set NAME=VALUE`` (the parser must
    then have a ``--set`` option)."""
    opts = _options(parser)
    fields, sections = set(fields), set(sections)
    tokens: list[str] = []
    tables: dict[str, dict] = {}
    for key, value in data.items():
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigFileError(f"{source}: {key!r} must be a table of settings")
            tables[key] = value
            continue
        action = opts.get(key)
        if action is None and key not in fields:
            raise ConfigFileError(f"{source}: unknown key {key!r}{nearest(key, [*opts, *fields, *sections])}")
        if action is None or (isinstance(value, dict) and action.dest == "set"):
            tokens.append(f"--set={key}={json.dumps(value)}")
        elif isinstance(action, argparse.BooleanOptionalAction):
            if not isinstance(value, bool):
                raise ConfigFileError(f"{source}: {key} must be true or false, got {value!r}")
            tokens.append(_flag(action) if value else "--no-" + _flag(action)[2:])
        elif action.nargs == 0:  # store_true / store_false
            if not isinstance(value, bool):
                raise ConfigFileError(f"{source}: {key} is a switch: true or false, got {value!r}")
            if value == bool(action.const):
                tokens.append(_flag(action))
        elif action.dest == "set":
            if not isinstance(value, list):
                raise ConfigFileError(f"{source}: set must be a list of 'NAME=VALUE' strings")
            tokens += [f"--set={v}" for v in value]
        elif isinstance(value, dict):
            raise ConfigFileError(f"{source}: {key} takes a single value, got a table")
        else:
            tokens.append(f"{_flag(action)}={_scalar(value)}")
    return tokens, tables


def split_config_arg(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the value of ``--config``, argv without it); a second --config is an error."""
    path, rest, i = None, [], 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            rest += argv[i:]
            break
        if tok == "--config" or tok.startswith("--config="):
            if path is not None:
                raise ConfigFileError("--config given twice; merge the files or pass the extra values as flags")
            if tok == "--config":
                if i + 1 >= len(argv):
                    raise ConfigFileError("--config needs a file path")
                path, i = argv[i + 1], i + 2
            else:
                path, i = tok.split("=", 1)[1], i + 1
            continue
        rest.append(tok)
        i += 1
    return path, rest


def expand_config(argv: list[str], parser: argparse.ArgumentParser, fields: Iterable[str] = (),
                  sections: Iterable[str] = ()) -> tuple[list[str], dict[str, dict]]:
    """argv with ``--config FILE`` replaced by the file's tokens placed first (explicit arguments win), and the
    file's `sections` tables. Without --config: argv unchanged and no tables."""
    path, rest = split_config_arg(list(argv))
    if path is None:
        return rest, {}
    tokens, tables = config_tokens(read_config(path), parser, fields, sections, source=str(path))
    return tokens + rest, tables


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """Declare --config for --help (the value itself is consumed by expand_config before parsing)."""
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML/YAML/JSON file of option values (keys = option names or config fields); "
                             "flags given explicitly override it (default: none)")
