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
    """Exit codes of the three commands (``perseverance-client``, ``-server``, ``-sim``).

    Codes 3 to 7 mean different things to different commands (each documents its own):
    the names below say which.
    """

    SUCCESS = 0
    UNUSABLE = 2  # bad input: file, key, value, command line; one sentence on stderr
    SIMULATION_FAILED = 3  # perseverance-sim: the simulation failed while running
    PKI = 3  # perseverance-server: missing CA, CA key offline, existing key, bad name
    TAMPERED = 4  # audit verify (both sides): a record is not what was written
    ENROLMENT = 4  # perseverance-server: enrolment or revocation refused
    LAUNCHER_INPUT = 5  # perseverance-sim dev-federation: unusable input
    DEPLOYMENT = 6  # perseverance-server: a server did not start or died
    RUN_FAILED = 7  # perseverance-sim dev-federation: the federated run failed
    UNREACHABLE = 8  # perseverance-server enrol/revoke: the SuperLink could not be reached
    INTERRUPTED = 130  # Ctrl-C; every process started has been stopped


class PerseveranceError(Exception):
    """An error a user can cause. The message is one sentence; ``exit_code`` is what the
    command that meets it ends with."""

    exit_code: int = ExitCode.UNUSABLE
