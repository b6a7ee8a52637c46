"""The project's one error base class and one table of exit codes (as Flower keeps its
exit codes in one module, ``flwr/common/exit/exit_code.py``).

An error a user can cause (a bad file, a wrong key, an exhausted budget, a tampered
record) is a :class:`PerseveranceError`: its message is one sentence, and the command
that meets it ends with its ``exit_code``, never with a traceback. Programming errors
are not: they still raise.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the commands (``perseverance-client``, ``-server``, ``-sim``,
    ``-clientapp``): one meaning per code, whatever the command (a test checks that no
    two names share a value; docs/DEPLOYMENT.md, "Exit codes", is the table).
    """

    SUCCESS = 0
    UNUSABLE = 2  # bad input: file, key, value, command line; one sentence on stderr
    SIMULATION_FAILED = 3  # perseverance-sim: the simulation failed while running
    TAMPERED = 4  # audit verify (both sides): a record is not what was written
    LAUNCHER_INPUT = 5  # perseverance-sim dev-federation: unusable input
    DEPLOYMENT = 6  # perseverance-server: a server did not start or died
    RUN_FAILED = 7  # perseverance-sim dev-federation: the federated run failed
    UNREACHABLE = 8  # perseverance-server enrol/revoke: the SuperLink could not be reached
    PKI = 9  # perseverance-server: missing CA, CA key offline, existing key, bad name
    ENROLMENT = 10  # perseverance-server: enrolment or revocation refused
    INTERRUPTED = 130  # Ctrl-C; every process started has been stopped


class PerseveranceError(Exception):
    """An error a user can cause. The message is one sentence; ``exit_code`` is what the
    command that meets it ends with."""

    exit_code: int = ExitCode.UNUSABLE
