"""Procedural no-target items: an expression for an absent object, an empty mask, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from segenv.datasets import make_dataset
from segenv.datasets.shapes import parse_expression


def _fits(parts: dict, obj: dict) -> bool:
    """Does a parsed expression describe this drawn object?"""
    return all(parts[k] in (None, obj[k]) for k in ("size", "color")) and parts["shape"] in ("object", obj["shape"])


@pytest.mark.parametrize("name", ["shapes", "thin_shapes"])
def test_no_target_items_name_an_absent_object(name):
    plain = make_dataset(name, split="val", length=80)
    mixed = make_dataset(name, split="val", length=80, no_target_fraction=0.25)
    n = 0
    for i in range(80):
        a, b = mixed[i], plain[i]
        assert np.array_equal(a.image, b.image)  # the same picture either way
        if a.meta.get("no_target"):
            n += 1
            assert not a.mask.any() and a.id == f"{b.id}/no_target" and a.meta["target"] is None
            parts = parse_expression(a.text)  # the dataset's own grammar
            assert not any(_fits(parts, o) for o in a.meta["objects"]), (a.text, a.meta["objects"])
        else:  # everything else is exactly the plain item
            assert (a.id, a.text, a.box) == (b.id, b.text, b.box) and np.array_equal(a.mask, b.mask)
            assert any(_fits(parse_expression(a.text), o) for o in a.meta["objects"])
    assert 8 <= n <= 35  # about a quarter of 80


def test_no_target_is_deterministic_per_seed_split_index():
    a = make_dataset("shapes", split="test", no_target_fraction=0.5)
    b = make_dataset("shapes", split="test", no_target_fraction=0.5)
    ids = [a[i].id for i in range(30)]
    assert ids == [b[i].id for i in range(30)] and [a[i].text for i in range(30)] == [b[i].text for i in range(30)]
    assert ids != [make_dataset("shapes", split="test", no_target_fraction=0.5, seed=1)[i].id for i in range(30)]
    assert ids != [make_dataset("shapes", split="val", no_target_fraction=0.5)[i].id for i in range(30)]
    assert all(make_dataset("shapes", split="test", no_target_fraction=1.0)[i].meta["no_target"] for i in range(5))
    assert not any(make_dataset("shapes", split="test")[i].meta.get("no_target") for i in range(30))


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.1", None, float("nan"), True])
def test_bad_fraction_is_clear(bad):
    with pytest.raises(ValueError, match="no_target_fraction"):
        make_dataset("shapes", no_target_fraction=bad)
