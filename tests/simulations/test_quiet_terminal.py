"""A quiet, informative terminal (issue 28): the libraries' own logs and warnings go to
the run folder's log and to the terminal only with ``--verbose``; every long wait says
what it waits for; nothing English and no colour code reaches a French user's output
when it is no terminal."""

from __future__ import annotations

import io
import logging
import re
import time
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from common.config import ConfigError, RunConfig, unknown_key
from common.i18n import cli as cli_language
from common.i18n.waits import TerminalWaits, command_seconds
from simulations.terminal import ThirdPartyOutput, plain

ANSI = re.compile(r"\x1b\[")
#: Words of an English line that no French line of ours holds (paths are left out).
ENGLISH = re.compile(r"\b(the|and|of|is|with|was|Manually|WARNING|ERROR|INFO|DEBUG|"
                     r"Traceback|Done|Results|Wall|Loading|Starting|Federated|round|to|for|from|"
                     r"Successfully|Received|Sampled|Will)\b")


def english_lines(text: str) -> list[str]:
    """The lines of ``text`` that read as English (paths and fingerprints, words holding
    "/" or ":", do not count)."""
    return [line for line in text.splitlines() if ENGLISH.search(
        " ".join(w for w in line.split() if "/" not in w and ":" not in w.rstrip(":")))]


def assert_french_and_plain(text: str) -> None:
    assert not ANSI.search(text), text[-3000:]
    assert english_lines(text) == [], text[-3000:]


def test_the_libraries_logs_and_warnings_go_to_the_run_log_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "logs" / "simulation.log"

    with ThirdPartyOutput(log_file) as output:
        logging.getLogger("flwr").info("Sampled 3 nodes")
        logging.getLogger("flwr").debug("Will push ServerApp task output")
        warnings.warn("a future change", FutureWarning, stacklevel=1)
        output.actor_output({"pid": 12, "actor_name": "ClientAppActor",
                             "lines": ["\x1b[93mWARNING \x1b[0m: Manually terminating"]})
    logging.getLogger("flwr").info("after the block")  # Flower's own handler again

    shown = capsys.readouterr()
    kept = log_file.read_text(encoding="utf-8")
    assert "Sampled 3 nodes" not in shown.err + shown.out
    assert "Manually terminating" not in shown.err + shown.out
    assert "a future change" not in shown.err + shown.out
    for line in ("Sampled 3 nodes", "Will push ServerApp task output", "a future change",
                 "(ClientAppActor pid=12) WARNING : Manually terminating"):
        assert line in kept
    assert not ANSI.search(kept)


def test_verbose_shows_them_too_without_colour_codes_off_a_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ThirdPartyOutput(tmp_path / "simulation.log", verbose=True) as output:
        logging.getLogger("flwr").info("Sampled 3 nodes")
        output.actor_output({"pid": 12, "actor_name": "ClientAppActor",
                             "lines": ["\x1b[93mWARNING \x1b[0m: Manually terminating"]})

    err = capsys.readouterr().err
    assert "Sampled 3 nodes" in err and "Manually terminating" in err
    assert not ANSI.search(err)
    assert plain("\x1b[36m(actor)\x1b[0m x") == "(actor) x"


def test_a_wait_is_one_plain_line_in_the_language_off_a_terminal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    waits = TerminalWaits(Console(file=stream, force_terminal=False))
    monkeypatch.setattr(cli_language._Invocation, "lang", "fr")

    with waits("Generating the centres' data"):
        pass

    assert stream.getvalue() == "Génération des données des centres…\n"


def test_a_wait_said_after_a_delay_is_said_only_if_it_lasts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    waits = TerminalWaits(Console(file=stream, force_terminal=False), after=0.2)
    monkeypatch.setattr(cli_language._Invocation, "lang", "fr")

    with waits("Generating the centres' data"):
        pass
    assert stream.getvalue() == ""

    with waits("Generating the centres' data"):
        time.sleep(0.5)
        assert stream.getvalue() == "Génération des données des centres…\n"  # while waiting
    print("after", file=stream)
    assert stream.getvalue() == "Génération des données des centres…\nafter\n"


def test_the_commands_time_counts_from_the_process_start() -> None:
    assert command_seconds() >= time.process_time() * 0.5 > 0


def test_an_unknown_key_gets_the_closest_one_and_no_internal_key() -> None:
    with pytest.raises(ConfigError) as mistyped:
        RunConfig.from_flat({"privacy.epsilonn": 1})
    far = unknown_key("zzz", RunConfig().to_flat())

    assert "did you mean 'privacy.epsilon'?" in str(mistyped.value)
    for text in (str(mistyped.value), str(far)):
        assert "rounds" in text
        assert not any(key in text for key in ("run_dir", "data_dir", "state_root",
                                                 "scenario,"))
    assert "did you mean" not in str(far)


@pytest.mark.slow
def test_a_tiny_runs_french_output_is_quiet_and_plain(tiny_run) -> None:
    """The suite's tiny run (conftest), its output captured as in a pipe: French lines
    only, no colour code; the libraries' lines are in its log."""
    proc = tiny_run.proc

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert_french_and_plain(proc.stdout + proc.stderr)
    assert "Démarrage du moteur de simulation" in proc.stderr
    assert "Terminé en " in proc.stdout
    assert "FutureWarning" in (tiny_run.out / "logs" / "simulation.log").read_text(
        encoding="utf-8")  # Ray's, at its start


def test_the_autoscalers_status_dumps_are_not_kept(tmp_path: Path) -> None:
    log_file = tmp_path / "simulation.log"

    with ThirdPartyOutput(log_file, verbose=True) as output:
        output.actor_output({"pid": "autoscaler", "lines": ["Node status", "Active:"]})

    assert "Node status" not in log_file.read_text(encoding="utf-8")
