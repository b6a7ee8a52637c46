import numpy as np
import pandas as pd
import pytest

from common.equity.audit import (
    AUDIT_GROUPS,
    CELL_LENGTH,
    GROUP_BINS,
    UNKNOWN,
    cell_key,
    centre_cells,
)
from common.equity.consistency import NoisyCell, noisy_cells, reconcile, with_bands

BANDS = 2 * GROUP_BINS


Cells = dict[str, dict[str, NoisyCell]]


def _random_cells(rng: np.random.Generator, sizes: dict[str, int]) -> Cells:
    return {name: {str(g): NoisyCell(with_bands(rng.normal(50, 20, BANDS), 0.3),
                                     float(rng.uniform(1, 40)))
                   for g in range(k)} for name, k in sizes.items()}


def _kkt(cells: Cells, coordinate: int) -> tuple[dict, float]:
    """Weighted least squares under the constraints "each attribute's cells add up to
    the same total", solved as one linear (KKT) system by numpy: the reference."""
    keys = [(a, g) for a, by in cells.items() for g in by]
    n = len(keys) + 1  # the cells, then the total
    attributes = list(cells)
    size = n + len(attributes)
    kkt, rhs = np.zeros((size, size)), np.zeros(size)
    for i, (a, g) in enumerate(keys):
        kkt[i, i] = 2.0 / cells[a][g].variance
        rhs[i] = 2.0 * cells[a][g].vector[coordinate] / cells[a][g].variance
        row = n + attributes.index(a)
        kkt[row, i] = kkt[i, row] = 1.0
    for j in range(len(attributes)):
        kkt[n + j, n - 1] = kkt[n - 1, n + j] = -1.0
    solution = np.linalg.solve(kkt, rhs)
    return {key: solution[i] for i, key in enumerate(keys)}, solution[n - 1]


def test_the_reconciled_counts_are_the_constrained_least_squares_solution():
    rng = np.random.default_rng(1)
    cells = _random_cells(rng, {"a": 4, "b": 3, "c": 2, "d": 4})
    out, total = reconcile(cells, 0.3)
    assert total is not None
    for coordinate in range(BANDS):
        expected, expected_total = _kkt(cells, coordinate)
        assert total.vector[coordinate] == pytest.approx(expected_total)
        for (a, g), value in expected.items():
            assert out[a][g].vector[coordinate] == pytest.approx(value)
    # Every attribute now adds up to the total, in every band.
    for by in out.values():
        summed = np.sum([c.vector[:BANDS] for c in by.values()], axis=0)
        assert summed == pytest.approx(total.vector[:BANDS])


def test_counts_that_already_agree_are_kept_and_the_noise_falls_as_the_formula_says():
    rng = np.random.default_rng(2)
    true = {name: rng.dirichlet(np.ones(k), BANDS).T * 400 for name, k in
            {"a": 4, "b": 3, "c": 3, "d": 4, "e": 4, "f": 4}.items()}
    # The same totals in every attribute: rescale each to the first's.
    reference = true["a"].sum(axis=0)
    true = {name: counts * reference / counts.sum(axis=0) for name, counts in true.items()}
    exact = {name: {str(g): NoisyCell(with_bands(row, 0.3), 25.0) for g, row in enumerate(rows)}
             for name, rows in true.items()}
    kept, _ = reconcile(exact, 0.3)
    for name, by in exact.items():
        for g, cell in by.items():
            assert kept[name][g].vector == pytest.approx(cell.vector)
    errors: dict[tuple[str, str], list[np.ndarray]] = {}
    for _ in range(2000):
        noisy = {name: {g: NoisyCell(with_bands(c.vector[:BANDS] + rng.normal(0, 5, BANDS), 0.3),
                                     25.0) for g, c in by.items()} for name, by in exact.items()}
        out, _ = reconcile(noisy, 0.3)
        for name, by in out.items():
            for g, cell in by.items():
                error = cell.vector[:BANDS] - exact[name][g].vector[:BANDS]
                errors.setdefault((name, g), []).append(error)
    for (name, g), values in errors.items():
        e = np.asarray(values)
        assert np.abs(e.mean(axis=0)).max() < 0.35  # unbiased (sd of a mean: 0.1)
        assert e.var(axis=0).mean() == pytest.approx(out[name][g].variance, rel=0.06)
        assert out[name][g].variance < 25.0


def test_without_noise_nothing_is_reconciled():
    rng = np.random.default_rng(3)
    cells = _random_cells(rng, {"a": 3, "b": 2})
    cells["b"] = {g: NoisyCell(c.vector, 0.0) for g, c in cells["b"].items()}
    out, total = reconcile(cells, 0.3)
    assert total is None
    assert all(np.array_equal(out[a][g].vector, c.vector) for a, by in cells.items()
               for g, c in by.items())


def _audit(n: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    audit = pd.DataFrame({
        "sex": rng.choice(["F", "M", None], n),
        "ehdaa": rng.random(n) < 0.3,
        "indigenous": pd.array([None] * n, dtype="boolean"),
        "immigrant_generation": rng.choice(["0", "1", "9"], n),
        "home_language": rng.choice(["fr", "en"], n),
        "imse_decile": rng.integers(0, 11, n),
    })
    return audit, rng.random(n), (rng.random(n) < 0.2).astype(float)


@pytest.mark.parametrize("allowed", [True, False])
def test_every_attributes_cells_hold_every_student_once(allowed: bool):
    audit, p, y = _audit(300)
    cells = centre_cells(audit, p, y, threshold=0.3, sensitive_allowed=allowed)
    for group in AUDIT_GROUPS:
        students = sum(sum(cells[cell_key(group.name, v)][:BANDS]) for v in group.cells)
        assert students == 300, group.name
    # Missing, unknown ("9") and out-of-range (decile 0) values are in UNKNOWN.
    assert sum(cells[cell_key("indigenous", UNKNOWN)][:BANDS]) == 300
    assert sum(cells[cell_key("immigrant_generation", UNKNOWN)][:BANDS]) == (
        audit["immigrant_generation"] == "9").sum()
    if not allowed:  # a withheld attribute: every student in UNKNOWN, its values zeros
        assert sum(cells[cell_key("sex", UNKNOWN)][:BANDS]) == 300
        assert not any(any(cells[cell_key("sex", v)]) for v in ("F", "M", "X"))


def test_a_withheld_attributes_value_cells_stay_exact_zeros_under_noise():
    audit, p, y = _audit(300)
    cells = centre_cells(audit, p, y, threshold=0.3, sensitive_allowed=False, noise_std=5.0,
                         rng=np.random.default_rng(0))
    noisy = noisy_cells(cells, 25.0)
    assert noisy["sex"]["F"].variance == 0.0 and not noisy["sex"]["F"].vector.any()
    assert noisy["sex"][UNKNOWN].variance == 25.0
    out, total = reconcile(noisy, 0.3)
    assert total is not None and not out["sex"]["F"].vector.any()
    assert len(out["sex"][UNKNOWN].vector) == CELL_LENGTH
