"""A bounded dry run of a pickle: refuse bombs before a single object is built.

``pickle.Unpickler`` (the C one) builds what the opcodes say with no limit:
a 1 KB pickle whose dict key is a tuple DAG (each level two memo references
to the level below) costs ``2 ** depth`` steps to hash, so a reader hangs
before it can refuse anything. :func:`scan_pickle` walks the opcodes first
(``pickletools.genops``, nothing is built) and tracks, for every object on
the stack or in the memo, how many parts it has once expanded (memo
references counted again each time) and how deeply it nests. A pickle is
refused when it has more than :data:`MAX_OPCODES` opcodes, an object of
more than :data:`MAX_PARTS` parts, or nesting deeper than
:data:`MAX_NESTING`. State dicts and optimizer states are far inside these
limits (a ViT-H/14 training checkpoint: ~60k opcodes, nesting 8).
"""

from __future__ import annotations

import io
import pickletools

__all__ = ["MAX_NESTING", "MAX_OPCODES", "MAX_PARTS", "scan_pickle"]

MAX_OPCODES = 1 << 21  # ~2 s of scanning
MAX_PARTS = 1 << 24  # parts of one object, memo references expanded
MAX_NESTING = 100  # containers inside containers

_MARK = object()
_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_GET = {"GET", "BINGET", "LONG_BINGET"}
# Opcodes that change the object below them in place (the object keeps its identity).
_MUTATE = {"SETITEM", "SETITEMS", "APPEND", "APPENDS", "ADDITEMS", "BUILD"}


class _Node:
    """One object of the dry run: its expanded size and its nesting depth."""

    __slots__ = ("depth", "parts")

    def __init__(self, parts: int, depth: int):
        self.parts, self.depth = parts, depth


def _pop_to_mark(stack: list, where: str) -> list:
    items: list = []
    while stack:
        item = stack.pop()
        if item is _MARK:
            return items
        items.append(item)
    raise ValueError(f"{where}: its pickle is damaged (a MARK is missing); truncated file?")


def _pop(stack: list, count: int, where: str) -> list:
    if count > len(stack) or any(item is _MARK for item in stack[len(stack) - count :]):
        raise ValueError(f"{where}: its pickle is damaged (stack underflow); truncated file?")
    items = stack[len(stack) - count :] if count else []
    del stack[len(stack) - count :]
    return items


def _check(node: _Node, where: str) -> _Node:
    if node.parts > MAX_PARTS:
        raise ValueError(
            f"{where}: its pickle builds an object of more than {MAX_PARTS} parts "
            "(shared references expanded; a pickle bomb?): refused before building it."
        )
    if node.depth > MAX_NESTING:
        raise ValueError(
            f"{where}: its pickle nests containers more than {MAX_NESTING} deep: refused."
        )
    return node


def scan_pickle(data: bytes | bytearray, where: str) -> int:
    """Dry-run the pickle ``data``; the number of opcodes, or a ``ValueError`` naming ``where``.

    Example:
        >>> import pickle
        >>> scan_pickle(pickle.dumps({"w": [1, 2, 3]}, protocol=2), "'x.pth'")
        14
        >>> bomb = b"\\x80\\x02K\\x00q\\x00" + b"h\\x00h\\x00\\x86q\\x00" * 40 + b"."
        >>> try:
        ...     scan_pickle(bomb, "'bomb.pth'")
        ... except ValueError as error:
        ...     print(str(error)[:52])
        'bomb.pth': its pickle builds an object of more than
    """
    stack: list = []
    memo: dict = {}
    count = 0
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            count += 1
            if count > MAX_OPCODES:
                raise ValueError(
                    f"{where}: its pickle has more than {MAX_OPCODES} opcodes: refused "
                    "(a state dict keeps its tensors outside the pickle)."
                )
            name = opcode.name
            if name in _PUT or name == "MEMOIZE":
                top = _pop(stack, 1, where)[0]
                memo[len(memo) if arg is None else arg] = top
                stack.append(top)
                continue
            if name in _GET:
                if arg not in memo:
                    raise ValueError(f"{where}: its pickle is damaged (memo key {arg!r}).")
                stack.append(memo[arg])
                continue
            if name == "DUP":
                top = _pop(stack, 1, where)[0]
                stack += [top, top]
                continue
            if name == "STOP":
                break
            before = [item.name for item in opcode.stack_before]
            if "mark" in before:
                above = _pop_to_mark(stack, where)
                popped = _pop(stack, before.index("mark"), where) + above
            else:
                popped = _pop(stack, len(before), where)
            after = [item.name for item in opcode.stack_after]
            if not after:
                continue
            if after == ["mark"]:
                stack.append(_MARK)
                continue
            parts = 1 + sum(node.parts for node in popped)
            depth = 1 + max((node.depth for node in popped), default=0)
            if name in _MUTATE and popped:
                target = popped[0]  # the container: updated in place, memo copies too
                target.parts, target.depth = parts, max(target.depth, depth)
                stack.append(_check(target, where))
            else:
                stack += [_check(_Node(parts, depth), where) for _ in after]
    except ValueError as error:
        if str(error).startswith(where):
            raise
        raise ValueError(f"{where}: its pickle is damaged ({error}); truncated file?") from None
    return count
