"""keepalived.conf syntax: files -> a tree of statements with file:line.

Handles what keepalived's own reader does before keywords mean anything, in
its order: `#`/`!` comments removed first (outside double quotes; `\\#` and
`\\!` are the characters themselves), then `$NAME=value` definitions and
`$NAME` / `${NAME}` substitution (with keepalived's `${_ENV NAME}`, `${_HASH}`
and `${_BANG}`), `@node` / `@^node` conditional lines, double quotes, `{ }`
blocks (on the keyword's line or the next) and `include` with globs relative
to the including file.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import Diagnostics, Location

MAX_INCLUDE_DEPTH = 16
_DEFINE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_VAR = re.compile(r"\$\{_ENV\s+([A-Za-z_][A-Za-z0-9_]*)\}|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
#: keepalived's standard definitions that cloudvip gives the same value
_STANDARD = {"_HASH": "#", "_BANG": "!"}
#: the ones it does not (their value depends on keepalived's process or is random)
_UNSUPPORTED_STANDARD = ("_PWD", "_INSTANCE", "_RANDOM")


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    loc: Location
    quoted: bool = False


@dataclass(slots=True)
class Node:
    """One statement: `keyword args...` optionally followed by a `{ ... }` block."""

    keyword: str
    args: list[Token]
    loc: Location
    children: list[Node] | None = None

    @property
    def words(self) -> list[str]:
        return [t.text for t in self.args]


@dataclass(slots=True)
class _Line:
    tokens: list[Token] = field(default_factory=list)


def _decomment(line: str) -> str:
    """The line without its comment, as keepalived's decomment(): `#` or `!` outside double
    quotes starts one, a backslash before either makes it the character itself."""
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == '"':
            quoted = not quoted
        elif c == "\\" and not quoted and line[i + 1:i + 2] in ("#", "!"):
            out.append(line[i + 1])
            i += 2
            continue
        elif c in "#!" and not quoted:
            break
        out.append(c)
        i += 1
    return "".join(out).strip()


def _split(text: str, loc: Location, diags: Diagnostics) -> list[Token]:
    """Split one (decommented) line into words, braces and quoted strings."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "{}":
            tokens.append(Token(c, loc))
            i += 1
        elif c == '"':
            end = text.find('"', i + 1)
            if end < 0:
                diags.error(loc, "unterminated quoted string", "a closing '\"' on the same line")
                tokens.append(Token(text[i + 1:], loc, quoted=True))
                break
            tokens.append(Token(text[i + 1:end], loc, quoted=True))
            i = end + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '{}"':
                j += 1
            tokens.append(Token(text[i:j], loc))
            i = j
    return tokens


