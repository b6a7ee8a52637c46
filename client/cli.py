"""``perseverance-client``: the centre's command line.

Each command lives in its own module under ``client.commands`` and registers itself on
the one typer app here; a new command (``score``, ``ledger``) is a new module and one
line in ``COMMANDS``.

Exit codes (every command): 0 success; 2 unusable input (data file, mapping, site
policy) or wrong usage, after one sentence saying what is wrong and what to do.
"""

from __future__ import annotations

import importlib

import typer

from common.i18n.cli import LangOption, LocalisedGroup

# Modules with a ``register(app)`` function, in the order their commands are listed.
COMMANDS = ("client.commands.validate", "client.commands.score", "client.commands.ledger",
            "client.commands.audit", "client.commands.app")

app = typer.Typer(
    name="perseverance-client",
    help="Persévérance, centre side: check and use a centre's student extract locally.\n\n"
    "Exit codes: 0 success; 2 unusable input or wrong usage (one sentence says why).",
    no_args_is_help=True,
    add_completion=False,
    cls=LocalisedGroup,  # the help in the command's language (--lang, locale, French)
    pretty_exceptions_enable=False,  # a user's mistake never shows a traceback; bugs do
)


@app.callback()
def _root(lang: LangOption = None) -> None:
    """Persévérance, centre side (the group always lists its commands). ``--lang`` before
    the command, as the other two commands take it (``perseverance-client --lang en
    validate ...``), or after it; the option's callback sets the language."""


for _module in COMMANDS:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Entry point of the ``perseverance-client`` console script."""
    app()
