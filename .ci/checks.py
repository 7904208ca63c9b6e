#!/usr/bin/env python3
"""Structural checks run by .ci/run: file length, import cycles in the core, design references.

    python3 .ci/checks.py file-length      # no file under crates/*/src over 600 lines
    python3 .ci/checks.py import-cycles    # no two files of the core import each other (any cycle)
    python3 .ci/checks.py design-refs      # every cited "Rule N" / "§N.N" exists in docs/DESIGN.md
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAX_LINES = 600
CORE_SRC = ROOT / "crates" / "tokio-nursery" / "src"


def file_length():
    bad = []
    for f in sorted(ROOT.glob("crates/*/src/**/*.rs")):
        n = sum(1 for _ in f.open(encoding="utf-8"))
        if n > MAX_LINES:
            bad.append(f"{f.relative_to(ROOT)}: {n} lines (limit {MAX_LINES})")
    return bad


def module_of(path):
    rel = path.relative_to(CORE_SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def expand_use_tree(prefix, tree):
    """Yield full paths from a use tree such as `a::{b::C, d}`."""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)(::)?\{(.*)\}$", tree, flags=re.S)
    if m:
        head = [p for p in m.group(1).split("::") if p]
        depth, cur, items = 0, "", []
        for ch in m.group(3):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                items.append(cur)
                cur = ""
            else:
                cur += ch
        items.append(cur)
        for item in items:
            if item.strip():
                yield from expand_use_tree(prefix + head, item)
    else:
        yield prefix + [p.split(" as ")[0].strip() for p in tree.split("::") if p.strip()]


def resolve(segments, modules):
    """The longest prefix of `segments` that names a module file."""
    for n in range(len(segments), 0, -1):
        if tuple(segments[:n]) in modules:
            return tuple(segments[:n])
    return None


def import_edges():
    files = [f for f in CORE_SRC.rglob("*.rs")]
    modules = {module_of(f): f for f in files}
    edges = {}
    for mod, f in modules.items():
        text = strip_comments(f.read_text(encoding="utf-8"))
        targets = set()
        paths = []
        for m in re.finditer(r"\buse\s+(crate|super)::([^;]+);", text):
            base = [] if m.group(1) == "crate" else list(mod[:-1] if f.name != "mod.rs" else mod[:-1])
            paths += [base + p for p in expand_use_tree([], m.group(2))]
        for m in re.finditer(r"\bcrate::((?:\w+::)*\w+)", text):
            paths.append(m.group(1).split("::"))
        for m in re.finditer(r"\bsuper::((?:\w+::)*\w+)", text):
            base = list(mod[:-1])
            paths.append(base + m.group(1).split("::"))
        for p in paths:
            target = resolve(p, modules)
            if target is not None and target != mod and target != ():
                targets.add(target)
        edges[mod] = targets
    return edges


def import_cycles():
    edges = import_edges()
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            # A folder's mod.rs re-exporting its own files is not a cycle between files.
            if len(w) > len(v) and w[: len(v)] == v:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(scc)

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return ["import cycle: " + " -> ".join("::".join(m) for m in sorted(s)) for s in sccs]


def design_refs():
    design = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    rules = set(re.findall(r"^#+\s*Rule (\d+)\b", design, flags=re.M))
    rules |= set(re.findall(r"\*\*Rule (\d+)\b", design))
    sections = set(re.findall(r"^#+\s*§?(\d+(?:\.\d+)*)[.\s]", design, flags=re.M))
    bad = []
    sources = [p for p in ROOT.glob("crates/**/*.rs") if "target" not in p.parts]
    sources += [p for p in ROOT.glob("*.md")] + [p for p in ROOT.glob("crates/**/*.md")]
    sources += [p for p in ROOT.glob("docs/*.md")]
    for f in sources:
        if "target" in f.parts:
            continue
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            # Case-insensitive: comments also write "rule 3", "rules 1–3", "DESIGN rule 4". No
            # "rule N" in the sources means anything but a rule of docs/DESIGN.md.
            pattern = r"\brules? (\d+)(?:\s*(?:-|–|and|,)\s*(\d+))?"
            for r in re.findall(pattern, line, flags=re.I):
                for n in filter(None, r):
                    if n not in rules:
                        bad.append(f"{f.relative_to(ROOT)}:{lineno}: Rule {n} is not in docs/DESIGN.md")
            for s in re.findall(r"§\s?(\d+(?:\.\d+)*)", line):
                if s not in sections:
                    bad.append(f"{f.relative_to(ROOT)}:{lineno}: §{s} is not in docs/DESIGN.md")
    return bad


CHECKS = {"file-length": file_length, "import-cycles": import_cycles, "design-refs": design_refs}

if __name__ == "__main__":
    names = sys.argv[1:] or list(CHECKS)
    failures = [msg for name in names for msg in CHECKS[name]()]
    for msg in failures:
        print(msg)
    if failures:
        sys.exit(1)
    print("ok:", ", ".join(names))
