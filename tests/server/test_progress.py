"""The per-round progress line, in the running command's language."""

from __future__ import annotations

import pytest

from common.i18n import catalogue as i18n
from common.i18n import cli as cli_language
from server.federation import progress
from server.federation.bookkeeping import RoundLog

ENTRY = RoundLog(round=3, train={"epsilon_max": 2.375, "centres": 12},
                 evaluation={"auc": 0.78412, "centres": 11}, refusals=["css-a: budget"],
                 rejections=["7: norm"], absent=["9: evaluate"], model_version="v3",
                 updates=0)


@pytest.mark.parametrize(("lang", "line"), [
    ("fr", "  ronde 3/20 | AUC regroupée 0,784 | epsilon max 2,38 | centres entraînés 12, "
           "évalués 11 | refus : 1 | mises à jour rejetées : 1 | absences : 1 | modèle inchangé"),
    ("en", "  round 3/20 | pooled AUC 0.784 | epsilon max 2.38 | centres trained 12, "
           "evaluated 11 | 1 declined | 1 rejected | 1 absent | model unchanged"),
])
def test_the_round_line_is_in_the_commands_language(lang: str, line: str,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_language._Invocation, "lang", lang)
    progress.print_round(ENTRY, 20)
    assert capsys.readouterr().out == line + "\n"


def test_a_process_no_command_started_speaks_its_locale(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployed ServerApp: the launcher's PERSEVERANCE_LANG, else the locale, else
    French."""
    monkeypatch.setattr(cli_language._Invocation, "lang", None)
    monkeypatch.setenv(i18n.LANGUAGE_VARIABLE, "en")
    progress.print_round(RoundLog(round=1, train={"centres": 2}), 2)
    assert capsys.readouterr().out.startswith("  round 1/2 | no pooled AUC this round | no DP")
    monkeypatch.delenv(i18n.LANGUAGE_VARIABLE)
    progress.print_round(RoundLog(round=1, train={"centres": 2}), 2)
    assert capsys.readouterr().out.startswith(
        "  ronde 1/2 | pas d'AUC regroupée à cette ronde | sans confidentialité")
