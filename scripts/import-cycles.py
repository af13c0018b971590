#!/usr/bin/env python3
"""Finds import circles between the files of each crate.

A circle (a.rs uses b.rs, b.rs uses a.rs, directly or through others) means a type sits in the
wrong file: the shared part belongs in a leaf module both can use. Test files are not counted.

Edges come from `use` trees and from inline `crate::`/`super::`/`self::` paths, resolved to the
file that declares the module (re-exports in a module's file are followed to their origin).
A module using its own descendants is not an edge back: a parent wires its children, so only a
child reaching up (`super::`) or a sibling counts.

    scripts/import-cycles.py [crates/*]     exits 1 and lists the circles when there are any
"""

import re
import sys
from pathlib import Path

USE_RE = re.compile(r"\buse\s+((?:crate|super|self)\b[^;]*);", re.S)
PATH_RE = re.compile(r"\b((?:crate|super|self)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
TEST_MOD_RE = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", re.S)
COMMENT_RE = re.compile(r"//[^\n]*")


def module_path(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def is_test_file(file: Path) -> bool:
    name = file.stem
    return name in ("tests", "test_support", "testing") or name.endswith("_tests")


def strip_test_modules(text: str) -> str:
    """Drops `#[cfg(test)] mod x { ... }` blocks (brace-matched) and line comments."""
    text = COMMENT_RE.sub("", text)
    out, pos = [], 0
    for match in TEST_MOD_RE.finditer(text):
        if match.start() < pos:
            continue
        out.append(text[pos:match.start()])
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        pos = i
    out.append(text[pos:])
    return "".join(out)


def expand_use_tree(tree: str) -> list:
    """`crate::{a::B, c::{d, e}}` -> ['crate::a::B', 'crate::c::d', 'crate::c::e']."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    head, rest = tree.split("{", 1)
    inner = rest[: rest.rfind("}")]
    items, depth, current = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        current += ch
    items.append(current)
    paths = []
    for item in filter(None, items):
        paths.extend(expand_use_tree(head + item))
    return paths


def absolute(module: tuple, path: str) -> tuple:
    """A `crate::`/`super::`/`self::` path made absolute from inside `module`."""
    segments = path.split("::")
    if segments[0] == "crate":
        return tuple(segments[1:])
    if segments[0] == "self":
        return module + tuple(segments[1:])
    base = list(module)
    while segments and segments[0] == "super":
        base = base[:-1]
        segments = segments[1:]
    return tuple(base + segments)


class Crate:
    def __init__(self, root: Path):
        self.src = root / "src"
        self.files = {}
        for file in sorted(self.src.rglob("*.rs")):
            if is_test_file(file) or "bin" in file.relative_to(self.src).parts[:1]:
                continue
            self.files[module_path(self.src, file)] = file
        self.texts = {m: strip_test_modules(f.read_text()) for m, f in self.files.items()}
        self.reexports = {m: self._reexports(m) for m in self.files}

    def _reexports(self, module: tuple) -> dict:
        """Names a module file re-exports with `pub use`, mapped to where they come from."""
        names = {}
        for match in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", self.texts[module]):
            for path in expand_use_tree(match.group(1)):
                segments = path.split("::")
                if segments[0] not in ("crate", "super", "self"):
                    segments = ["self"] + segments
                names[segments[-1]] = absolute(module, "::".join(segments))
        return names

    def owner(self, path: tuple, seen=None) -> tuple:
        """The file module that defines `path` (longest module prefix, re-exports followed)."""
        seen = seen or set()
        for cut in range(len(path), -1, -1):
            prefix = path[:cut]
            if prefix not in self.files:
                continue
            if cut < len(path) and path[cut] in self.reexports[prefix] and path not in seen:
                seen.add(path)
                target = self.reexports[prefix][path[cut]] + path[cut + 1:]
                return self.owner(target, seen)
            return prefix
        return ()

    def edges(self) -> dict:
        graph = {m: set() for m in self.files}
        for module, text in self.texts.items():
            paths = []
            for match in USE_RE.finditer(text):
                paths.extend(expand_use_tree(match.group(1)))
            paths.extend(PATH_RE.findall(USE_RE.sub("", text)))
            for path in paths:
                target = self.owner(absolute(module, path))
                descendant = target[: len(module)] == module
                if target != module and not descendant:
                    graph[module].add(target)
        return graph

    def label(self, module: tuple) -> str:
        return str(self.files[module].relative_to(self.src.parent.parent.parent))


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on_stack, result, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in graph:
        if node not in index:
            visit(node)
    return result


def main(args: list) -> int:
    roots = [Path(a) for a in args] or sorted(Path("crates").glob("*/"))
    found = 0
    for root in roots:
        if not (root / "src").is_dir():
            continue
        crate = Crate(root)
        graph = crate.edges()
        for component in cycles(graph):
            found += 1
            print(f"import circle in {root.name}:")
            for module in component:
                uses = sorted(crate.label(t) for t in graph[module] if t in component)
                print(f"  {crate.label(module)} uses {', '.join(uses)}")
    if found:
        print(f"{found} import circle(s): move what both sides share into a leaf module")
        return 1
    print("no import circles between the files of a crate")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
