"""segenv.actions: the one vocabulary, its array forms and strict validation (fuzzed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segenv
from segenv import actions as A
from segenv.actions import INVALID, NO_OBJECT, STOP, BoxPrompt, Click, Finish, NoObject, parse_action

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_one_vocabulary_old_imports_still_work():
    import segenv.env
    import segenv.rollout

    assert segenv.rollout.STOP is STOP is segenv.STOP and isinstance(STOP, Finish)
    assert segenv.env.INVALID is INVALID is segenv.rollout.INVALID is segenv.INVALID
    assert NO_OBJECT == NoObject() and segenv.NoObject is NoObject


@pytest.mark.parametrize(
    "array, expected",
    [
        ([0.25, 0.375, 1.0], Click(0.25, 0.375, True)),
        ([0.25, 0.375, 0.4375], Click(0.25, 0.375, False)),
        ([0.25, 0.375, 1.0, 0.0], Click(0.25, 0.375, True)),
        ([0.25, 0.375, 0.625, 0.5], Finish()),
        ([0.25, 0.375, 0.25, 0.875], NoObject()),
        ([1, 0.25, 0.375, 0, 0], Click(0.25, 0.375, True)),
        ([0, 0.25, 0.375, 0, 0], Click(0.25, 0.375, False)),
        ([2, 0.125, 0.25, 0.375, 0.5], BoxPrompt(0.125, 0.25, 0.375, 0.5)),
        ([3, 0, 0, 0, 0], Finish()),
        ([4, 0.5, 0.5, 0, 0], NoObject()),
    ],
)
def test_array_forms(array, expected):
    for arr in (array, np.asarray(array, np.float32), np.asarray(array, np.float64)):
        got = parse_action(arr)
        assert got == expected and type(got) is type(expected)


@settings(max_examples=200, deadline=None)
@given(x=unit, y=unit, positive=st.booleans())
def test_long_form_round_trip(x, y, positive):
    for action in (Click(x, y, positive), STOP, NO_OBJECT):
        back = parse_action(A.action_to_array(action))
        assert type(back) is type(action)
        if isinstance(action, Click):
            assert back.positive == positive and back.x == pytest.approx(x, abs=1e-6) and back.y == pytest.approx(y, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(x=unit, y=unit, positive=st.booleans(), mode=st.sampled_from(["click", "full"]))
def test_space_form_round_trip(x, y, positive, mode):
    arr = A.action_to_space(Click(x, y, positive), mode)
    assert arr.shape == ((3,) if mode == "click" else (4,)) and arr.dtype == np.float32
    assert parse_action(arr).positive == positive
    if mode == "full":
        assert parse_action(A.action_to_space(STOP, mode)) == STOP
        assert parse_action(A.action_to_space(NO_OBJECT, mode)) == NO_OBJECT
    else:
        with pytest.raises(ValueError, match="full"):
            A.action_to_space(STOP, mode)


@pytest.mark.parametrize("value", [True, False, 1, 0, 1.0, 0.0, np.bool_(True), np.int64(0), np.float32(1.0)])
def test_positive_accepts_bool_and_zero_one(value):
    assert Click(0.5, 0.5, value).positive is bool(value)


@pytest.mark.parametrize("value", ["false", "no", "True", "", float("nan"), 0.7, 2, -1, None, [1], 1 + 0j, b"1"])
def test_positive_rejects_everything_else(value):
    with pytest.raises(ValueError, match="positive"):
        Click(0.5, 0.5, value)


@pytest.mark.parametrize("value", ["0.5", True, np.bool_(False), 0.5 + 0j, None, [0.5], 10**400, float("nan"), -0.1, 1.5])
def test_coordinates_must_be_real_numbers_in_range(value):
    for make in (lambda: Click(value, 0.5), lambda: Click(0.5, value), lambda: BoxPrompt(0.0, 0.0, value, 0.5)):
        with pytest.raises(ValueError):
            make()


def test_zero_d_arrays_and_numpy_scalars_are_numbers():
    assert Click(np.array(0.25), np.float32(0.5), np.array(True).item()).x == 0.25


@pytest.mark.parametrize("box", [(0.2, 0.2, 0.2, 0.5), (0.2, 0.2, 0.5, 0.2), (0.5, 0.2, 0.2, 0.5), (0.2, 0.5, 0.5, 0.2)])
def test_degenerate_boxes_rejected(box):
    with pytest.raises(ValueError, match="area"):
        BoxPrompt(*box)
    with pytest.raises(ValueError, match="area"):
        parse_action([2, *box])


@pytest.mark.parametrize(
    "action, match",
    [
        (np.array([0.5, 0.5, 1.0]) + 1j, "real numbers"),
        (np.array([True, False, True]), "real numbers"),
        (["0.5", "0.5", "1"], "real numbers"),
        ([10**400, 0.5, 1.0], "real numbers|large"),
        ("left", "real numbers|cannot read"),
        ({"x": 0.5}, "real numbers|cannot read"),
        ([0.5, 0.5, np.inf], "NaN or inf"),
        ([0.5, 0.5, 1.0, np.nan], "NaN or inf"),
        ([0.5, 0.5, 1.5], "p="),
        ([0.5, 0.5, 0.5, -0.5], "e="),
        ([[0.5, 0.5, 1.0]], "shape"),
        ([0.5, 0.5, 1.0, 0.0, 0.0, 0.0], "shape"),
        ([2.5, 0.5, 0.5, 0, 0], "kind"),
        ([-1, 0.5, 0.5, 0, 0], "kind"),
        ([1, 1.5, 0.5, 0, 0], "out of range"),
        (INVALID, "real numbers|cannot read"),  # a marker, not an action: the env handles it first
    ],
)
def test_malformed_arrays_raise_value_error(action, match):
    with pytest.raises(ValueError, match=match):
        parse_action(action)


scalars = st.one_of(st.floats(), st.integers(), st.booleans(), st.complex_numbers(), st.text(max_size=3), st.none())


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.lists(scalars, max_size=6),
        st.floats(),
        st.text(max_size=5),
        st.integers(),
        st.none(),
    )
)
def test_fuzz_parse_is_an_action_or_a_value_error(value):
    """Whatever comes in: a valid typed action with coordinates in range, or ValueError."""
    try:
        action = parse_action(value)
    except ValueError:
        return
    assert isinstance(action, (Click, BoxPrompt, Finish, NoObject))
    if isinstance(action, Click):
        assert 0.0 <= action.x <= 1.0 and 0.0 <= action.y <= 1.0 and isinstance(action.positive, bool)
    if isinstance(action, BoxPrompt):
        assert action.x0 < action.x1 and action.y0 < action.y1
    arr = np.asarray(value)
    assert arr.dtype.kind in "iuf" and np.isfinite(arr.astype(float)).all()  # only real arrays get through


@settings(max_examples=300, deadline=None)
@given(x=scalars, p=scalars)
def test_fuzz_click_constructor(x, p):
    try:
        c = Click(x, 0.5, p)
    except ValueError:
        return
    assert isinstance(x, (int, float)) and not isinstance(x, bool) and 0.0 <= x <= 1.0
    assert isinstance(p, (bool, int, float)) and p in (0, 1) and c.positive is bool(p)


def test_end_action_names():
    assert A.end_action_name(Finish()) == "finish" and A.end_action_name(NoObject()) == "no_object"
    assert A.end_action_name(Click(0.1, 0.1)) is None and A.end_action_name(None) is None