class _Reader:
    def __init__(self, diags: Diagnostics, config_id: str | None) -> None:
        self.diags = diags
        self.config_id = config_id
        self.defines: dict[str, str] = {}
        self.files: list[Path] = []

    def substitute(self, text: str, loc: Location) -> str:
        def repl(m: re.Match[str]) -> str:
            if m.group(1) is not None:  # ${_ENV NAME}: the environment, empty if unset (as keepalived)
                return os.environ.get(m.group(1), "")
            name = m.group(2) or m.group(3)
            if name in self.defines:
                return self.defines[name]
            if name in _STANDARD:
                return _STANDARD[name]
            if name in _UNSUPPORTED_STANDARD:
                self.diags.warning(loc, f"${{{name}}} (a keepalived standard definition) is not implemented by "
                                        "cloudvip; left as it is")
                return m.group(0)
            self.diags.warning(loc, f"${name} is not defined; left as it is")
            return m.group(0)
        return _VAR.sub(repl, text) if "$" in text else text

    def read(self, path: Path, depth: int, include_loc: Location | None) -> list[Token | None]:
        """Tokens of a file and its includes; None marks an end of line."""
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            where = include_loc or Location(str(path), 0)
            self.diags.error(where, f"cannot read {path}: {exc.strerror}", "a readable file")
            return []
        self.files.append(path)
        return self.read_text(text, path, depth)

    def read_text(self, text: str, path: Path, depth: int) -> list[Token | None]:
        out: list[Token | None] = []
        for lineno, raw in enumerate(text.splitlines(), 1):
            loc = Location(str(path), lineno)
            line = _decomment(raw)
            if not line:
                continue
            if line.startswith("@"):
                kept = self._conditional(line)
                if kept is None:
                    continue
                line = kept
            m = _DEFINE.match(line)
            if m:
                self.defines[m.group(1)] = self.substitute(m.group(2).strip(), loc)
                continue
            tokens = _split(self.substitute(line, loc), loc, self.diags)
            if tokens and tokens[0].text == "include" and not tokens[0].quoted:
                out.extend(self._include(tokens, path, depth, loc))
                continue
            out.extend(tokens)
            out.append(None)
        return out

    def _conditional(self, line: str) -> str | None:
        """`@id rest` applies only when config_id is id, `@^id rest` only when it is not."""
        head, *rest_of_line = line.split(None, 1)  # keepalived splits on a space or a tab
        rest = rest_of_line[0] if rest_of_line else ""
        negate = head.startswith("@^")
        ident = head[2:] if negate else head[1:]
        matches = self.config_id is not None and ident == self.config_id
        return rest.strip() if matches != negate else None

    def _include(self, tokens: list[Token], path: Path, depth: int, loc: Location) -> list[Token | None]:
        if len(tokens) != 2:
            self.diags.error(loc, "include takes exactly one file name or glob", "include PATH")
            return []
        if depth >= MAX_INCLUDE_DEPTH:
            self.diags.error(loc, f"includes nested deeper than {MAX_INCLUDE_DEPTH}", "no include loop")
            return []
        pattern = tokens[1].text
        if not os.path.isabs(pattern):
            pattern = str(path.parent / pattern)
        matches = sorted(glob.glob(pattern))
        if not matches:
            self.diags.warning(loc, f"include {tokens[1].text}: no file matches")
        out: list[Token | None] = []
        for match in matches:
            out.extend(self.read(Path(match), depth + 1, loc))
        return out


def _statements(tokens: list[Token | None], diags: Diagnostics) -> list[Node]:
    """Build the statement tree from the token stream."""
    root: list[Node] = []
    stack: list[tuple[list[Node], Node | None]] = [(root, None)]
    current: list[Token] = []

    def flush() -> None:
        if current:
            level = stack[-1][0]
            level.append(Node(current[0].text, current[1:], current[0].loc))
            current.clear()

    for tok in tokens:
        if tok is None:
            flush()
        elif tok.text == "{" and not tok.quoted:
            flush()
            level, _ = stack[-1]
            if not level or level[-1].children is not None:
                diags.error(tok.loc, "'{' without a keyword before it", "KEYWORD {")
                opener = Node("{", [], tok.loc)
                level.append(opener)
            else:
                opener = level[-1]
            opener.children = []
            stack.append((opener.children, opener))
        elif tok.text == "}" and not tok.quoted:
            flush()
            if len(stack) == 1:
                diags.error(tok.loc, "'}' without a matching '{'", "balanced braces")
            else:
                stack.pop()
        else:
            current.append(tok)
    flush()
    for _, unclosed in stack[1:]:
        assert unclosed is not None
        diags.error(unclosed.loc, f"block '{unclosed.keyword}' is never closed", "a matching '}'")
    return root


def parse_file(path: Path, diags: Diagnostics, config_id: str | None = None) -> tuple[list[Node], list[Path]]:
    reader = _Reader(diags, config_id)
    tokens = reader.read(path, 0, None)
    return _statements(tokens, diags), reader.files


def parse_text(text: str, diags: Diagnostics, name: str = "<string>",
               config_id: str | None = None) -> list[Node]:
    """Parse config text; includes resolve relative to the current directory."""
    reader = _Reader(diags, config_id)
    return _statements(reader.read_text(text, Path(name), 0), diags)
