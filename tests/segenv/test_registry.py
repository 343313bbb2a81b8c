"""segenv.registry.Registry, and the three registries built on it (segmenters, datasets, agents)."""

from __future__ import annotations

import pytest

from segenv.registry import Registry


def test_register_build_get_names():
    reg: Registry[tuple] = Registry("widget")

    @reg.register("b")
    def make_b(size: int = 1) -> tuple:
        return ("b", size)

    reg.add("a", lambda **kw: ("a", kw))
    assert make_b() == ("b", 1)  # the decorator returns the factory unchanged
    assert reg.build("b", size=3) == ("b", 3)
    assert reg.build("a", name="x") == ("a", {"name": "x"})  # "name" may be a factory keyword
    assert reg.get("b") is make_b
    assert reg.names() == ["a", "b"] and list(reg) == ["a", "b"]
    assert "a" in reg and "c" not in reg and len(reg) == 2


def test_build_spec_passes_the_path_as_the_checkpoint():
    reg: Registry[dict] = Registry("thing")
    reg.add("echo", lambda **kw: kw)
    assert reg.build_spec("echo") == {}
    assert reg.build_spec("echo:/a/b:c", device="cpu") == {"checkpoint": "/a/b:c", "device": "cpu"}
    assert reg.build_spec("echo:/p", path_kwarg="root") == {"root": "/p"}
    with pytest.raises(KeyError, match="unknown thing 'nope'"):
        reg.build_spec("nope:/x")


def test_unknown_name_lists_registered():
    reg: Registry[int] = Registry("widget")
    reg.add("one", lambda: 1)
    reg.add("two", lambda: 2)
    with pytest.raises(KeyError) as e:
        reg.build("three")
    assert "unknown widget 'three'" in str(e.value) and "['one', 'two']" in str(e.value)


def test_replace_policy_and_bad_names():
    loose: Registry[int] = Registry("widget")
    loose.add("x", lambda: 1)
    loose.add("x", lambda: 2)
    assert loose.build("x") == 2  # replace=True: the newest registration wins

    strict: Registry[int] = Registry("widget", replace=False)
    f = strict.add("x", lambda: 1)
    strict.add("x", f)  # the same factory again is fine
    with pytest.raises(ValueError, match="already registered"):
        strict.add("x", lambda: 2)
    assert strict.build("x") == 1
    with pytest.raises(ValueError, match="non-empty string"):
        strict.add("", lambda: 0)
    with pytest.raises(TypeError, match="callable"):
        strict.add("y", 3)  # type: ignore[arg-type]


def test_segmenter_dataset_agent_registries_use_it():
    from agents.registry import AGENTS, agent_names, make_agent
    from segenv.datasets.base import DATASETS, dataset_names, make_dataset, register_dataset
    from segenv.segmenters.base import SEGMENTERS, make_segmenter, segmenter_names

    assert isinstance(SEGMENTERS, Registry) and isinstance(DATASETS, Registry) and isinstance(AGENTS, Registry)
    assert {"grabcut", "sam", "hf"} <= set(segmenter_names()) and segmenter_names() == SEGMENTERS.names()
    assert {"shapes", "refcoco"} <= set(dataset_names())
    assert {"oracle", "random"} <= set(agent_names())
    with pytest.raises(KeyError, match=r"unknown segmenter 'nope'; registered: \[.*'grabcut'"):
        make_segmenter("nope:/some/path")
    with pytest.raises(KeyError, match=r"unknown dataset 'nope'; registered: \[.*'shapes'"):
        make_dataset("nope")
    with pytest.raises(KeyError, match=r"unknown agent 'nope'; registered: \[.*'oracle'"):
        make_agent("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("shapes")(lambda **kw: None)  # datasets refuse a second owner of a name
    assert type(make_dataset("shapes", split="val", length=3)).__name__ != "NoneType"
