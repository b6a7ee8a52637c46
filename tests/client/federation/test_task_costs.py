"""What a centre task no longer recomputes (docs/BENCHMARKS.md, quebec-72's per-task
costs): the figures are the same as before, and every cache gives way when its input
changes."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from client.federation.rounds import resolve_data_source
from client.ingest import centre_data as data_module
from client.ingest.centre_data import CentreData
from client.privacy import student_budget
from client.privacy.cohorts import (
    Booked,
    Cohort,
    Mechanism,
    covering,
    largest_student_epsilon,
    pseudonym_key,
    student_epsilons,
    student_hashes,
)
from client.privacy.evaluation import evaluation_release
from client.site_policy import SitePolicy
from common.config import RunConfig
from common.equity.audit import CELL_LENGTH, all_cell_keys, centre_cells
from common.privacy.accounting import filter_epsilon
from tests.client.conftest import harmonised_frame, write_csv

DELTA = 1e-6


def _by_student(students: list[bytes], cohorts: list[Cohort], booked: list[Booked],
                extra: list[Mechanism], exclude_run: str | None) -> list[float]:
    """Each student's epsilon composed student by student, from the definition: the
    uncovered rows, ``extra`` and the rows of every cohort the student is in."""
    if exclude_run is not None:
        cohorts = [c for c in cohorts if c.run_id != exclude_run]
        booked = [b for b in booked if b[0] != exclude_run]
    out = []
    for student in students:
        history = list(extra)
        for run_id, kind, server_round, mechanism in booked:
            cover = covering(cohorts, run_id, kind, server_round)
            if cover is None or student in cover.members:
                history.append(mechanism)
        out.append(filter_epsilon(history, DELTA))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_per_student_epsilons_by_partition_are_those_composed_student_by_student(
        seed: int) -> None:
    rng = random.Random(seed)
    everyone = [bytes([i // 256, i % 256]) * 8 for i in range(300)]
    cohorts, booked = [], []
    for cid, (run, kind, first) in enumerate(
            [("a", "train", 0), ("a", "train", 1), ("a", "evaluate", 0), ("b", "train", 0),
             ("b", "evaluate", 0), ("c", "train", 2)], start=1):
        members = frozenset(rng.sample(everyone, rng.randint(0, 250)))
        cohorts.append(Cohort(cid, "t", run, kind, first, kind, len(members), 0, members))
    for run in ("a", "b", "c", "old"):  # "old": booked before cohorts, charged to all
        for kind in ("train", "evaluate"):
            for server_round in range(rng.randint(0, 3)):
                booked.append((run, kind, server_round,
                               (rng.uniform(0.8, 3.0), rng.uniform(0.01, 1.0), rng.randint(1, 40))))
    students = [*rng.sample(everyone, 120), everyone[0], everyone[0],  # duplicates too
                b"\xff" * 16]  # in no cohort
    for extra, exclude in (([], None), ([(1.1, 0.1, 30)], "a"), ([(50.0, 1.0, 1)], "b")):
        expected = _by_student(students, cohorts, booked, extra, exclude)
        got = student_epsilons(students, cohorts, booked, DELTA, extra=extra,
                               exclude_run=exclude)
        assert got.tolist() == pytest.approx(expected, rel=1e-12, abs=0)
    groups: list[list[bytes]] = [students, sorted(set(everyone)), []]
    for group in groups:
        assert largest_student_epsilon(group, cohorts, booked, DELTA) == pytest.approx(
            max(_by_student(group, cohorts, booked, [], None), default=0.0), rel=1e-12)


def test_pseudonym_hashes_are_kept_for_every_centre_an_actor_serves_and_only_theirs() -> None:
    student_budget.forget_hashes()
    key, other_key = pseudonym_key(b"k" * 32), pseudonym_key(b"j" * 32)
    # quebec-72: 72 centres, each a training and a held-out set.
    sets = [tuple(f"c{c}-{part}-{i}" for i in range(50)) for c in range(72)
            for part in ("train", "test")]
    first = [student_budget._hashes(key, ids) for ids in sets]
    again = [student_budget._hashes(key, ids) for ids in sets]
    info = student_budget._hashes.cache_info()
    assert (info.misses, info.hits) == (144, 144)
    assert again == first and first[0] == tuple(student_hashes(sets[0], key))
    # Another key (another centre's records key, a key rotated) is another entry.
    assert student_budget._hashes(other_key, sets[0]) == tuple(student_hashes(sets[0], other_key))
    assert student_budget._hashes(other_key, sets[0]) != first[0]
    # A changed extract (one pseudonym replaced) is hashed again, not served the old.
    changed = (*sets[0][:-1], "someone-new")
    assert student_budget._hashes(key, changed) == tuple(student_hashes(changed, key))
    assert student_budget._hashes(key, changed)[-1] != first[0][-1]
    student_budget.forget_hashes()
    assert student_budget._hashes.cache_info().currsize == 0


def test_a_centre_finds_its_file_by_name_order_and_sees_a_file_added(tmp_path: Path) -> None:
    for name in ("b.parquet", "a.csv", "c.parquet", "notes.txt", "mapping.toml"):
        (tmp_path / name).write_text("")
    config = RunConfig.from_flat({"data_dir": str(tmp_path)})
    found = [Path(resolve_data_source(config, {"partition-id": i})[0]).name for i in range(3)]
    assert found == [p.name for p in sorted(tmp_path.iterdir())
                     if p.suffix in (".csv", ".parquet")] == ["a.csv", "b.parquet", "c.parquet"]
    assert resolve_data_source(config, {"partition-id": 0})[1] == str(tmp_path / "mapping.toml")
    (tmp_path / "0.csv").write_text("")  # sorts first: every partition moves up one
    assert Path(resolve_data_source(config, {"partition-id": 1})[0]).name == "a.csv"


def _held_out(n: int) -> CentreData:
    rng = np.random.default_rng(0)
    audit = pd.DataFrame({"sex": rng.choice(["F", "M"], n), "ehdaa": rng.random(n) < 0.2,
                          "indigenous": rng.random(n) < 0.1,
                          "immigrant_generation": rng.choice(["0", "1", "2"], n),
                          "home_language": rng.choice(["fr", "en", "other"], n),
                          "imse_decile": rng.integers(1, 11, n)})
    y = (rng.random(n) < 0.3).astype(np.float32)
    return CentreData(np.zeros((0, 3), np.float32), np.zeros(0, np.float32),
                      np.zeros((n, 3), np.float32), y, SitePolicy(), audit)


def test_evaluation_rounds_release_zero_equity_cells_the_audit_has_its_own_exchange() -> None:
    config = RunConfig.from_flat({"rounds": 3, "privacy.reproducible_noise": True})
    assert config.privacy.dp and config.privacy.evaluation_noise
    data = _held_out(400)
    scores = np.random.default_rng(1).random(400)
    for server_round in (1, 2):
        release = evaluation_release(config, data, scores, server_round, None, "run")
        cells = {k: v for k, v in release.items() if k.startswith("eq.")}
        assert list(cells) == all_cell_keys()
        assert all(vector == [0.0] * CELL_LENGTH for vector in cells.values())
    final = evaluation_release(config, data, scores, 3, None, "run")
    assert [k for k in final if k.startswith("eq.")] == all_cell_keys()
    # The audit's cells leave in the audit exchange (tests/client/privacy/test_audit_request.py).
    assert all(final[k] == [0.0] * CELL_LENGTH for k in all_cell_keys())


def _load_fresh(path: Path) -> CentreData:
    """What another process (an actor that never read this centre) loads."""
    data_module.forget_centres()
    return data_module.load_centre(str(path), None, None, 0.3)


def _same(a: CentreData, b: CentreData) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype
    assert a.ids_train == b.ids_train and a.ids_test == b.ids_test
    assert all(type(i) is str for i in b.ids_train)
    pd.testing.assert_frame_equal(a.audit_test, b.audit_test)


def test_an_engines_actors_share_an_extract_read_once_and_read_a_changed_one_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    extract = write_csv(tmp_path / "centre.csv", harmonised_frame(200))
    shared = tmp_path / "extracts"
    monkeypatch.setenv(data_module.EXTRACT_CACHE_ENV, str(shared))
    first = _load_fresh(extract)
    assert len(list(shared.glob("*.npz"))) == 1
    real_prepare = data_module.federated_extract

    def not_read(*args: object) -> None:
        raise AssertionError("the extract was read again")

    monkeypatch.setattr(data_module, "federated_extract", not_read)
    _same(first, _load_fresh(extract))  # the second actor: from the shared folder
    # The scores' equity cells come out the same from either.
    scores = np.random.default_rng(2).random(first.num_test)
    assert centre_cells(first.audit_test, scores, first.y_test, threshold=0.5,
                        sensitive_allowed=True) == centre_cells(
        _load_fresh(extract).audit_test, scores, first.y_test, threshold=0.5,
        sensitive_allowed=True)
    # A changed extract (one student's grade) is another file: read, validated, encoded.
    changed = harmonised_frame(200)
    changed.loc[0, "grade_math"] = 12.0
    write_csv(extract, changed)
    with pytest.raises(AssertionError, match="read again"):
        _load_fresh(extract)
    monkeypatch.setattr(data_module, "federated_extract", real_prepare)
    again = _load_fresh(extract)
    assert len(list(shared.glob("*.npz"))) == 2
    assert not np.array_equal(np.concatenate([again.x_train, again.x_test]),
                              np.concatenate([first.x_train, first.x_test]))
    # Another held-out share is another entry; a damaged entry is ignored, not trusted.
    data_module.forget_centres()
    data_module.load_centre(str(extract), None, None, 0.2)
    assert len(list(shared.glob("*.npz"))) == 3
    entries = sorted(shared.glob("*.npz"))
    whole = {entry: entry.read_bytes() for entry in entries}
    for entry in entries:
        entry.write_bytes(b"not an archive")
    _same(again, _load_fresh(extract))
    for entry in entries:  # cut short (not fsynced, issue 32: a crash of the machine)
        entry.write_bytes(whole[entry][: len(whole[entry]) // 2])
    _same(again, _load_fresh(extract))


def test_without_the_engines_folder_nothing_is_written(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(data_module.EXTRACT_CACHE_ENV, raising=False)
    extract = write_csv(tmp_path / "centre.csv", harmonised_frame(50))
    _load_fresh(extract)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["centre.csv"]
