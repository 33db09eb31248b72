import numpy as np

from simlm_cli.training.finetuning.groups import draw_group


def test_draw_group_takes_one_positive_and_count_of_the_pool() -> None:
    rng = np.random.default_rng(0)
    positive, negatives = draw_group(rng, ["p1", "p2"], ["n1", "n2", "n3", "n4"], 3)
    assert positive in {"p1", "p2"}
    assert len(negatives) == 3 and len(set(negatives)) == 3  # enough in the pool: no repeats
    assert set(negatives) <= {"n1", "n2", "n3", "n4"}


def test_a_small_pool_repeats_so_every_group_has_the_same_size() -> None:
    _, negatives = draw_group(np.random.default_rng(1), ["p"], ["n1", "n2"], 5)
    assert len(negatives) == 5 and set(negatives) <= {"n1", "n2"}


def test_the_draws_depend_only_on_the_generator() -> None:
    # Exact resume replays a group from (seed, epoch, row): the same generator state gives the same group.
    draws = [draw_group(np.random.default_rng([7, 2, 11]), ["a", "b", "c"], list(range(50)), 4) for _ in range(2)]
    assert draws[0] == draws[1]
    assert draw_group(np.random.default_rng(3), ["p"], ["n"], 0) == ("p", [])
