"""``perseverance-client app``: the apps this centre approved to run next to its data.

The centre's runtime (``perseverance-clientapp``) runs a run's code only if the SHA-256
of its FAB is on the list in the state folder (``common/app_approval.py``). An app is
named by that hash, by a FAB file, or by the app's folder (hashed as ``flwr build`` and
``flwr run`` package it, so a clone of the announced repository version gives the
hash the ministry's run will have).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from client.commands.language import LangOption
from common.app_approval import (
    ApprovalError,
    approve,
    approved_apps_path,
    fab_hash,
    is_fab_hash,
    read_approved,
    revoke,
)
from common.errors import ExitCode
from common.i18n.catalogue import N_, sentence
from common.i18n.cli import error_line, shown

HELP = (
    "The apps this centre runs: a run's code (its FAB) runs next to the data only if its "
    "SHA-256 was approved here; any other is refused before it is unpacked.\n\n"
    "Exit codes: 0 done; 2 unusable input (no state folder, unknown app, bad hash)."
)
STATE_HELP = "The centre's state folder (the SuperNode's state-dir)."
TARGET_HELP = ("The app: its FAB's SHA-256 (64 hex digits), a .fab file, or the app's "
               "folder (hashed as `flwr build` packages it).")

group = typer.Typer(help=HELP, no_args_is_help=True)
_out, _err = Console(highlight=False), Console(stderr=True, highlight=False)


def app_hash(target: str) -> str:
    """The FAB SHA-256 that ``target`` names (a hash, a FAB file or an app folder)."""
    path = Path(target).expanduser()
    if is_fab_hash(target) and not path.exists():
        return target.strip().lower()
    if path.is_dir():
        from client.flower_compat import build_fab

        try:
            return fab_hash(build_fab(path))
        except (ValueError, OSError) as err:
            raise ApprovalError(N_("%(path)s cannot be packaged as a Flower app "
                                   "(%(reason)s).", path=path, reason=str(err))) from err
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise ApprovalError(N_("%(path)s is not a FAB (a zip made by `flwr build`).",
                                   path=path))
        return fab_hash(path.read_bytes())
    raise ApprovalError(N_("%(target)s is neither a SHA-256, nor a FAB file, nor an app "
                           "folder.", target=target))


def _fail(err: ApprovalError) -> typer.Exit:
    _err.print(error_line(sentence(err)), soft_wrap=True)
    return typer.Exit(ExitCode.UNUSABLE)


def _say(message: str) -> None:
    _out.print(shown(message), markup=False, soft_wrap=True)


@group.command("approve")
def approve_command(
    target: Annotated[str, typer.Argument(help=TARGET_HELP, show_default=False)],
    state: Annotated[Path, typer.Option("--state", "-s", help=STATE_HELP, show_default=False)],
    note: Annotated[str, typer.Option(help="Who reviewed what (kept beside the hash).")] = "",
    lang: LangOption = None,
) -> None:
    """Approve an app after reviewing its code: its runs may then use the data."""
    try:
        digest = app_hash(target)
        entry, added = approve(state, digest, note)
    except ApprovalError as err:
        raise _fail(err) from None
    where = approved_apps_path(state)
    _say(N_("Approved: %(hash)s; list %(path)s.", hash=entry.fab_hash, path=where) if added
         else N_("Already approved (since %(when)s): %(hash)s; list %(path)s.",
                 when=entry.approved_at, hash=entry.fab_hash, path=where))


@group.command("list")
def list_command(
    state: Annotated[Path, typer.Option("--state", "-s", help=STATE_HELP, show_default=False)],
    lang: LangOption = None,
) -> None:
    """List the approved apps (SHA-256 of each FAB, when, note)."""
    try:
        apps = read_approved(state)
    except ApprovalError as err:
        raise _fail(err) from None
    if not apps:
        _say(N_("No app is approved in %(path)s: every run will be refused.", path=state))
        return
    table = Table(title=shown(N_("Approved apps %(path)s", path=approved_apps_path(state))))
    # Readable at 80 columns: the hash folded in two halves of 32 digits (whole, to
    # compare with the published one), the date to the minute, the note folded.
    table.add_column(shown("FAB SHA-256"), overflow="fold", width=32)
    table.add_column(shown(N_("approved at")), no_wrap=True)
    table.add_column(shown(N_("note")), overflow="fold", ratio=1)
    for app in apps:
        table.add_row(app.fab_hash, app.approved_at[:16].replace("T", " "), app.note)
    _out.print(table)


@group.command("revoke")
def revoke_command(
    fab: Annotated[str, typer.Argument(help="The app's SHA-256, or a unique prefix of at "
                                       "least 8 hex digits.", show_default=False)],
    state: Annotated[Path, typer.Option("--state", "-s", help=STATE_HELP, show_default=False)],
    lang: LangOption = None,
) -> None:
    """Revoke an approval: the app's next tasks are refused (one already running ends)."""
    try:
        entry = revoke(state, fab)
    except ApprovalError as err:
        raise _fail(err) from None
    _say(N_("Revoked: %(hash)s.", hash=entry.fab_hash))


@group.command("hash")
def hash_command(
    target: Annotated[str, typer.Argument(help="A .fab file or an app folder.",
                                          show_default=False)] = ".",
    lang: LangOption = None,
) -> None:
    """Print the SHA-256 of an app as a run would ship it (compare with the ministry's)."""
    try:
        _out.print(app_hash(target))
    except ApprovalError as err:
        raise _fail(err) from None


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="app", help=HELP)
