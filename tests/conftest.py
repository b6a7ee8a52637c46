"""What every test starts from.

The commands choose their language from ``--lang``, else the locale, else French
(``common.i18n.choose``). A test that reads a command's words asks for its language with
``--lang``, or expects the default, French: so the locale of the machine running the
tests must not choose for them. Every test process, and the processes it starts, see a
locale that names no language of ours.
"""

from __future__ import annotations

import os

for _name in ("PERSEVERANCE_LANG", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"
