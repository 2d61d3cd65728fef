"""YAML loading that remembers where every key came from.

Spec errors must name file:line; pydantic only knows field paths, so the loader
keeps a map from each path to the line its key (or item) starts on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from launcher.errors import Problem

Path_ = tuple[str | int, ...]
MAX_SPEC_BYTES = 1024 * 1024
# Aliases can make a 500-byte file expand to billions of nodes ("billion laughs").
MAX_NODES = 50_000
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_NUMBER_DIGITS = 4000  # below Python's int-from-text limit (4300 digits)


@dataclass
class SourceMap:
    """Line numbers by field path for one file; paths set by --set point at the flag."""

    file: str
    lines: dict[Path_, int] = field(default_factory=dict)
    # paths a --set flag gave a value (what lies under them came from the flag too)
    overridden: dict[Path_, str] = field(default_factory=dict)
    # mappings a --set flag brought into being on the way to its path: the flag's fault only
    # when they themselves are wrong (a typo'd key), not for what else they lack
    created: dict[Path_, str] = field(default_factory=dict)
    visited: int = 0

    def locate(self, path: Path_) -> tuple[str, int | None]:
        """The file and line that best explain `path`: itself or its nearest parent."""
        if path in self.created:
            return f"--set {self.created[path]}", None
        return self.origin(path) or (self.file, None)

    def origin(self, path: Path_, depth: int = 0) -> tuple[str, int | None] | None:
        """Where `path`, or the nearest parent at least `depth` parts long, was written: a line
        of the file or a --set flag. None when neither holds it."""
        for end in range(len(path), depth - 1, -1):
            prefix = path[:end]
            if prefix in self.overridden:
                return f"--set {self.overridden[prefix]}", None
            if prefix in self.lines:
                return self.file, self.lines[prefix]
        return None

    def problem(self, path: Path_, message: str) -> Problem:
        file, line = self.locate(path)
        return Problem(file, line, dotted(path), message)


def dotted(path: Path_) -> str:
    """resources.nodes / env.FOO / secrets[1]."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document; syntax errors become a Problem list (SpecError)."""
    import yaml

    from launcher.errors import SpecError

    source = SourceMap(file)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError([Problem(file, None, "", f"file is larger than {MAX_SPEC_BYTES // 1024} KiB; "
                                 "a job spec should be a short YAML file")])
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        # libyaml where PyYAML was built with it: the same nodes, marks and constructors, parsed in C (the
        # pure-Python parser was most of a submit's own time on a fast API). A document it refuses is read again
        # below by the pure-Python loader, whose messages (and their lines and fields) are the ones users get.
        try:
            return _parsed(fast, text, source), source
        except SpecError:
            raise
        except Exception:  # a YAML error, or text libyaml cannot encode (a lone surrogate)
            source = SourceMap(file)
    try:
        data = _parsed(yaml.SafeLoader, text, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        opened = exc.context_mark
        unclosed = ("while parsing a flow", "while scanning a quoted")
        if opened and exc.context and exc.context.startswith(unclosed):
            what += f" (opened on line {opened.line + 1})"
        raise SpecError([Problem(file, line, "", f"YAML syntax error: {what}; fix the YAML at this line")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem(file, None, "", f"YAML error: {exc}")]) from None
    except RecursionError:
        raise SpecError([Problem(file, None, "", "YAML nesting is too deep for a job spec")]) from None
    return data, source


def _parsed(loader_class: Any, text: str, source: SourceMap) -> Any:
    """The document, with every node's line in `source`; what construction would choke on is found first."""
    from launcher.errors import SpecError

    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        problems: list[Problem] = []
        if node is not None:
            _index(node, (), source, problems)
        if problems:
            raise SpecError(problems)
        return loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()


def _index(node: Any, path: Path_, source: SourceMap, problems: list[Problem]) -> None:
    import yaml

    source.lines.setdefault(path, node.start_mark.line + 1)
    source.visited += 1
    if source.visited > MAX_NODES:
        from launcher.errors import SpecError

        raise SpecError([Problem(source.file, node.start_mark.line + 1, dotted(path),
                                 f"the spec expands to more than {MAX_NODES} values (YAML aliases?); "
                                 "a job spec should be small")])
    if len(path) > 50:
        problems.append(source.problem(path, "nesting is too deep for a job spec"))
        return
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key_node.tag == "tag:yaml.org,2002:bool":
                problems.append(Problem(source.file, key_node.start_mark.line + 1, dotted(child),
                                        f"YAML reads the key {key!r} as a boolean; quote it: \"{key}\":"))
                continue
            if key in seen:
                problems.append(Problem(source.file, key_node.start_mark.line + 1, dotted(child),
                                        "duplicate key; keep one of them"))
            seen.add(key)
            source.lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, source, problems)
    elif node.tag == "tag:yaml.org,2002:int" and (digits := _decimal_digits(str(node.value))) > MAX_NUMBER_DIGITS:
        # Python refuses to turn a longer digit string into an int, or such an int into text (ValueError, not
        # a YAML error); a hex number has more decimal digits than it is written with
        problems.append(source.problem(path, f"a number with {digits} digits is not a value a job spec takes; "
                                       "quote it if it is text"))
    elif isinstance(node, yaml.ScalarNode) and "\x00" in str(node.value):
        problems.append(source.problem(path, "contains a NUL character (\\0), which no command line or "
                                       "environment variable can carry; remove it"))
    elif isinstance(node, yaml.ScalarNode) and _SURROGATE.search(str(node.value)):
        # "\ud83d\ude00" in a quoted YAML string gives two lone surrogates, not the emoji: no text encoding takes them
        problems.append(source.problem(path, "contains a lone UTF-16 surrogate (a \\ud800-\\udfff escape); "
                                       "write the character itself or use \\U0001F600-style escapes"))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index(item, (*path, index), source, problems)


def _decimal_digits(text: str) -> int:
    """About how many decimal digits the YAML int `text` has (hex 0x... has ~1.2 per digit written)."""
    written = text.replace("_", "").lstrip("+-")
    if written[:2].lower() == "0x":
        return int((len(written) - 2) * 1.2042) + 1
    return len(written)
