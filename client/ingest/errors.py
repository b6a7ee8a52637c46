"""The error every unusable input ends in: one sentence for the operator, then details."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from client.errors import DataError

if TYPE_CHECKING:
    from client.ingest.report import QualityReport


class IngestError(DataError):
    """A centre's extract, mapping or policy cannot be used (exit code 2).

    ``str(error)`` is one sentence saying what is wrong and what to do; ``details``
    are the supporting lines printed after it; ``report`` is the data-quality report
    when the file was read far enough to produce one.
    """

    def __init__(
        self,
        sentence: str,
        details: Sequence[str] = (),
        report: QualityReport | None = None,
    ) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.details = tuple(details)
        self.report = report


def quote(value: object, limit: int = 40) -> str:
    """A value as the operator would type it, shortened for messages."""
    text = str(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
