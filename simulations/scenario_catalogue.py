"""The shipped scenarios' descriptions as messages of the catalogue.

A scenario's ``description`` is English in its TOML file, as every message is in the
code; ``perseverance-sim list`` shows it in the command's language through the catalogue
(a description the catalogue does not hold, a researcher's own file, stays as written).
``extract`` is the Babel extraction method that finds them (``babel.cfg``: the
``scenario`` method over ``simulations/scenarios/*.toml``), so a new shipped scenario
whose description has no French fails the catalogue's test.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any


def extract(
    fileobj: IO[bytes], keywords: Mapping[str, Any], comment_tags: Collection[str],
    options: Any,
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extraction method of a scenario file: its ``description``, if any."""
    text = fileobj.read().decode(str(options.get("encoding", "utf-8")))
    description = tomllib.loads(text).get("description")
    if isinstance(description, str) and description:
        line = next((number for number, content in enumerate(text.splitlines(), start=1)
                     if content.lstrip().startswith("description")), 1)
        yield line, "", description, []
