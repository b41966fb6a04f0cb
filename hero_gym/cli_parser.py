"""The argument parser every `hero-gym` command uses: a misspelled option is reported as such, with the nearest
valid one, before argparse would complain about a required option the typo was meant to be."""

from __future__ import annotations

import argparse
import difflib


class StrictParser(argparse.ArgumentParser):
    """An ArgumentParser that rejects unknown ``--options`` first (argparse checks required options first, so
    ``--polcy oracle`` used to read as "the following arguments are required: --policy")."""

    def parse_known_args(self, args=None, namespace=None):
        if args is None:
            import sys

            args = sys.argv[1:]
        if not self._subparsers:  # a parser with subcommands leaves their options to them
            self._reject_unknown_options(list(args))
        return super().parse_known_args(args, namespace)

    def _reject_unknown_options(self, args: list[str]) -> None:
        known = [s for s in self._option_string_actions if s.startswith("--")]
        for token in args:
            if token == "--":
                return  # everything after is positional
            if not token.startswith("--"):
                continue
            name = token.split("=", 1)[0]
            # argparse accepts unambiguous prefixes; leave those (and ambiguity errors) to it
            if any(s.startswith(name) for s in known):
                continue
            near = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" (did you mean {near[0]}?)" if near else ""
            self.error(f"unrecognized argument {name}{hint}")
