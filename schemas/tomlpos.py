"""Where each key of a TOML document stands, for error messages that name the line.

``tomllib`` returns values without positions, so :func:`key_lines` reads the same text once
more for its structure only: table headers, arrays of tables (counted, so the second
``[[budgets]]`` is ``("budgets", 1)``), dotted and quoted keys, inline tables and array
elements. The text must already be valid TOML (parse it with ``tomllib`` first).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping

Loc = tuple[str | int, ...]
_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def key_lines(text: str) -> dict[Loc, int]:
    """``{path: 1-based line}`` for every table, key and array element of ``text``."""
    return _Scanner(text).scan()


def line_of(lines: Mapping[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, else of its longest known prefix (a missing key is reported at
    its table's header); None when not even the section is in the file."""
    for end in range(len(loc), 0, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.line = 1
        self.lines: dict[Loc, int] = {}
        self.arrays: dict[Loc, int] = {}  # array of tables -> index of its current element

    def scan(self) -> dict[Loc, int]:
        table: Loc = ()
        while True:
            self.skip(newlines=True)
            if self.i >= len(self.s):
                return self.lines
            if self.s.startswith("[[", self.i):
                self.move(2)
                keys = self.key()
                base = (*self.resolve(keys[:-1]), keys[-1])
                self.skip()
                self.move(2)
                index = self.arrays.get(base, -1) + 1
                self.arrays[base] = index
                self.lines.setdefault(base, self.line)
                table = (*base, index)
                self.lines[table] = self.line
            elif self.s.startswith("[", self.i):
                self.move(1)
                table = self.resolve(self.key())
                self.skip()
                self.move(1)
                self.lines.setdefault(table, self.line)
            else:
                path = (*table, *self.key())
                self.lines.setdefault(path, self.line)
                self.skip()
                self.move(1)  # '='
                self.value(path)

    def resolve(self, keys: list[str]) -> Loc:
        """A header's path, with the current index of every array of tables it passes."""
        path: Loc = ()
        for key in keys:
            path = (*path, key)
            if path in self.arrays:
                path = (*path, self.arrays[path])
        return path

    def move(self, n: int) -> None:
        self.line += self.s.count("\n", self.i, self.i + n)
        self.i += n

    def skip(self, *, newlines: bool = False) -> None:
        """Skip blanks and comments (and line ends when ``newlines``)."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.move(1)
            elif c == "#":
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self.skip()
            if self.s[self.i] in "\"'":
                parts.append(self.string())
            else:
                start = self.i
                while self.i < len(self.s) and self.s[self.i] in _BARE:
                    self.i += 1
                parts.append(self.s[start : self.i])
            self.skip()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.move(1)
                continue
            return parts

    def string(self) -> str:
        quote = self.s[self.i]
        if self.s.startswith(quote * 3, self.i):
            end = self.s.index(quote * 3, self.i + 3)
            while self.s.startswith(quote, end + 3):  # up to two quotes may close the string
                end += 1
            value = self.s[self.i + 3 : end]
            self.move(end + 3 - self.i)
            return value
        j = self.i + 1
        while self.s[j] != quote:
            j += 2 if quote == '"' and self.s[j] == "\\" else 1
        raw = self.s[self.i : j + 1]
        self.move(j + 1 - self.i)
        return str(tomllib.loads(f"k = {raw}")["k"]) if quote == '"' else raw[1:-1]

    def value(self, path: Loc) -> None:
        self.skip()
        c = self.s[self.i] if self.i < len(self.s) else ""
        if c in "\"'":
            self.string()
        elif c == "[":
            self.move(1)
            index = 0
            while True:
                self.skip(newlines=True)
                if self.s[self.i] == "]":
                    self.move(1)
                    return
                self.lines.setdefault((*path, index), self.line)
                self.value((*path, index))
                self.skip(newlines=True)
                if self.s[self.i] == ",":
                    self.move(1)
                index += 1
        elif c == "{":
            self.move(1)
            while True:
                self.skip(newlines=True)
                if self.s[self.i] == "}":
                    self.move(1)
                    return
                inner = (*path, *self.key())
                self.lines.setdefault(inner, self.line)
                self.skip()
                self.move(1)  # '='
                self.value(inner)
                self.skip(newlines=True)
                if self.s[self.i] == ",":
                    self.move(1)
        else:  # number, boolean, date-time: up to a delimiter
            while self.i < len(self.s) and self.s[self.i] not in ",]}\n#":
                self.i += 1
