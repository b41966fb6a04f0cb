"""`--help` explains every option of every `hero-gym` command: no option or positional argument without help, and
each `train` / `sweep` / `plan` option names its default (or that it is required)."""

import argparse

import pytest

from hero_gym import cli
from hero_gym.agents.cli import build_sweep_parser, build_train_parser
from hero_gym.agents.plan import _parser as build_plan_parser
from hero_gym.download import build_data_parser

# The commands hero_gym.cli hands to other modules (their own parsers; the main parser holds a placeholder).
DISPATCHED = {"train": build_train_parser, "sweep": build_sweep_parser, "data": build_data_parser,
              "plan": build_plan_parser}
NAMES_DEFAULT = ("train", "sweep", "plan")


def _parsers():
    """(command path, parser) for every parser and sub-parser behind `hero-gym`."""
    todo = [("hero-gym", cli.build_parser())] + [(f"hero-gym {n}", build()) for n, build in DISPATCHED.items()]
    while todo:
        name, parser = todo.pop()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                for sub, subparser in action.choices.items():
                    assert sub in helped, f"`{name} {sub}` has no help line in `{name} --help`"
                    if not (name == "hero-gym" and sub in DISPATCHED):
                        todo.append((f"{name} {sub}", subparser))


def _arguments(parser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


def test_every_dispatched_command_is_covered():
    assert set(DISPATCHED) == set(cli._DISPATCH)


@pytest.mark.parametrize("name,parser", list(_parsers()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_argument_has_help(name, parser):
    parser.format_help()  # a stray % in a help string only fails when the help is printed
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in _arguments(parser)
               if not a.help or a.help == argparse.SUPPRESS]
    assert not missing, f"`{name}` arguments without help: {missing}"
    if name.split()[-1] in NAMES_DEFAULT:
        formatter = parser._get_formatter()
        silent = [a.option_strings[0] for a in _arguments(parser) if a.option_strings
                  and not any(w in formatter._expand_help(a) for w in ("default", "required"))]
        assert not silent, f"`{name}` options whose help names no default: {silent}"


def test_train_help_names_defaults_and_units():
    text = build_train_parser().format_help()
    for phrase in ("(default 15)", "in tokens (default 256)", "AdamW peak learning rate (default 1e-05)",
                   "max agent turns per training rollout"):
        assert phrase in " ".join(text.split()), phrase
