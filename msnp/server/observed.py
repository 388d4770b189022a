# -*- test-case-name: test.test_server_store -*-
"""
Containers and a dataclass base that say when they change.

The server's protocol code (the NS, the ABCH services) changes accounts by
plain assignment: C{account.displayName = name},
C{entry.groupIds.discard(g)}, C{del account.groups[g]}. A durable store
has to see each of those changes to commit it before the reply that
acknowledges it is written. Rather than route every such line through a
store method, the account model reports its own changes: the containers
below call a callback after every mutation, and L{Observed} dataclasses
call theirs after every public attribute assignment.

With no callback set (the in-memory store) they behave exactly as C{dict},
C{set} and plain dataclasses, at the cost of one attribute test per
mutation.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, TypeVar

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

_Missing: Any = object()


class Observed:
    """
    Mixin for dataclasses: after any public attribute is assigned,
    C{_onChange} (if set) is called with no arguments.
    """

    _onChange: Optional[Callable[[], None]] = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, self._wrapField(name, value))
        if not name.startswith("_"):
            callback = self.__dict__.get("_onChange")
            if callback is not None:
                callback()

    def _wrapField(self, name: str, value: Any) -> Any:
        """
        Turn a container assigned to field C{name} into an observed one;
        subclasses say which fields hold containers.
        """
        return value

    def _changed(self) -> None:
        callback = self.__dict__.get("_onChange")
        if callback is not None:
            callback()


class ObservedDict(dict[K, V]):
    """
    A C{dict} calling C{onChange(key)} after each key is set or removed.

    Values that are L{Observed} get their C{_onChange} pointed at
    C{onChange(key)} when stored, so changing a value's attributes reports
    its key too.
    """

    def __init__(
        self, items: Iterable[tuple[K, V]] = (), onChange: Optional[Callable[[K], None]] = None
    ) -> None:
        super().__init__()
        self.onChange: Optional[Callable[[K], None]] = None
        for key, value in items:
            self[key] = value
        self.onChange = onChange
        if onChange is not None:
            for key, value in self.items():
                self._attach(key, value)

    def _attach(self, key: K, value: V) -> None:
        if isinstance(value, Observed):
            callback = self.onChange
            object.__setattr__(
                value, "_onChange", None if callback is None else (lambda: callback(key))
            )

    def _report(self, key: K) -> None:
        if self.onChange is not None:
            self.onChange(key)

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self._attach(key, value)
        self._report(key)

    def __delitem__(self, key: K) -> None:
        super().__delitem__(key)
        self._report(key)

    def pop(self, key: K, default: Any = _Missing) -> Any:  # type: ignore[override]
        if key not in self:
            if default is _Missing:
                raise KeyError(key)
            return default
        value = super().pop(key)
        self._report(key)
        return value

    def popitem(self) -> tuple[K, V]:
        key, value = super().popitem()
        self._report(key)
        return key, value

    def setdefault(self, key: K, default: Any = None) -> V:
        if key in self:
            return self[key]
        self[key] = default
        return default  # type: ignore[no-any-return]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self) -> None:
        keys = list(self)
        super().clear()
        for key in keys:
            self._report(key)

    def __ior__(self, other: Any) -> "ObservedDict[K, V]":  # type: ignore[override,misc]
        self.update(other)
        return self


def _mutator(name: str) -> Callable[..., Any]:
    method = getattr(set, name)

    def mutate(self: "ObservedSet[Any]", *args: Any) -> Any:
        result = method(self, *args)
        if self.onChange is not None:
            self.onChange()
        return self if name.startswith("__i") else result

    mutate.__name__ = name
    return mutate


class ObservedSet(set[T]):
    """
    A C{set} calling C{onChange()} after every mutating method.
    """

    def __init__(self, items: Iterable[T] = (), onChange: Optional[Callable[[], None]] = None) -> None:
        super().__init__(items)
        self.onChange = onChange

    add = _mutator("add")
    discard = _mutator("discard")
    remove = _mutator("remove")
    pop = _mutator("pop")
    clear = _mutator("clear")
    update = _mutator("update")
    difference_update = _mutator("difference_update")
    intersection_update = _mutator("intersection_update")
    symmetric_difference_update = _mutator("symmetric_difference_update")
    __ior__ = _mutator("__ior__")
    __iand__ = _mutator("__iand__")
    __isub__ = _mutator("__isub__")
    __ixor__ = _mutator("__ixor__")
