"""A small name -> factory registry: the one plug-in mechanism for segmenters, datasets and agents.

A registry maps a name to a factory (a class or a function returning a ``T``)::

    SEGMENTERS: Registry[Segmenter] = Registry("segmenter")

    @SEGMENTERS.register("grabcut")
    def _grabcut(**kwargs) -> Segmenter:
        return GrabCutSegmenter(**kwargs)

    SEGMENTERS.build("grabcut", iterations=3)   # -> a Segmenter
    SEGMENTERS.names()                          # -> ["grabcut", ...]

An unknown name raises ``KeyError`` that lists the registered names. Whether registering a
taken name replaces the old factory (a user overriding a built-in) or raises ``ValueError`` (two
modules fighting over one name) is chosen per registry with ``replace``.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")
Factory = Callable[..., T]


class Registry(Generic[T]):
    """Factories of ``T`` by name.

    Args:
        kind: what is registered, for messages (``"segmenter"`` -> "unknown segmenter 'x'").
        replace: registering a name that is already taken by another factory replaces it
            (True) or raises ``ValueError`` (False). Registering the same factory twice is a no-op.
    """

    def __init__(self, kind: str, *, replace: bool = True) -> None:
        self.kind = kind
        self.replace = replace
        self._factories: dict[str, Factory[T]] = {}

    def register(self, name: str) -> Callable[[Factory[T]], Factory[T]]:
        """Decorator: make ``factory(**kwargs)`` buildable as ``name``; returns the factory unchanged."""

        def wrap(factory: Factory[T]) -> Factory[T]:
            return self.add(name, factory)

        return wrap

    def add(self, name: str, factory: Factory[T]) -> Factory[T]:
        """Register ``factory`` under ``name`` (the non-decorator form of :meth:`register`)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r}: the factory must be callable, got {type(factory).__name__}")
        old = self._factories.get(name)
        if old is not None and old is not factory and not self.replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._factories[name] = factory
        return factory

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plugin unloading, a test cleaning up); ``KeyError`` if it is not registered."""
        self.get(name)
        del self._factories[name]

    def get(self, name: str) -> Factory[T]:
        """The factory registered as ``name``; ``KeyError`` naming the registered ones if none."""
        try:
            return self._factories[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {self.names()}") from None

    def build(self, name: str, /, **kwargs) -> T:
        """``get(name)(**kwargs)``."""
        return self.get(name)(**kwargs)

    def build_spec(self, spec: str, /, path_kwarg: str = "checkpoint", **kwargs) -> T:
        """Build from ``"name"`` or ``"name:/path"``: the path goes to the factory as ``path_kwarg``
        (``"sam:/ckpt/sam_vit_b.pth"`` -> ``factory(checkpoint="/ckpt/sam_vit_b.pth")``)."""
        name, _, path = spec.partition(":")
        if path:
            kwargs.setdefault(path_kwarg, path)
        return self.build(name, **kwargs)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._factories)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
