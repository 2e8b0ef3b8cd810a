"""Griffe extension for the API reference: docstring layouts Google style lacks.

The docstrings of this project are Google style with three habits that the
parser does not know; this extension adapts the text before mkdocstrings
renders it (the source is not changed):

- ``Example:`` (singular) is read as ``Examples:``, so doctests render as code
  instead of an admonition of ``>>>`` lines;
- a doctest outside an ``Examples:`` section is fenced as ``pycon`` code;
- an ``Args:`` entry naming several parameters over more than one line
  (``model_name, image_size,`` newline ``num_heads: ...``) is joined into
  one line, so the names stay together.
"""

from __future__ import annotations

import re

import griffe

_SECTION = re.compile(r"^(\s*)([A-Z][A-Za-z ]*):\s*$")
_DOCTEST = re.compile(r"^\s*>>> ")


def _indent(line):
    return len(line) - len(line.lstrip())


def adapt(text):
    """The docstring ``text`` with the three adaptations of the module docstring."""
    lines = text.splitlines()
    out = []
    section, section_indent = None, 0
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _SECTION.match(line)
        if section and line.strip() and _indent(line) <= section_indent and not header:
            section = None
        if header:
            name = header.group(2)
            if name == "Example":
                line = f"{header.group(1)}Examples:"
                name = "Examples"
            section, section_indent = name, len(header.group(1))
            out.append(line)
            i += 1
            continue
        if section == "Args" and line.rstrip().endswith(",") and ":" not in line:
            # parameter names continued on the next line
            while i + 1 < len(lines) and line.rstrip().endswith(",") and ":" not in line:
                i += 1
                line = line.rstrip() + " " + lines[i].strip()
            out.append(line)
            i += 1
            continue
        if section != "Examples" and _DOCTEST.match(line):
            pad = " " * _indent(line)
            out.append(f"{pad}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{pad}```")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class DoctestSections(griffe.Extension):
    """Applies :func:`adapt` to every docstring griffe loads."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = adapt(obj.docstring.value)
