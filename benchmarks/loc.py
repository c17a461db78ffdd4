"""Lines of code of src/glmmsim per package at two git revisions: the "before and after" of a redesign.

Usage::

    python3 benchmarks/loc.py                 # cca9c68 (before issue 18) against HEAD
    python3 benchmarks/loc.py REV_A REV_B     # any two revisions, branches or tags

For every package (a folder of src/glmmsim holding Python files; modules of a sub-package count
for the sub-package) and each revision it prints the number of files and of lines: ``total``
(every line), ``sloc`` (not blank, not only a comment) and ``code`` (sloc without docstring
lines). Only ``*.py`` files count. The files are read from git (``git ls-tree``/``git cat-file``),
so the working tree is never touched and uncommitted changes do not count.
"""

from __future__ import annotations

import argparse
import ast
import io
import subprocess
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "src/glmmsim"
BEFORE = "cca9c68"  # main before issue 18's redesign


@dataclass
class Count:
    files: int = 0
    total: int = 0
    sloc: int = 0
    code: int = 0

    def add(self, other: Count) -> None:
        self.files += other.files
        self.total += other.total
        self.sloc += other.sloc
        self.code += other.code


def _git(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], input=stdin, capture_output=True, check=True).stdout


def python_files(rev: str) -> dict[str, bytes]:
    """path -> content of every ``*.py`` under src/glmmsim at ``rev``, in one ``git cat-file`` call."""
    paths = [p for p in _git("ls-tree", "-r", "--name-only", rev, "--", PACKAGE).decode().splitlines()
             if p.endswith(".py")]
    out = _git("cat-file", "--batch", stdin="".join(f"{rev}:{p}\n" for p in paths).encode())
    contents, pos = {}, 0
    for path in paths:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        contents[path] = out[header_end + 1: header_end + 1 + size]
        pos = header_end + 1 + size + 1  # the content is followed by a newline
    return contents


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                    first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def count(source: bytes) -> Count:
    """The counts of one file: comments found by the tokenizer, docstrings by the parser."""
    text = source.decode("utf-8")
    lines = text.splitlines()
    comment_only = set()
    code_tokens = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            comment_only.add(tok.start[0])
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                              tokenize.ENDMARKER):
            code_tokens.update(range(tok.start[0], tok.end[0] + 1))
    comment_only -= code_tokens  # a line with code and a trailing comment is code
    blank = {i for i, line in enumerate(lines, 1) if not line.strip()} - code_tokens  # not inside a string
    sloc = set(range(1, len(lines) + 1)) - blank - comment_only
    return Count(files=1, total=len(lines), sloc=len(sloc), code=len(sloc - _docstring_lines(ast.parse(text))))


def per_package(rev: str) -> dict[str, Count]:
    counts: dict[str, Count] = {}
    for path, source in python_files(rev).items():
        folder = PurePosixPath(path).parent.relative_to("src")
        counts.setdefault(".".join(folder.parts), Count()).add(count(source))
    return counts


COLUMNS = ("files", "total", "sloc", "code")
WIDTH = 7  # of one number column


def table(before: str, after: str) -> str:
    a, b = per_package(before), per_package(after)
    group = WIDTH * len(COLUMNS)
    rows = [f"lines of Python in {PACKAGE}: {before} -> {after}",
            f"{'':<22}{before[:group - 2]:>{group}}  {after[:group - 2]:>{group}}",
            f"{'package':<22}" + "".join(f"{c:>{WIDTH}}" for c in COLUMNS) + "  "
            + "".join(f"{c:>{WIDTH}}" for c in COLUMNS) + f"{'code +/-':>10}"]
    zero = Count()
    total_a, total_b = Count(), Count()
    for name in sorted(set(a) | set(b)):
        ca, cb = a.get(name), b.get(name)
        total_a.add(ca or zero)
        total_b.add(cb or zero)
        rows.append(f"{name:<22}{_cells(ca)}  {_cells(cb)}{(cb or zero).code - (ca or zero).code:>+10d}")
    rows.append(f"{'all':<22}{_cells(total_a)}  {_cells(total_b)}{total_b.code - total_a.code:>+10d}")
    rows.append("after / before: " + ", ".join(
        f"{c} {getattr(total_b, c) / getattr(total_a, c):.3f}" for c in COLUMNS if getattr(total_a, c)))
    return "\n".join(rows)


def _cells(c: Count | None) -> str:
    if c is None:
        return "".join(f"{'-':>{WIDTH}}" for _ in COLUMNS)
    return "".join(f"{getattr(c, col):>{WIDTH}}" for col in COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", nargs="?", default=BEFORE, help=f"revision before (default {BEFORE})")
    parser.add_argument("after", nargs="?", default="HEAD", help="revision after (default HEAD)")
    args = parser.parse_args(argv)
    try:
        print(table(args.before, args.after))
    except subprocess.CalledProcessError as exc:
        print(f"git failed: {exc.stderr.decode().strip()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
