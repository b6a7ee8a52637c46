"""The one translation catalogue: French first, English the ids, every message translated."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from babel.messages.catalog import TranslationError
from babel.messages.checkers import python_format
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from common.i18n import catalogue as i18n
from common.i18n import cli as cli_language

ROOT = Path(__file__).resolve().parents[3]


def test_french_is_the_default_and_the_locale_or_option_can_say_english() -> None:
    assert i18n.choose(None, {}) == "fr"
    assert i18n.choose(None, {"LANG": "C.UTF-8"}) == "fr"
    assert i18n.choose(None, {"LANG": "en_CA.UTF-8"}) == "en"
    assert i18n.choose(None, {"LC_ALL": "fr_CA.UTF-8", "LANG": "en_CA.UTF-8"}) == "fr"
    assert i18n.choose("en", {"LANG": "fr_CA.UTF-8"}) == "en"
    assert i18n.choose("de", {}) == "fr"


def test_accept_language_picks_the_best_of_ours() -> None:
    assert i18n.negotiate("en-CA,en;q=0.9,fr;q=0.8") == "en"
    assert i18n.negotiate("de-DE, fr-CA;q=0.5, en;q=0.4") == "fr"
    assert i18n.negotiate("en;q=0, fr;q=0.1") == "fr"
    assert i18n.negotiate("de, es") is None
    assert i18n.negotiate(None) is None


def test_numbers_follow_the_language() -> None:
    assert i18n.number(0.7843, 3, "fr") == "0,784"
    assert i18n.number(0.7843, 3, "en") == "0.784"
    assert i18n.number(12345.5, 1, "fr").replace("\u202f", " ").replace("\xa0", " ") == (
        "12 345,5")
    assert i18n.number(3, 0, "fr") == "3"


def test_french_translates_and_english_is_the_message_itself() -> None:
    assert i18n.gettext("fr")("Federation") == "Fédération"
    assert i18n.gettext("en")("Federation") == "Federation"


def _used_messages() -> set[str]:
    """Every message of the sources babel.cfg lists, as ``pybabel extract`` finds them."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as config:
        method_map, options = parse_mapping_cfg(config)
    return {message for _, _, message, *_ in extract_from_dir(
        str(ROOT), method_map, options) if isinstance(message, str)}


def test_every_message_of_the_code_and_templates_has_its_french() -> None:
    used = _used_messages()
    with i18n.catalogue_path("fr").open("rb") as handle:
        catalogue = read_po(handle)
    translated = {m.id for m in catalogue if m.id and m.string and not m.fuzzy}
    fuzzy = [m.id for m in catalogue if m.id and m.fuzzy]

    assert len(used) > 150 and {"on", "none", "Models published: %(num)s."} <= used
    # The three commands' sentences, help texts and the server library's errors are sources.
    assert {"List the shipped scenarios.", "Show this message and exit.",
            "Results: %(path)s", "This key is already enrolled for %(centre)s.",
            "The run folder.", "Invalid rows listed in full.",
            "Groups too small to report without exposing a centre are suppressed: "
            "%(groups)s."} <= used
    assert used - translated == set(), "run pybabel update and translate these"
    assert fuzzy == [], "a fuzzy translation is a guess: check it and remove the flag"


def test_a_sentence_is_english_and_translated_with_its_parameters_when_shown() -> None:
    sentence = i18n.N_("%(what)s %(path)s does not exist; check the path given.",
                       what=i18n.word(i18n.N_("The site policy")), path="/x/p.toml")

    back = pickle.loads(pickle.dumps(sentence))

    assert sentence == "The site policy /x/p.toml does not exist; check the path given."
    assert i18n.translate(sentence, "fr") == (
        "La politique du site /x/p.toml n'existe pas; vérifiez le chemin indiqué.")
    assert i18n.translate(back, "fr") == i18n.translate(sentence, "fr")
    assert i18n.translate(sentence, "en") == sentence
    assert i18n.translate("a text of no catalogue", "fr") == "a text of no catalogue"
    assert i18n.translate("", "fr") == ""


def test_a_number_in_a_sentence_is_written_in_the_language() -> None:
    sentence = i18n.N_("Groups too small to report without exposing a centre are "
                       "suppressed: %(groups)s.", groups=i18n.Number(7.256, 2))
    delta = i18n.Number(1e-6, None)

    assert sentence == "Groups too small to report without exposing a centre are suppressed: 7.26."
    assert i18n.translate(sentence, "fr").endswith(" : 7,26.")
    assert pickle.loads(pickle.dumps(sentence)).params["groups"].value == 7.256
    assert delta == "1e-06" and i18n.compact(0.5, "fr") == "0,5"


def test_the_help_texts_of_a_command_module_are_extracted_one_line_per_paragraph() -> None:
    source = b'''
HELP = ("First paragraph,\\n"
        "  continued.\\n\\nSecond.")
@app.command("x", help="Option  help.")
def x(a: Annotated[int, typer.Option(help="An option.")]) -> None:
    """Do x.

    In two
    lines."""
def helper() -> None:
    """Not a command."""
N_("A sentence.")
'''

    found = [message for _, _, message, _ in cli_language.extract(
        io.BytesIO(source), DEFAULT_KEYWORDS, [], {})]

    assert sorted(found) == sorted(["A sentence.", "First paragraph, continued.\n\nSecond.",
                                    "Option help.", "An option.", "Do x.\n\nIn two lines."])


def test_every_translation_keeps_the_placeholders_of_its_message() -> None:
    with i18n.catalogue_path("fr").open("rb") as handle:
        catalogue = read_po(handle)
    broken = []
    for message in catalogue:
        if message.id and message.string:
            try:
                python_format(catalogue, message)
            except TranslationError as exc:
                broken.append(f"{message.id!r}: {exc}")

    assert broken == []


def test_a_stop_reason_kept_as_a_record_is_shown_in_the_readers_language() -> None:
    reason = i18n.N_(
        "Round %(round)s: only %(left)s centres can take part, fewer than min_centres "
        "(%(minimum)s), since these refused the run: %(named)s", round=2, left=1, minimum=3,
        named=i18n.Joined([i18n.N_("%(centre)s: %(reason)s", centre="css-a",
                                   reason=i18n.word("rounds must be at least 1"))]))
    waited = i18n.N_("The run did not finish within %(seconds)s s.",
                     seconds=i18n.Number(1234.0, 0))
    import json

    back = i18n.from_record(json.loads(json.dumps(i18n.to_record(reason))))
    assert back == reason  # the English text, as summary.json's `stopped`
    french = i18n.translate(back, "fr")
    assert french.startswith("Ronde 2 : seuls 1 centres") and "css-a : rounds doit" in french
    shown = i18n.translate(i18n.from_record(i18n.to_record(waited)), "fr")
    assert shown.replace("\u202f", " ").replace("\xa0", " ") == (
        "L'entraînement ne s'est pas terminé en 1 234 s.")
    # A summary written before the record existed, or a hand-edited one, shows its text.
    assert i18n.from_record("plain text") == "plain text"
    assert i18n.from_record({"msgid": "%(x)s", "params": {}}) == "%(x)s"


def test_no_message_is_in_the_catalogue_twice() -> None:
    # Babel reads a second entry over the first: two translations of one message would
    # silently keep the later one.
    with i18n.catalogue_path("fr").open("rb") as handle:
        entries = [line for line in handle.read().decode("utf-8").split("\n\n")
                   if "\nmsgid " in f"\n{line}"]
    ids = [entry[entry.index("msgid "):entry.index("\nmsgstr")] for entry in entries]
    assert sorted({i for i in ids if ids.count(i) > 1}) == []
