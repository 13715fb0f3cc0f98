"""Pages of the site made from the code at build time (mkdocs-gen-files), so they cannot drift.

- ``reference/cli.md``: every command and option from the argument parser itself;
- ``reference/errors.md``: every error and warning class with its docstring;
- ``benchmarks/*.png``: the benchmark plots, from ``benchmarks/results``.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import mkdocs_gen_files

from speechae import errors
from speechae.cli import _parser

REPO = Path(__file__).resolve().parents[1]


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    rows = ["| option | default | what it does |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        names = ", ".join(f"`{name}`" for name in action.option_strings)
        if not action.option_strings:
            names = f"`{action.metavar or action.dest}`"
        elif action.nargs != 0:
            names += f" `{action.metavar or action.dest.upper()}`"
        unset = action.default in (None, argparse.SUPPRESS, False) or action.required
        default = "" if unset else f"`{action.default}`"
        text = (action.help or "") % {"default": action.default} if action.help else ""
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            text += f" (one of {', '.join(f'`{choice}`' for choice in action.choices)})"
        rows.append(f"| {names} | {default} | {_cell(text)} |")
    return rows


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    lines = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, command in action.choices.items():
            title = f"{prefix} {name}"
            lines += [f"## `{title}`", "", _cell(command.description or ""), ""]
            lines += ["```text", command.format_usage().strip(), "```", "", *_options(command), ""]
            lines += _commands(command, title)
    return lines


def cli_page() -> str:
    """The command-line reference, from the parser."""
    parser = _parser()
    head = [
        "# Command line",
        "",
        "Generated from the argument parser of `speechae` when the site is built, so every option and",
        "default here is the one `speechae COMMAND --help` shows. Exit codes: 0 when everything",
        "succeeded, 3 when some recordings failed (listed in `OUT.errors.csv`), 1 when none did or the",
        "command is wrong, 130 when interrupted.",
        "",
    ]
    return "\n".join(head + _commands(parser, "speechae")) + "\n"


def errors_page() -> str:
    """The error reference, from the classes of ``speechae.errors``."""
    lines = [
        "# Errors and warnings",
        "",
        "Generated from `speechae.errors` when the site is built. Every error is a `SpeechaeError` and",
        "also the builtin it resembles, so `except ValueError` keeps working; its message is one",
        "sentence that names the file (and segment) and the cause. In a corpus run an error about one",
        "recording or input fails that item alone: it is listed in `OUT.errors.csv` and the summary,",
        "and the exit code says that some failed. Warnings print as one line, `speechae: warning: ...`,",
        "on the command line (from worker processes too).",
        "",
        "| class | is also | when |",
        "|---|---|---|",
    ]
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, (errors.SpeechaeError, errors.SpeechaeWarning)):
            bases = ", ".join(f"`{base.__name__}`" for base in value.__bases__)
            lines.append(f"| `{name}` | {bases} | {_cell(inspect.getdoc(value))} |")
    return "\n".join(lines) + "\n"


with mkdocs_gen_files.open("reference/cli.md", "w") as page:
    page.write(cli_page())
with mkdocs_gen_files.open("reference/errors.md", "w") as page:
    page.write(errors_page())
for figure in sorted((REPO / "benchmarks" / "results").glob("*.png")):
    with mkdocs_gen_files.open(f"benchmarks/{figure.name}", "wb") as copy:
        copy.write(figure.read_bytes())
