"""Reading the files a stranger may hand examples/train_ijepa.py (no framework here).

``--config`` files and the files of a ``--resume`` folder are input like
any other ("Files you did not write" in the design notes):

- :func:`read_bounded`: only a regular file (a FIFO, socket or device is
  refused without being opened: it could block forever or never end),
  inside the folder named when there is one, of at most ``limit`` bytes;
- :func:`read_mapping`: a YAML/TOML/JSON mapping of at most
  :data:`MAX_CONFIG_BYTES`, UTF-8. YAML without anchors, aliases, merge or
  duplicate keys, at most :data:`MAX_CONFIG_DEPTH` deep and
  :data:`MAX_CONFIG_NODES` values, all checked on libyaml's event stream
  before any object is built (so a "billion laughs" costs nothing); JSON
  without ``NaN``/``Infinity`` or duplicate keys; any nesting that reaches
  Python's recursion limit (TOML, JSON) refused.

Each takes the exception class to raise (its message is one line naming
the file); the caller checks the values.
"""

from __future__ import annotations

import functools
import json
import os
import re

from jepa_components._images import open_regular_file
from jepa_components.datasets import DatasetError

MAX_CONFIG_BYTES = 1 << 20  # a config file is a few hundred bytes
MAX_CONFIG_DEPTH = 8  # a mapping of scalars is depth 1
MAX_CONFIG_NODES = 10_000  # YAML nodes (the options are ~40)
CONFIG_EXTENSIONS = (".yaml", ".yml", ".toml", ".json")


class _Refused(Exception):
    """A file's problem found inside a parser; :func:`read_mapping` adds the path."""


def shown(value, limit=60):
    """``repr(value)``, cut to ``limit`` characters (a hostile value may be huge)."""
    if isinstance(value, (dict, list, tuple, set)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    if not isinstance(value, (str, bytes, int, float, bool, type(None))):
        return f"a {type(value).__name__}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_bounded(path, *, limit, error, inside=None, what="file"):
    """The bytes of ``path``: a regular file (inside the folder ``inside``) of at most ``limit``.

    A FIFO, socket or device is refused without being opened (it could
    block forever or never end), and so is a path resolving outside
    ``inside``. Raises ``error`` (a one-line message naming the file).
    """
    path = os.fspath(path)
    try:
        with open_regular_file(path, inside=inside) as stream:
            content = stream.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} not found: {path}") from None
    except DatasetError as problem:  # not a regular file, or outside the folder
        raise error(f"{what} {problem}") from None
    except OSError as problem:
        raise error(f"cannot read {what} {path}: {problem.strerror or problem}") from None
    if len(content) > limit:
        raise error(f"{what} {path} is larger than {limit} bytes: refused")
    return content


def first_line(error):
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    mark = getattr(error, "problem_mark", None)  # YAML: where the problem is
    if mark is not None:
        line += f" (line {mark.line + 1}, column {mark.column + 1})"
    return line if len(line) <= 200 else line[:197] + "..."


# YAML 1.1 (PyYAML) reads 1e-3 as a string; YAML 1.2 and JSON read it as a
# number, and so does this loader (a float needs no dot before its exponent).
_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.cache
def _yaml_loader():
    """A safe YAML loader (libyaml's when installed) refusing merge and duplicate keys."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):
        def construct_mapping(self, node, deep=False):
            keys = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise _Refused("holds a YAML merge key (<<): refused in config files")
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool, type(None))):
                    raise _Refused(f"holds a mapping key that is {shown(key)}")
                if key in keys:
                    raise _Refused(f"repeats the key {shown(key)}")
                keys.add(key)
            return super().construct_mapping(node, deep=deep)

    StrictLoader.add_implicit_resolver(
        "tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789.")
    )
    return StrictLoader


def _parse_yaml(text):
    """YAML -> object, refusing anchors, aliases and deep or huge documents on the event
    stream first, so nothing is built for a "billion laughs" or a deep nesting."""
    import yaml

    loader = _yaml_loader()
    depth = nodes = 0
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                f"holds a YAML alias (*{shown(event.anchor, 40)[1:-1]}): aliases "
                "and anchors are refused in config files"
            )
        if getattr(event, "anchor", None) is not None:
            raise _Refused(
                f"holds a YAML anchor (&{shown(event.anchor, 40)[1:-1]}): aliases "
                "and anchors are refused in config files"
            )
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
            if nodes > MAX_CONFIG_NODES:
                raise _Refused(f"holds more than {MAX_CONFIG_NODES} values: refused")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_CONFIG_DEPTH:
                raise _Refused(f"is nested more than {MAX_CONFIG_DEPTH} levels deep: refused")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return yaml.load(text, Loader=loader)


def _parse_json(text):
    def refuse_constant(name):
        raise _Refused(f"holds the non-standard JSON constant {name}")

    def no_duplicates(pairs):
        result = {}
        for key, value in pairs:
            if key in result:
                raise _Refused(f"repeats the key {shown(key)}")
            result[key] = value
        return result

    return json.loads(text, parse_constant=refuse_constant, object_pairs_hook=no_duplicates)


def _parse_toml(text):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    return tomllib.loads(text)


_PARSERS = {".yaml": _parse_yaml, ".yml": _parse_yaml, ".json": _parse_json, ".toml": _parse_toml}


def read_mapping(path, *, error, inside=None, what="config file"):
    """The mapping a .yaml/.yml/.toml/.json file holds (``{}`` for an empty YAML file).

    Raises ``error`` naming the file: not found, not a regular file (inside
    ``inside``), too large, not UTF-8, refused (see the module docstring),
    unparsable, or not a mapping.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in CONFIG_EXTENSIONS:
        if not os.path.lexists(path):
            raise error(f"{what} not found: {path}")
        raise error(f"{what} must end in {', '.join(CONFIG_EXTENSIONS)}: {path}")
    content = read_bounded(path, limit=MAX_CONFIG_BYTES, error=error, inside=inside, what=what)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise error(f"{what} {path} is not UTF-8 text (byte {problem.start})") from None
    try:
        parsed = _PARSERS[extension](text)
    except _Refused as problem:
        raise error(f"{what} {path} {problem}") from None
    except RecursionError:
        raise error(f"{what} {path} is nested too deeply: refused") from None
    except Exception as problem:  # a parse error of the format (each has its own types)
        raise error(f"cannot parse {what} {path}: {first_line(problem)}") from None
    if parsed is None:  # an empty YAML file
        parsed = {}
    if not isinstance(parsed, dict):
        raise error(
            f"{what} {path} must hold a mapping of option names to values, not {shown(parsed)}"
        )
    return parsed
