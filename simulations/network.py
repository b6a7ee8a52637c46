"""The synthetic Québec network: centres, their students, and files on disk.

``generate_network`` draws harmonised records (``common.schema.COLUMNS``) for the 72
school service centres, or for a deterministic, representative subset of them. Each
centre draws from its own random stream, derived from the seed and the centre's place
in the fixed table, so a centre's records depend only on the seed, the centre and its
size: the same seed always gives identical frames.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.csv_output import write_csv
from simulations.centres import PROFILES, allocate_students, select_centres
from simulations.students import centre_frame

MANIFEST = "centres.json"
FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class CentreInfo:
    """One centre of the network, as written to the manifest.

    ``sector`` is "fr", "en" (anglophone school boards) or "indigenous"; ``students``
    the number of records generated; ``base_rate`` the target dropout rate (0-1).
    """

    centre_id: str
    name: str
    region: str
    sector: str
    indigenous_governed: bool
    students: int
    base_rate: float


@dataclass(frozen=True)
class Network:
    """A generated network: the centres in table order and their records."""

    centres: tuple[CentreInfo, ...]
    frames: dict[str, pd.DataFrame]
    seed: int


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}.")


def generate_network(*, centres: int = 72, students: int = 369_000, seed: int = 7,
                     include_indigenous_boards: bool = True,
                     consent_refusal_rate: float = 0.02, unlabelled_rate: float = 0.0) -> Network:
    """Generate the synthetic network of ``centres`` centres and ``students`` records.

    Parameters
    ----------
    centres
        Number of centres, 1-72. Fewer than 72 take a representative subset (the CSS de
        Montréal, an anglophone board, small rural centres); without the Indigenous
        boards at most 70 exist.
    students
        Total number of records (students), shared in proportion to the centres' real
        sizes; exactly this many are generated.
    seed
        Seed of every random draw: the same seed gives identical frames.
    include_indigenous_boards
        Whether the Cree School Board and Kativik Ilisarniliriniq take part (they opt
        in themselves); they take two of the places when ``centres`` is at least 3.
    consent_refusal_rate
        Share (0-1) of records whose consent is false.
    unlabelled_rate
        Share (0-1) of records without a label (current students, only scored).
    """
    if not 1 <= centres <= len(PROFILES):
        raise ValueError(f"centres must be between 1 and {len(PROFILES)}, got {centres}.")
    _check_rate("consent_refusal_rate", consent_refusal_rate)
    _check_rate("unlabelled_rate", unlabelled_rate)
    profiles = select_centres(centres, include_indigenous_boards=include_indigenous_boards)
    sizes = allocate_students(profiles, students)
    place = {profile.centre_id: i for i, profile in enumerate(PROFILES)}
    infos: list[CentreInfo] = []
    frames: dict[str, pd.DataFrame] = {}
    for profile, size in zip(profiles, sizes, strict=True):
        # One stream per centre of the full table: a centre's records do not change
        # when other centres join or leave the network.
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(place[
            profile.centre_id],)))
        frames[profile.centre_id] = centre_frame(
            profile, size, rng, consent_refusal_rate=consent_refusal_rate,
            unlabelled_rate=unlabelled_rate)
        infos.append(CentreInfo(profile.centre_id, profile.name, profile.region,
                                profile.sector, profile.indigenous_governed, size,
                                profile.base_rate))
    return Network(tuple(infos), frames, seed)


def write_network(network: Network, out_dir: Path, fmt: str = "parquet") -> list[Path]:
    """Write one file per centre (``<centre_id>.parquet`` or ``.csv``) and ``centres.json``.

    Returns the data files in centre order; ``out_dir`` is created if needed.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for info in network.centres:
        path = out_dir / f"{info.centre_id}.{fmt}"
        frame = network.frames[info.centre_id]
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            write_csv(path, frame)  # formula cells neutralised (common.csv_output)
        files.append(path)
    manifest = [asdict(info) for info in network.centres]
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    return files


def read_manifest(out_dir: Path) -> list[CentreInfo]:
    """The centres listed in ``out_dir/centres.json``, in the order written."""
    entries = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
    return [CentreInfo(**entry) for entry in entries]
