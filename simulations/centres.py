"""The 72 school service centres of the synthetic Québec network, and how a smaller
network is drawn from them.

The table is fixed (it does not depend on the seed), so ``css-07`` is the same kind
of centre in every run. Sizes are public secondary enrolments in the order of
magnitude of the real centres (about 369,000 students in all, lognormal-like, from
about 150 to about 29,000 for the CSS de Montréal); base rates are plausible rates of
"sortie sans diplôme ni qualification". Names are numbered on purpose: the rates are
synthetic and must never be read as those of a real centre. The two Indigenous-governed
boards keep their names because they take part (or not) as themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Immigrant generations 1 and 2 (shares 0-1) by kind of territory; the Montréal and
# Laval-like centres receive most newcomers.
IMMIGRANT_SHARES: dict[str, tuple[float, float]] = {
    "metro": (0.22, 0.30),
    "suburb": (0.10, 0.18),
    "city": (0.05, 0.06),
    "rural": (0.01, 0.02),
    "remote": (0.005, 0.01),
}

# Self-declared Indigenous students (share 0-1) in the public centres, by region; the
# Indigenous-governed boards have their own share below.
INDIGENOUS_SHARE_BY_REGION: dict[str, float] = {
    "Nord-du-Québec": 0.06,
    "Côte-Nord": 0.08,
    "Abitibi-Témiscamingue": 0.05,
    "Gaspésie–Îles-de-la-Madeleine": 0.03,
    "Mauricie": 0.02,
}
DEFAULT_INDIGENOUS_SHARE = 0.01
INDIGENOUS_BOARD_SHARE = 0.97


@dataclass(frozen=True)
class CentreProfile:
    """What the generator knows of one centre before drawing its students.

    ``size`` is the public secondary enrolment in the full network (students);
    ``base_rate`` the target dropout rate (0-1); ``setting`` the kind of territory
    (a key of ``IMMIGRANT_SHARES``); ``english_home_share`` the share (0-1) of
    non-immigrant students who speak English at home; ``other_home_share`` the share
    speaking another language (Cree, Inuktitut, ...) at home.
    """

    centre_id: str
    name: str
    region: str
    sector: str
    size: int
    base_rate: float
    setting: str
    english_home_share: float
    other_home_share: float = 0.01

    @property
    def indigenous_governed(self) -> bool:
        """True for the Cree School Board and Kativik Ilisarniliriniq."""
        return self.sector == "indigenous"

    @property
    def indigenous_share(self) -> float:
        """Share (0-1) of self-declared Indigenous students."""
        if self.indigenous_governed:
            return INDIGENOUS_BOARD_SHARE
        return INDIGENOUS_SHARE_BY_REGION.get(self.region, DEFAULT_INDIGENOUS_SHARE)

    @property
    def immigrant_shares(self) -> tuple[float, float]:
        """Shares (0-1) of first- and second-generation immigrant students."""
        if self.indigenous_governed:
            return 0.0, 0.005
        first, second = IMMIGRANT_SHARES[self.setting]
        if self.sector == "en":
            # The Charter of the French language sends most newcomers to French schools;
            # English boards receive mainly children of parents schooled in English.
            return 0.2 * first, 0.6 * second
        return first, second

    @property
    def disadvantage(self) -> float:
        """Mean socio-economic disadvantage of the centre's schools (standard units).

        Tied to the base rate because, in Québec as elsewhere, the centres with the
        most dropout are those with the most disadvantaged schools.
        """
        if self.indigenous_governed:
            return 1.6
        return 5.0 * (self.base_rate - 0.165)


# (region, size, base rate, setting) of the 60 francophone centres, region by region.
_FRANCOPHONE: tuple[tuple[str, int, float, str], ...] = (
    ("Bas-Saint-Laurent", 3200, 0.12, "rural"),
    ("Bas-Saint-Laurent", 1000, 0.14, "rural"),
    ("Bas-Saint-Laurent", 2600, 0.11, "rural"),
    ("Bas-Saint-Laurent", 1200, 0.15, "rural"),
    ("Saguenay–Lac-Saint-Jean", 5000, 0.12, "city"),
    ("Saguenay–Lac-Saint-Jean", 3600, 0.11, "rural"),
    ("Saguenay–Lac-Saint-Jean", 3100, 0.13, "rural"),
    ("Saguenay–Lac-Saint-Jean", 3300, 0.12, "rural"),
    ("Capitale-Nationale", 10000, 0.17, "city"),
    ("Capitale-Nationale", 5500, 0.08, "city"),
    ("Capitale-Nationale", 10000, 0.11, "city"),
    ("Capitale-Nationale", 2900, 0.13, "rural"),
    ("Capitale-Nationale", 1100, 0.14, "rural"),
    ("Mauricie", 6500, 0.19, "city"),
    ("Mauricie", 3800, 0.21, "rural"),
    ("Mauricie", 450, 0.26, "remote"),
    ("Estrie", 6500, 0.17, "city"),
    ("Estrie", 2600, 0.21, "rural"),
    ("Estrie", 3100, 0.18, "rural"),
    ("Montréal", 28600, 0.22, "metro"),
    ("Montréal", 15500, 0.24, "metro"),
    ("Montréal", 18500, 0.15, "metro"),
    ("Outaouais", 6500, 0.21, "city"),
    ("Outaouais", 7000, 0.22, "city"),
    ("Outaouais", 2400, 0.25, "rural"),
    ("Outaouais", 1100, 0.26, "rural"),
    ("Abitibi-Témiscamingue", 1400, 0.22, "rural"),
    ("Abitibi-Témiscamingue", 800, 0.23, "rural"),
    ("Abitibi-Témiscamingue", 700, 0.21, "rural"),
    ("Abitibi-Témiscamingue", 3100, 0.24, "rural"),
    ("Abitibi-Témiscamingue", 2800, 0.20, "rural"),
    ("Côte-Nord", 1500, 0.20, "rural"),
    ("Côte-Nord", 1300, 0.19, "rural"),
    ("Côte-Nord", 250, 0.22, "remote"),
    ("Nord-du-Québec", 500, 0.23, "remote"),
    ("Gaspésie–Îles-de-la-Madeleine", 1200, 0.19, "rural"),
    ("Gaspésie–Îles-de-la-Madeleine", 1300, 0.18, "rural"),
    ("Gaspésie–Îles-de-la-Madeleine", 500, 0.13, "remote"),
    ("Chaudière-Appalaches", 8000, 0.09, "city"),
    ("Chaudière-Appalaches", 3800, 0.13, "rural"),
    ("Chaudière-Appalaches", 6000, 0.14, "rural"),
    ("Chaudière-Appalaches", 2400, 0.16, "rural"),
    ("Laval", 15500, 0.17, "suburb"),
    ("Lanaudière", 11000, 0.19, "suburb"),
    ("Lanaudière", 9000, 0.22, "rural"),
    ("Laurentides", 10000, 0.23, "suburb"),
    ("Laurentides", 10000, 0.17, "suburb"),
    ("Laurentides", 3800, 0.22, "rural"),
    ("Laurentides", 2400, 0.27, "rural"),
    ("Montérégie", 11000, 0.20, "suburb"),
    ("Montérégie", 10000, 0.12, "suburb"),
    ("Montérégie", 10000, 0.14, "suburb"),
    ("Montérégie", 5000, 0.18, "rural"),
    ("Montérégie", 7000, 0.17, "rural"),
    ("Montérégie", 5500, 0.16, "rural"),
    ("Montérégie", 3600, 0.21, "rural"),
    ("Montérégie", 5500, 0.17, "rural"),
    ("Montérégie", 6500, 0.13, "rural"),
    ("Centre-du-Québec", 3500, 0.17, "rural"),
    ("Centre-du-Québec", 3800, 0.15, "rural"),
)

# The nine anglophone school boards (region of the head office).
_ANGLOPHONE: tuple[tuple[str, int, float, str], ...] = (
    ("Montréal", 8000, 0.14, "metro"),
    ("Montréal", 9000, 0.11, "metro"),
    ("Laval", 5500, 0.17, "suburb"),
    ("Montérégie", 4000, 0.14, "suburb"),
    ("Montérégie", 2400, 0.16, "rural"),
    ("Outaouais", 3500, 0.19, "city"),
    ("Capitale-Nationale", 1600, 0.10, "city"),
    ("Estrie", 2600, 0.18, "rural"),
    ("Gaspésie–Îles-de-la-Madeleine", 450, 0.22, "remote"),
)

MONTREAL_CENTRE_ID = "css-20"  # the CSS de Montréal, the largest centre
INDIGENOUS_BOARD_IDS = ("cree", "kativik")


def _build_profiles() -> tuple[CentreProfile, ...]:
    profiles: list[CentreProfile] = []
    for number, (region, size, rate, setting) in enumerate(_FRANCOPHONE, start=1):
        english = 0.05 if setting == "metro" else 0.02
        profiles.append(
            CentreProfile(f"css-{number:02d}", f"CSS {number:02d} ({region})", region, "fr",
                          size, rate, setting, english)
        )
    # The special-status board of the Lower North Shore: small, remote, mostly anglophone
    # homes but counted with neither the francophone centres nor the nine English boards.
    number = len(profiles) + 1
    profiles.append(
        CentreProfile(f"css-{number:02d}", f"CS {number:02d} (Côte-Nord, special status)",
                      "Côte-Nord", "fr", 150, 0.20, "remote", 0.55)
    )
    for region, size, rate, setting in _ANGLOPHONE:
        number = len(profiles) + 1
        profiles.append(
            CentreProfile(f"css-{number:02d}", f"English School Board {number:02d} ({region})",
                          region, "en", size, rate, setting, 0.68, 0.02)
        )
    profiles.append(
        CentreProfile("cree", "Cree School Board", "Nord-du-Québec", "indigenous", 1500, 0.72,
                      "remote", 0.12, 0.84)
    )
    profiles.append(
        CentreProfile("kativik", "Kativik Ilisarniliriniq", "Nord-du-Québec", "indigenous",
                      1000, 0.79, "remote", 0.08, 0.89)
    )
    return tuple(profiles)


PROFILES: tuple[CentreProfile, ...] = _build_profiles()
PROFILE_BY_ID: dict[str, CentreProfile] = {p.centre_id: p for p in PROFILES}
assert len(PROFILES) == 72, len(PROFILES)
assert PROFILE_BY_ID[MONTREAL_CENTRE_ID].size == max(p.size for p in PROFILES)

# Smallest centre a network may hold (students): below that a centre has too few
# dropouts to train or evaluate anything.
MIN_CENTRE_STUDENTS = 20


def _van_der_corput(count: int) -> list[float]:
    """The first ``count`` points (0-1) of the base-2 van der Corput sequence, from 0.5.

    Every prefix of it is spread evenly over 0-1, so the subsets it picks are nested.
    """
    points = []
    for k in range(1, count + 1):
        value, denominator = 0.0, 1.0
        while k:
            denominator *= 2.0
            k, bit = divmod(k, 2)
            value += bit / denominator
        points.append(value)
    return points


def _public_centres_by_priority() -> tuple[CentreProfile, ...]:
    """The 70 public centres in the order a smaller network takes them.

    First the CSS de Montréal (the large urban centre), then the anglophone board of
    median size, then the others at evenly spread places of the size ranking, so any
    prefix holds large, middle-sized and small rural centres alike.
    """
    public = [p for p in PROFILES if not p.indigenous_governed]
    english = sorted((p for p in public if p.sector == "en"), key=lambda p: p.size)
    first = [PROFILE_BY_ID[MONTREAL_CENTRE_ID], english[len(english) // 2]]
    rest = sorted((p for p in public if p not in first), key=lambda p: -p.size)
    order: list[CentreProfile] = []
    # 2 ** 7 points land on every rank of up to 128 centres.
    for point in _van_der_corput(2**7):
        candidate = rest[int(point * len(rest))]
        if candidate not in order:
            order.append(candidate)
    assert len(order) == len(rest), "the priority order must cover every centre"
    return tuple(first + order)


PUBLIC_PRIORITY: tuple[CentreProfile, ...] = _public_centres_by_priority()


def select_centres(count: int, *, include_indigenous_boards: bool) -> tuple[CentreProfile, ...]:
    """A deterministic, representative subset of ``count`` centres, in table order.

    Public centres are taken in ``PUBLIC_PRIORITY`` order, so a smaller network is
    always part of a larger one. The Indigenous-governed boards take two of the places
    when they opt in and ``count`` is at least 3; without them the same public centres
    plus two more are taken. Fewer centres are returned when fewer exist (70 without
    those boards).
    """
    if count < 1:
        raise ValueError(f"A network needs at least one centre, got {count}.")
    boards = [p for p in PROFILES if p.indigenous_governed]
    chosen = boards if include_indigenous_boards and count >= 3 else []
    chosen = chosen + list(PUBLIC_PRIORITY[: count - len(chosen)])
    order = {p.centre_id: i for i, p in enumerate(PROFILES)}
    return tuple(sorted(chosen, key=lambda p: order[p.centre_id]))


def allocate_students(profiles: tuple[CentreProfile, ...], total: int) -> tuple[int, ...]:
    """Rescale the centres' sizes so they add up to exactly ``total`` students.

    Centres that would fall below ``MIN_CENTRE_STUDENTS`` get that minimum and the rest
    is shared in proportion to the table's sizes, rounded by largest remainder.
    """
    if total < MIN_CENTRE_STUDENTS * len(profiles):
        raise ValueError(
            f"{total} students cannot fill {len(profiles)} centres: each centre needs at "
            f"least {MIN_CENTRE_STUDENTS} students."
        )
    weights = np.array([p.size for p in profiles], dtype=np.float64)
    at_minimum = np.zeros(len(profiles), dtype=bool)
    while True:
        shared = total - MIN_CENTRE_STUDENTS * int(at_minimum.sum())
        exact = np.where(at_minimum, float(MIN_CENTRE_STUDENTS),
                         weights * shared / weights[~at_minimum].sum())
        too_small = ~at_minimum & (exact < MIN_CENTRE_STUDENTS)
        if not too_small.any():
            break
        at_minimum |= too_small
    sizes = np.floor(exact).astype(np.int64)
    shortfall = total - int(sizes.sum())
    sizes[np.argsort(-(exact - sizes), kind="stable")[:shortfall]] += 1
    return tuple(int(s) for s in sizes)
