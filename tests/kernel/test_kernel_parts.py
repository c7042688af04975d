"""Parts of the episode kernel checked on their own, where the exact comparison with the SimPy
model (tests/model/test_exact_model.py) would reach them only rarely."""
import numpy as np
import pytest

from kernels.episode import N_WORK_ROWS, PRIORITY, SORT_RANKED, SORT_RUN, _sort_by_priority


@pytest.mark.parametrize("n", [1, 2, 5, SORT_RUN, SORT_RANKED, SORT_RANKED + 1, 2 * SORT_RUN + 3, 130, 257])
def test_p_list_is_a_stable_sort_by_priority_descending(n):
    """Both paths (counted ranks up to SORT_RANKED, runs and merges above): priority descending,
    equal priorities in index order, with many ties and zeros (infinite planned offers)."""
    gen = np.random.default_rng(n)
    for _ in range(20):
        work = np.zeros((N_WORK_ROWS, n))
        work[PRIORITY] = np.round(gen.random(n) * 4) / 4 * (gen.random(n) < 0.9)
        order, spare = np.zeros(n, np.int64), np.zeros(n, np.int64)
        _sort_by_priority(work, order, spare)
        assert order.tolist() == np.argsort(-work[PRIORITY], kind="stable").tolist()
