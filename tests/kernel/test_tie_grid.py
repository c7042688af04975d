"""The shape grid (docs/MODEL.md, section 8): a study row's tie of a shape its base lacks is drawn
from weighted grid tables; its error against the exact Beta quantile is bounded, it is monotone in
u, a shape on a grid node is that node's table, and plain runs keep their own tables."""
import math

import numpy as np
from numba import njit
from scipy.special import betaincinv

from engine.model import tie_tables as tt
from kernels import rng

BOUND = 3e-4  # docs/MODEL.md: table error (1.5e-4) + grid error (1.2e-4 measured)


@njit(cache=True)
def _draws(tables, mix, u):
    out = np.empty((mix.shape[0], u.shape[0]))
    for s in range(mix.shape[0]):
        for j in range(u.shape[0]):
            out[s, j] = rng.tie_draw(tables, mix, s, u[j])
    return out


U = np.concatenate([np.linspace(0.0005, 0.9995, 400),
                    np.exp(np.linspace(math.log(2.0**-33), math.log(1 / 32), 30)),
                    1 - np.exp(np.linspace(math.log(2.0**-33), math.log(1 / 32), 30))])


def test_grid_draws_are_within_the_documented_bound_of_the_exact_quantile():
    gen = np.random.default_rng(3)
    shapes = np.column_stack([gen.uniform(0.02, 0.98, 24), np.exp(gen.uniform(math.log(0.5), math.log(300), 24))])
    for how in (1, 2):
        tables, mix = tt.kernel_tables(shapes, np.full(len(shapes), how, np.int8))
        got = _draws(tables, mix, U)
        exact = np.array([betaincinv(m * c, (1 - m) * c, U) for m, c in shapes])
        assert np.abs(got - exact).max() < BOUND, how
        assert (np.diff(got[:, np.argsort(U)], axis=1) >= 0).all()  # monotone in u
        assert (mix[:, 1] >= 0).all()  # really interpolated (no shape here is a node)


def test_a_mean_a_step_off_the_grid_moves_the_draw_and_a_node_is_its_table():
    node = np.array([[128 / 512, 8.0]])
    tables, mix = tt.kernel_tables(node, np.array([1], np.int8))
    own, ident = tt.kernel_tables(node, None)
    assert mix[0, 1] < 0  # one part, weight 1
    assert np.array_equal(_draws(tables, mix, U), _draws(own, ident, U))
    off = np.array([[128.5 / 512, 8.0]])
    t2, m2 = tt.kernel_tables(off, np.array([1], np.int8))
    assert (_draws(t2, m2, U) >= _draws(own, ident, U)).all() and (_draws(t2, m2, U) > _draws(own, ident, U)).any()


def test_plain_runs_draw_from_their_own_tables():
    shapes = np.array([[0.3, 5.0], [0.7, 2.0]])
    tables, mix = tt.kernel_tables(shapes, None)
    assert np.array_equal(mix[:, 0], [0, 1]) and (mix[:, 1] == -1).all()
    assert np.array_equal(tables, tt.beta_tables([(0.3, 5.0), (0.7, 2.0)]))
