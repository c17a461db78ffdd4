"""Safe YAML for study specs: size, depth and alias budgets checked before parsing, and every key's line.

A spec file is data from whoever wrote it. It is read with PyYAML's safe loader after
budgets on its size (:data:`MAX_SPEC_BYTES`), nesting (:data:`MAX_YAML_DEPTH`) and alias
expansion (:data:`MAX_YAML_NODES`) have been checked on the event stream, so a "billion
laughs" or a recursive alias is refused before it is built. Every key's YAML line is
kept, so that a :class:`SpecError` names the file, the line and the key path. The same
budgets apply to ``--set`` and ``--along`` values (:func:`load_value`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import InputTypeError, ParameterError

__all__ = ["SpecError", "MAX_SPEC_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "load_value", "read_text_file"]

Path = tuple  # a key path: tuple of str keys and int list positions


class SpecError(ParameterError):
    """A study spec is invalid; the message names the file, line and key path."""


# ---------------------------------------------------------------------------
# reading YAML with line numbers
# ---------------------------------------------------------------------------


#: Limits on what a spec file may ask of the YAML reader, all checked before anything is built.
MAX_SPEC_BYTES = 1_000_000  # spec files are a few hundred bytes
MAX_YAML_DEPTH = 32  # nesting of mappings and lists
MAX_YAML_NODES = 20_000  # nodes after expanding aliases (a "billion laughs" expands to 10**9)


def _check_yaml_budget(text: str, source: str) -> None:
    """Refuse YAML that nests too deep or whose aliases expand too far, from the event stream.

    The event parser is iterative, so this pass is safe on any input; PyYAML's composer
    (recursive) and our walk over the nodes (which follows aliases) run only afterwards.
    """
    stack: list[int] = [0]  # expanded node count of each open collection
    anchors: dict[str, int] = {}
    open_anchors: list[str | None] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(stack) > MAX_YAML_DEPTH:
                raise SpecError(
                    f"{source}, line {line}: YAML nests deeper than {MAX_YAML_DEPTH} levels; a spec nests at most "
                    f"{MAX_YAML_DEPTH} (model.random.subject.sd is 4 deep)"
                )
            stack.append(0)
            open_anchors.append(event.anchor)
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            size = stack.pop() + 1
            anchor = open_anchors.pop()
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                # &a [*a]: a collection that contains itself has no finite value
                raise SpecError(
                    f"{source}, line {line}: recursive YAML alias *{event.anchor} (it refers to the collection "
                    f"that contains it); an alias may only repeat a value defined before it"
                )
            size, anchor = anchors.get(event.anchor, 1), None
        else:
            continue
        if anchor is not None:
            anchors[anchor] = size
        stack[-1] += size
        if stack[-1] > MAX_YAML_NODES or sum(stack) > MAX_YAML_NODES:
            raise SpecError(
                f"{source}, line {line}: YAML expands to more than {MAX_YAML_NODES} values "
                f"(aliases of aliases?); a spec holds at most {MAX_YAML_NODES} values once its aliases are expanded"
            )


def _compose(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """Parse YAML; return the data and the 1-based line of every key path."""
    try:
        _check_yaml_budget(text, source)
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{source}{where}: invalid YAML: {problem}") from None
    lines: dict[Path, int] = {}
    if node is not None:
        _walk(node, (), lines, source)
    return data, lines


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int], source: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                line = key_node.start_mark.line + 1
                raise SpecError(f"{source}, line {line}: {_dotted(path + (key,))}: duplicate key {key!r}")
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for pos, child in enumerate(node.value):
            _walk(child, path + (pos,), lines, source)


def _dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass
class _Ctx:
    """Where spec values came from, to point error messages at them."""

    source: str
    lines: dict[Path, int] = field(default_factory=dict)
    origins: dict[Path, str] = field(default_factory=dict)
    base_dir: str | None = None  # the spec file's folder: paths in the spec stay inside it

    def from_command_line(self, path: Path) -> bool:
        """Whether the value at ``path`` was given by ``--set`` / ``--along``, not by the file."""
        return any(tuple(path[:n]) in self.origins for n in range(len(path), -1, -1))

    def spec_path(self, value: str, path: Path) -> str:
        """A file path written in the spec, resolved in the spec's folder, which it may not leave.

        A spec is data from whoever wrote it: ``output.file: /home/me/.bashrc`` or
        ``../../x`` must not reach beyond the spec's folder.  A path given on the command
        line (``--out``, ``--set``) is the user's own and is taken as it is.
        """
        if self.from_command_line(path):
            if path[:2] == ("design", "path") and self.base_dir is not None:
                return os.path.join(self.base_dir, os.path.expanduser(value))
            return value
        parts = value.replace("\\", "/").split("/")
        if os.path.isabs(value) or value.startswith("~") or ".." in parts or os.path.splitdrive(value)[0]:
            raise self.error(
                path,
                f"must be a path inside the spec's folder, without '..' and not absolute; got {value!r}; "
                f"write e.g. 'results/out.csv', or name any path on the command line (--out, --set)",
            )
        if self.base_dir is None:  # a spec given as text: its folder is the working directory
            return value
        joined = os.path.join(self.base_dir, value)
        inside = os.path.realpath(self.base_dir)
        if os.path.commonpath([inside, os.path.realpath(joined)]) != inside:  # a symbolic link out of it
            raise self.error(path, f"{value!r} leads outside the spec's folder {inside!r} (a symbolic link?)")
        return joined

    def where(self, path: Path) -> str:
        for n in range(len(path), -1, -1):
            prefix = tuple(path[:n])
            if prefix in self.origins:
                return self.origins[prefix]
            if prefix in self.lines:
                return f"{self.source}, line {self.lines[prefix]}"
        return self.source

    def error(self, path: Path, message: str) -> SpecError:
        return SpecError(f"{self.where(path)}: {_dotted(path)}: {message}")


def load_value(text: str, source: str) -> Any:
    """A ``--set`` / ``--along`` value parsed as YAML, within the same budgets as a spec file.

    Examples
    --------
    >>> load_value("[1, 2]", "--set x=[1, 2]")
    [1, 2]
    >>> load_value("&a [*a]", "--set x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    glmmsim.study.safe_yaml.SpecError: --set x, line 1: recursive YAML alias *a ...
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: the value is longer than {MAX_SPEC_BYTES:,} bytes, the limit of a whole spec file")
    try:
        _check_yaml_budget(text, source)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(
            f"{source}: the value is not valid YAML ({problem}); write a number (0.3), a word, "
            f"a list [a, b] or a mapping {{a: 1}}"
        ) from None


def read_text_file(path: str | os.PathLike, what: str, limit: int) -> str:
    """The text of a regular UTF-8 file of at most ``limit`` bytes, else a one-line SpecError."""
    if not isinstance(path, (str, os.PathLike)):
        # an int would be taken as a file descriptor (and closed): load_spec(2) closed stderr
        raise InputTypeError(f"{what} path must be a str or os.PathLike; got {type(path).__name__} {path!r}")
    name = os.fspath(path)
    info = os.stat(name)  # a missing file is an OSError, as for any file
    if not stat.S_ISREG(info.st_mode):
        raise SpecError(f"{name}: the {what} must be a regular file, not a device, pipe or directory", path=(name,))
    if info.st_size > limit:
        raise SpecError(f"{name}: the {what} file has {info.st_size} bytes; at most {limit} are read", path=(name,))
    with open(name, "rb") as fh:
        data = fh.read(limit + 1)  # the file may grow between stat and read
    if len(data) > limit:
        raise SpecError(f"{name}: the {what} file has more than {limit} bytes", path=(name,))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{name}: not a UTF-8 text file (byte {exc.start}); is it a YAML {what}?") from None
