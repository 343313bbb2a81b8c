"""Load a pickle that may hold only plain data, without ever running code from the file.

``pickle.load`` imports and calls whatever the file names (``os.system``, ``builtins.exec``, ...),
so a crafted data file runs code on load. :func:`load_plain_pickle` uses an unpickler whose
``find_class`` refuses every name: only what the pickle opcodes build by themselves loads, i.e.
dicts, lists, tuples, sets, str, bytes, int, float, bool and None. That is all the REFER
toolkit's ``refs(*).p`` files hold. Anything else fails with a :class:`ValueError` naming the file.
The one exception is how Python 3 writes ``bytes`` at protocols 0-2 (``_codecs.encode(text,
"latin1")`` and ``bytes()``): those two names map to stand-ins that accept nothing but that form.

Pickles written under Python 2 store text as byte strings. They load with ``encoding="bytes"``
when plain ASCII decoding fails, and every byte string (dict keys included) is then decoded as
UTF-8, or Latin-1 where it is not valid UTF-8 (:func:`bytes_to_text`).
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

from .image_io import display_path


class RefusedPickleError(pickle.UnpicklingError):
    """The pickle names a Python object (a class or function) instead of holding plain data."""


def _latin1_bytes(text: Any, encoding: Any = "latin1", *rest: Any) -> bytes:
    """Stand-in for ``_codecs.encode``: how Python 3 pickles ``bytes`` at protocols 0-2."""
    if rest or not isinstance(text, str) or encoding not in ("latin1", "latin-1", "latin_1"):
        raise RefusedPickleError("_codecs.encode (only encode(<str>, 'latin1') is allowed, to build bytes)")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """Stand-in for ``bytes``: how Python 3 pickles ``b""`` at protocols 0-2."""
    if args:
        raise RefusedPickleError("builtins.bytes (only bytes() with no argument is allowed)")
    return b""


#: The only globals a plain-data pickle may name, each mapped to a safe stand-in.
_BYTES_BUILDERS = {
    ("_codecs", "encode"): _latin1_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
    ("builtins", "bytes"): _empty_bytes,
}


class PlainDataUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global (no class or function of the file's choosing can be
    loaded or called), except the two names Python 3 uses to pickle ``bytes`` at protocols 0-2,
    which map to stand-ins that can only build bytes."""

    def find_class(self, module: str, name: str) -> Any:
        builder = _BYTES_BUILDERS.get((module, name))
        if builder is None:
            raise RefusedPickleError(f"{module}.{name}")
        return builder


def bytes_to_text(raw: bytes) -> str:
    """UTF-8, or Latin-1 where the bytes are not valid UTF-8 (Latin-1 decodes any bytes)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_byte_strings(value: Any) -> Any:
    """A copy of ``value`` with every ``bytes`` (keys too) in dicts/lists/tuples made ``str``."""
    if isinstance(value, bytes):
        return bytes_to_text(value)
    if isinstance(value, dict):
        return {decode_byte_strings(k): decode_byte_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_byte_strings(v) for v in value]
    if isinstance(value, tuple):
        return tuple(decode_byte_strings(v) for v in value)
    return value


def loads_plain(data: bytes) -> Any:
    """Unpickle plain data from ``data``; Python 2 byte strings become ``str``.

    Raises :class:`RefusedPickleError` when the pickle names any class or function.
    """
    try:
        return PlainDataUnpickler(io.BytesIO(data)).load()
    except UnicodeDecodeError:  # a Python 2 byte string that is not ASCII
        return decode_byte_strings(PlainDataUnpickler(io.BytesIO(data), encoding="bytes").load())


def load_plain_pickle(path: str | os.PathLike, what: str = "pickle file") -> Any:
    """Unpickle plain data from the file ``path`` (see the module docstring).

    ValueError naming the file when it cannot be read, is not a pickle, or would load anything
    but plain data.
    """
    shown = display_path(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(f"cannot read {what} {shown}: {e}") from e
    try:
        return loads_plain(data)
    except RefusedPickleError as e:
        raise ValueError(
            f"refusing to load {what} {shown}: it names the Python object {e}, and unpickling it could run "
            "code. It may hold only dicts, lists, tuples, str, bytes, numbers, bool and None; replace the "
            "file with the dataset's original (or re-save it as plain data)."
        ) from e
    except Exception as e:  # corrupt pickles fail in many ways (UnpicklingError, EOFError, ...)
        raise ValueError(f"cannot read {what} {shown} (corrupt pickle?): {type(e).__name__}: {e}") from e
