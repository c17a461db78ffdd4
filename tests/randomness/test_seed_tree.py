"""The seed tree: named child seeds that are pure functions of (root, path)."""

import pickle

import numpy as np
import pandas as pd
import pytest

from glmmsim import InputTypeError, Model
from glmmsim.randomness import ReplicateSeeds, SeedTree, derive_key, seed_key


def test_a_child_is_the_same_however_often_it_is_derived():
    tree = SeedTree(11)
    first = [tree.child("replicate", r).key for r in range(5)]
    again = [tree.child("replicate", r).key for r in reversed(range(5))][::-1]
    assert first == again
    assert len(set(first)) == 5
    # unlike SeedSequence.spawn, which counts: spawning twice gives different children
    ss = np.random.SeedSequence(11)
    assert ss.spawn(1)[0].entropy == ss.spawn(1)[0].entropy
    assert ss.spawn(1)[0].spawn_key != ss.spawn(1)[0].spawn_key


def test_a_path_can_be_given_at_once_or_step_by_step():
    tree = SeedTree(3)
    assert tree.child("a", 1, "b").key == tree.child("a").child(1).child("b").key


def test_paths_that_differ_in_type_order_or_root_are_different_seeds():
    tree = SeedTree(3)
    keys = {
        tree.child("a", 1).key,
        tree.child("a", "1").key,
        tree.child(1, "a").key,
        SeedTree(4).child("a", 1).key,
        tree.key,
    }
    assert len(keys) == 5


def test_the_root_is_the_seed_key_and_trees_stand_for_their_key():
    assert SeedTree(5).key == seed_key(5)
    assert SeedTree(SeedTree(5)) == SeedTree(5)
    assert seed_key(SeedTree(5)) == seed_key(SeedTree(5).key)
    assert derive_key(SeedTree(5).key, "x") == SeedTree(5).child("x").key


def test_replicate_seeds_are_the_documented_children():
    tree = SeedTree(2024)
    node = tree.child("replicate", 0)
    rep = tree.replicate(0)
    assert rep == ReplicateSeeds(
        node.child("population").key, node.child("noise").key, node.child("design").key
    )
    assert all(0 <= k < 2**64 for k in rep)
    assert len(set(rep)) == 3


def test_pinned_keys_guard_against_silent_changes():
    """A change of the hashing would silently change every study's numbers."""
    key = SeedTree(7).child("replicate", 3, "noise").key
    assert key == derive_key(derive_key(derive_key(seed_key(7), "replicate"), 3), "noise")
    assert key == 0x9AFE4CFE2EEEC2B7
    assert SeedTree(2024).replicate(0) == (8632196787845522421, 9934459511364685228, 6174052758512898887)


def test_a_generator_is_used_once_to_draw_the_root():
    a, b = SeedTree(np.random.default_rng(1)), SeedTree(np.random.default_rng(1))
    assert a == b
    rng = np.random.default_rng(1)
    assert SeedTree(rng) != SeedTree(rng)  # the generator moved on


def test_trees_pickle_and_keep_their_key():
    tree = SeedTree(9).child("x")
    assert pickle.loads(pickle.dumps(tree)) == tree


@pytest.mark.parametrize("bad", [1.5, None, (1,), b"x", True])
def test_path_elements_must_be_str_or_int(bad):
    with pytest.raises(InputTypeError, match="path elements"):
        SeedTree(1).child("a", bad)


@pytest.mark.parametrize("bad", [-1, 1.0, "0", True])
def test_replicate_numbers_are_non_negative_ints(bad):
    with pytest.raises(InputTypeError, match="replicate"):
        SeedTree(1).replicate(bad)


def test_replicate_seeds_work_as_seeds_anywhere():
    rep = SeedTree(1).replicate(2)
    m = Model("y ~ 1 + (1 | g)", fixed={"Intercept": 0}, random={"g": 1}, sigma=1, seed=rep.population)
    data = pd.DataFrame({"g": ["a", "b"]})
    same = m.bind(data).simulate_response(seed=rep.noise)
    assert np.array_equal(same, m.bind(data).simulate_response(seed=SeedTree(1).replicate(2).noise))
    with pytest.raises(InputTypeError):
        SeedTree("seed")


def test_a_bad_seed_lists_every_accepted_kind_including_seed_trees():
    with pytest.raises(InputTypeError, match="SeedSequence, a numpy Generator or a glmmsim SeedTree; got float 1.5"):
        seed_key(1.5)
