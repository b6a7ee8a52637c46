"""A large French-style extract (semicolons, decimal commas, Windows-1252, French
headers) and its mapping, for the memory-bound test and docs/BENCHMARKS.md.

``python -m tests.client.big_extract OUT.csv MEGABYTES`` writes one by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HEADER = (
    "No fiche;École;Année scolaire;Consentement;Niveau;Note français;Note mathématique;"
    "Taux d'absence;Langue maternelle;Sexe;Enseignant titulaire"
)
MAPPING = """\
[source]
delimiter = ";"
encoding = "cp1252"
decimal = ","

[columns]
student_id = "No fiche"
school_id = "École"
school_year = "Année scolaire"
consent = { from = "Consentement", recode = { oui = true, non = false } }
grade_level = "Niveau"
grade_french = "Note français"
grade_math = "Note mathématique"
absence_rate = "Taux d'absence"
sex = "Sexe"

[columns.home_language]
from = "Langue maternelle"
recode = { "Français" = "fr", "Anglais" = "en", "Autre" = "other" }
"""
_ROWS_PER_CHUNK = 50_000


def write_big_extract(path: Path, megabytes: float, seed: int = 0) -> Path:
    """Write about ``megabytes`` MB of rows (about 95 bytes each) in chunks."""
    rng = np.random.default_rng(seed)
    target = int(megabytes * 1_000_000)
    languages = np.array(["Français", "Anglais", "Autre"])
    with path.open("w", encoding="cp1252", newline="") as handle:
        handle.write(HEADER + "\r\n")
        first = 0
        while handle.tell() < target:
            n = _ROWS_PER_CHUNK
            ids = np.arange(first, first + n)
            french = rng.uniform(30, 100, n).round(1)
            math = rng.uniform(20, 100, n).round(1)
            absence = rng.uniform(0, 0.3, n).round(3)
            lines = [
                f"F{i:09d};École {i % 97:03d};2023-2024;{'oui' if i % 9 else 'non'};"
                f"{1 + i % 5};{str(f).replace('.', ',')};{str(m).replace('.', ',')};"
                f"{str(a).replace('.', ',')};{languages[i % 3]};{'FM'[i % 2]};"
                f"Mme Tremblay-{i % 40}"
                for i, f, m, a in zip(ids, french, math, absence, strict=True)
            ]
            handle.write("\r\n".join(lines) + "\r\n")
            first += n
    return path


def write_mapping(path: Path) -> Path:
    path.write_text(MAPPING, encoding="utf-8")
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1])
    write_big_extract(out, float(sys.argv[2]))
    write_mapping(out.with_suffix(".toml"))
    print(f"{out}: {out.stat().st_size:,} bytes")
