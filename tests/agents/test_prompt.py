"""agents.mllm.prompt: rendering and parsing of action text, prompts."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agents.mllm.prompt import (
    ActionFormat,
    ParsedAction,
    build_prompt,
    parse_action_text,
    parse_box_text,
    render_action,
    render_box,
)
from segenv.actions import STOP, BoxPrompt, Click, Finish, NoObject

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
clicks = st.builds(Click, unit, unit, st.booleans())
ious = st.one_of(st.none(), unit)


@settings(max_examples=200, deadline=None)
@given(click=clicks, iou=ious, order=st.sampled_from(["xy", "yx"]), decimals=st.integers(1, 4))
def test_decimal_round_trip(click, iou, order, decimals):
    fmt = ActionFormat("decimal", order, decimals=decimals)
    text = render_action(click, fmt, iou=iou)
    parsed = parse_action_text(text, fmt)
    assert parsed.error is None and isinstance(parsed.action, Click)
    step = 10.0**-decimals
    assert parsed.action.positive == click.positive
    assert 0.0 <= parsed.action.x < 1.0 and 0.0 <= parsed.action.y < 1.0
    assert abs(parsed.action.x - click.x) <= step + 1e-9 and abs(parsed.action.y - click.y) <= step + 1e-9
    assert render_action(parsed.action, fmt, iou=parsed.iou) == text  # idempotent
    if iou is None:
        assert parsed.iou is None
    else:
        assert abs(parsed.iou - iou) <= 0.005 + 1e-9


@settings(max_examples=200, deadline=None)
@given(click=clicks, order=st.sampled_from(["xy", "yx"]))
def test_int1000_round_trip(click, order):
    fmt = ActionFormat("int1000", order)
    text = render_action(click, fmt)
    a, b = text.split("(")[1].rstrip(")").split(", ")
    assert 0 <= int(a) <= 999 and 0 <= int(b) <= 999
    x_written = int(b) if order == "yx" else int(a)
    assert x_written == min(int(click.x * 1000), 999)
    parsed = parse_action_text(text, fmt)
    assert parsed.ok and parsed.action.positive == click.positive
    assert abs(parsed.action.x - click.x) <= 1e-3 + 1e-9 and abs(parsed.action.y - click.y) <= 1e-3 + 1e-9
    assert render_action(parsed.action, fmt) == text


def test_axis_order_yx_swaps():
    c = Click(0.2, 0.7, True)
    assert render_action(c, ActionFormat("int1000", "yx")) == "Positive point: (700, 200)"
    assert render_action(c, ActionFormat("decimal", "xy")) == "Positive point: (0.20, 0.70)"
    parsed = parse_action_text("Positive point: (700, 200)", ActionFormat("int1000", "yx"))
    assert parsed.action == Click(0.2, 0.7, True)


def test_int1000_pixel_snapping_follows_released_rounding():
    # round(A / 1000 * H) clamped to H - 1, returned as that pixel's centre
    parsed = parse_action_text("Negative point: (999, 5)", ActionFormat("int1000"), height=10, width=100)
    assert parsed.action.to_pixel(10, 100) == (0, 99)
    assert parsed.action.x == pytest.approx(99.5 / 100)


@settings(max_examples=100, deadline=None)
@given(click=clicks, grid=st.integers(1, 20))
def test_loc_round_trip(click, grid):
    fmt = ActionFormat("loc", loc_grid=grid)
    text = render_action(click, fmt)
    col, row = min(int(click.x * grid), grid - 1), min(int(click.y * grid), grid - 1)
    assert text.endswith(f"<loc_{row * grid + col}>")
    parsed = parse_action_text(text, fmt)
    assert parsed.ok and parsed.action.positive == click.positive
    assert parsed.action.x == pytest.approx((col + 0.5) / grid) and parsed.action.y == pytest.approx((row + 0.5) / grid)
    assert render_action(parsed.action, fmt) == text


def test_loc_out_of_grid_is_an_error():
    parsed = parse_action_text("Positive point: <loc_49>", ActionFormat("loc", loc_grid=7))
    assert parsed.action is None and "grid" in parsed.error


@settings(max_examples=100, deadline=None)
@given(a=unit, b=unit, c=unit, d=unit)
def test_qwen_box_round_trip(a, b, c, d):
    assume(abs(a - c) > 2 / 999 and abs(b - d) > 2 / 999)  # a box has an area, also on the 999 grid
    box = BoxPrompt(min(a, c), min(b, d), max(a, c), max(b, d))
    text = render_box(box, "the red circle")
    assert text.startswith("<ref>the red circle</ref><box>(")
    parsed = parse_box_text(text)
    assert parsed.ok and isinstance(parsed.action, BoxPrompt)
    for u, v in zip((parsed.action.x0, parsed.action.y0, parsed.action.x1, parsed.action.y1), (box.x0, box.y0, box.x1, box.y1)):
        assert abs(u - v) <= 0.5 / 999 + 1e-9
    assert render_box(parsed.action, "the red circle") == text
    assert parse_action_text(text).box == parsed.action  # no point -> the box


def test_qwen_box_decoded_with_999():
    parsed = parse_box_text("<ref>x</ref><box>(0,999),(999,0)</box>")
    assert parsed.action == BoxPrompt(0.0, 0.0, 1.0, 1.0)  # corners sorted
    assert parse_box_text("<box>(0,1000),(5,5)</box>").error is not None
    flat = parse_box_text("<box>(5,7),(5,90)</box>")  # zero width: an error, not an exception
    assert flat.action is None and "area" in flat.error


@pytest.mark.parametrize(
    "text, expected",
    [
        ("positive point:(0.5,0.5)", Click(0.5, 0.5, True)),
        ("POSITIVE   POINT :  ( 0.25 ,0.75 )  and some trailing words", Click(0.25, 0.75, True)),
        ("Current IOU: 85.2\n  negative point: (0.1, 0.9)\n", Click(0.1, 0.9, False)),
        ("Sure! Negative Point: (0.3, 0.4). Done.", Click(0.3, 0.4, False)),
        ("Positive point: (0.1, 0.2) then Negative point: (0.3, 0.4) (0.9, 0.9)", Click(0.3, 0.4, False)),
        ("Positive point: (1, 0)", Click(1.0, 0.0, True)),
    ],
)
def test_lenient_spacing_and_case(text, expected):
    parsed = parse_action_text(text)
    assert parsed.error is None, parsed.error
    assert parsed.action == expected


def test_iou_line_parsed_as_fraction():
    parsed = parse_action_text("Current IOU: 85.2\nPositive point: (0.5, 0.5)")
    assert parsed.iou == pytest.approx(0.852)
    assert render_action(Click(0.47, 0.27, True), iou=0.74) == "Current IOU: 74\nPositive point: (0.47, 0.27)"


@pytest.mark.parametrize(
    "text, fmt",
    [
        ("", ActionFormat()),
        ("hello world", ActionFormat()),
        ("Positive point:", ActionFormat()),
        ("Positive point: (0.5)", ActionFormat()),
        ("Positive point: (0.5, 0.5, 0.5)", ActionFormat()),
        ("Positive point: (1.5, 0.2)", ActionFormat()),
        ("Positive point: (-0.1, 0.2)", ActionFormat()),
        ("Positive point: (abc, 0.2)", ActionFormat()),
        ("Point: (0.5, 0.5)", ActionFormat()),
        ("Positive point: (1000, 5)", ActionFormat("int1000")),
        ("Positive point: (0.5, 5)", ActionFormat("int1000")),
        ("Positive point: (0.5, 0.5)", ActionFormat("loc", loc_grid=7)),
        ("Current IOU: 140\nPositive point: (0.5, 0.5)", ActionFormat()),
        ("\x05\ufffd garbage \x00 <loc_3>", ActionFormat()),
    ],
)
def test_invalid_text_gives_error_not_exception(text, fmt):
    parsed = parse_action_text(text, fmt)
    assert isinstance(parsed, ParsedAction)
    assert parsed.action is None and isinstance(parsed.error, str) and parsed.error


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80))
def test_parser_never_raises(text):
    for fmt in (ActionFormat(), ActionFormat("int1000", "yx"), ActionFormat("loc", loc_grid=7)):
        parsed = parse_action_text(text, fmt)
        assert (parsed.action is None) == (parsed.error is not None)


def test_format_from_model_config():
    class Cfg:
        segagent_coord_format = "loc"
        segagent_loc_grid = 7

    fmt = ActionFormat.from_model_config(Cfg())
    assert (fmt.coord_format, fmt.loc_grid, fmt.coord_order) == ("loc", 7, "xy")
    assert ActionFormat.from_model_config(object()) == ActionFormat()
    with pytest.raises(ValueError):
        ActionFormat("hex")


def test_fig6_prompt_contains_caption():
    system, text = build_prompt("the small red circle on the left", "llava")
    assert system is None
    assert text.startswith("You are a highly skilled segmentation annotator.")
    assert "semi-transparent green mask" in text
    assert "Positive Point (x, y)" in text and "Negative Point (x, y)" in text
    assert text.endswith("The description of the object is as follows: the small red circle on the left.")


def test_qwen_prompt_and_system():
    system, text = build_prompt("the star", "qwen")
    assert system == "You are a helpful assistant."
    assert text.startswith("Please optimize the semi-transparent green mask in a point-wise manner")
    assert text.endswith("The object description is as follows:<ref>the star</ref>")
    assert "blue mask" in build_prompt("the star", "qwen", color="blue")[1]
    assert build_prompt("the star", "short") == (None, "the star")
    with pytest.raises(ValueError):
        build_prompt("x", "gpt")


# ------------------------------------------------------------------ Finish / No Object Found
end_actions = st.sampled_from([Finish(), NoObject()])
formats = st.sampled_from([ActionFormat(), ActionFormat("int1000", "yx"), ActionFormat("loc", loc_grid=7)])


@settings(max_examples=100, deadline=None)
@given(action=end_actions, iou=ious, fmt=formats)
def test_end_actions_round_trip(action, iou, fmt):
    text = render_action(action, fmt, iou=iou)
    assert text.splitlines()[-1] == ("Finish" if isinstance(action, Finish) else "No Object Found")
    parsed = parse_action_text(text, fmt)
    assert parsed.ok and parsed.action == action and type(parsed.action) is type(action)
    assert parsed.key() == (("finish",) if isinstance(action, Finish) else ("no_object",))
    assert render_action(parsed.action, fmt, iou=parsed.iou) == text
    if iou is not None:
        assert abs(parsed.iou - iou) <= 0.005 + 1e-9


def test_finish_is_the_harness_stop():
    assert parse_action_text("Finish").action == STOP  # the env's Finish: what STOP means everywhere


@pytest.mark.parametrize(
    "text, expected",
    [
        ("finish", Finish()),
        ("Current IOU: 97\n  FINISH.", Finish()),
        ("I have finished refining the mask.", Finish()),  # the released loop checks the word only
        ("No Object Found", NoObject()),
        ("no   object found in this image", NoObject()),
        ("Current IOU: 0\nNo object", NoObject()),
        ("Positive point: (0.1, 0.2)\nFinish", Click(0.1, 0.2, True)),  # a readable point wins
        ("Negative point: (oops) Finish", Finish()),  # as the released loop: no point, "Finish" in it
        ("<ref>the finish line</ref><box>(1,2),(30,40)</box>", BoxPrompt(1 / 999, 2 / 999, 30 / 999, 40 / 999)),
    ],
)
def test_end_words_parse(text, expected):
    parsed = parse_action_text(text)
    assert parsed.error is None, parsed.error
    assert parsed.action == expected and type(parsed.action) is type(expected)


@pytest.mark.parametrize(
    "text",
    [
        "Finish, or maybe No Object Found",  # both: ambiguous
        "refinish",  # not the word
        "object not found",  # not the option's words
        "Negative point: (oops)",
        "<ref>no object here</ref>",  # words inside the caption do not count
    ],
)
def test_end_words_unusable_stay_invalid(text):
    parsed = parse_action_text(text)
    assert parsed.action is None and parsed.error


def test_render_action_rejects_boxes_and_markers():
    with pytest.raises(TypeError, match="render_box"):
        render_action(BoxPrompt(0.1, 0.1, 0.5, 0.5))
    with pytest.raises(TypeError):
        render_action(None)


@pytest.mark.parametrize("style", ["llava", "qwen"])
def test_prompts_offer_end_options_only_when_asked(style):
    plain = build_prompt("the star", style)[1]
    assert "Finish" not in plain and "No Object Found" not in plain
    both = build_prompt("the star", style, finish=True, no_object=True)[1]
    assert "Finish" in both and "No Object Found" in both
    only = build_prompt("the star", style, no_object=True)[1]
    assert "No Object Found" in only and "Finish" not in only
    assert both.endswith(plain[-45:]) and both.startswith(plain[:60])  # the released text around them is kept
    if style == "llava":
        assert "\n3. Finish: " in both and "\n4. No Object Found: " in both and "\n3. No Object Found: " in only
    assert build_prompt("the star", "short", finish=True, no_object=True) == (None, "the star")
