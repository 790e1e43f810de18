#!/usr/bin/env python3
"""The house rules of #19, checked: no import circle between the host's source files, and no
backend (a capability's real.rs or fake.rs, the MySQL engine under sql/mysql/) importing the
runtime, the journal or the grants: only each capability's glue sees the host-call path.

Every `crate::…` and `super::…` path in a file of host/src (in `use` lines and inline) is resolved
to the file that defines it; the files and those edges form a graph, and any strongly connected
component of more than one file is a circle, printed with its edges. A parent's `mod x;` line is
not an import. Exit 1 when a circle exists. Usage: python3 tests/import-circles.py [--graph]
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host", "src")


def module_files():
    """Module path (tuple) -> file, for every .rs file under host/src."""
    mods = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
            parts = rel[:-3].split(os.sep)
            if parts[-1] == "mod":
                parts = parts[:-1]
            if parts in (["lib"], ["main"]):
                parts = []
                if f == "main.rs":
                    continue
            mods[tuple(parts)] = rel
    return mods


PATH = re.compile(r"\b(crate|super)((?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))+)")
GROUP = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{")


def strip_comments(text):
    """The file's code without comments and without its `#[cfg(test)]` modules (a test may import
    anything of its own file)."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def own_module(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        return tuple(parts[:-1]), True
    if parts in (["lib"],):
        return (), True
    return tuple(parts), False


def resolve(base, start, segments, mods):
    """The file a path names: the longest module prefix that is a file."""
    if start == "crate":
        path = []
    else:
        path = list(base)
    segs = list(segments)
    if start == "super":
        path = path[:-1]
    while segs and segs[0] == "super":
        path = path[:-1]
        segs.pop(0)
    best = tuple(path) if tuple(path) in mods else None
    for s in segs:
        path.append(s)
        if tuple(path) in mods:
            best = tuple(path)
        else:
            break
    return best


def group_members(text, start_idx):
    """The names inside a `use x::{…}` group (top level only: nested groups are followed too)."""
    depth, i, out, cur = 1, start_idx, [], ""
    while i < len(text) and depth:
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if depth == 1 and c == ",":
            out.append(cur.strip())
            cur = ""
        elif depth >= 1 and not (depth == 1 and c == "{"):
            cur += c
        i += 1
    if cur.strip():
        out.append(cur.strip().rstrip("}"))
    return [o for o in out if o]


def edges():
    mods = module_files()
    graph = {rel: set() for rel in mods.values()}
    for mod, rel in mods.items():
        text = strip_comments(open(os.path.join(ROOT, rel), encoding="utf-8").read())
        base, is_dir = own_module(rel)
        # `super` in a non-mod.rs file names the parent of its own module, as in a mod.rs file.
        found = set()
        for m in PATH.finditer(text):
            segs = [s for s in m.group(2).split("::") if s]
            target = resolve(base, m.group(1), segs, mods)
            if target is not None:
                found.add(mods[target])
        for m in GROUP.finditer(text):
            prefix = [s for s in m.group(2).split("::") if s]
            for member in group_members(text, m.end()):
                first = re.split(r"::|\s", member)[0]
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", first) or first == "self":
                    continue
                target = resolve(base, m.group(1), prefix + [s for s in member.split("::") if re.match(r"^[A-Za-z_]\w*$", s)], mods)
                if target is not None:
                    found.add(mods[target])
        found.discard(rel)
        graph[rel] |= found
    return graph


def circles(graph):
    """Tarjan's strongly connected components of more than one file."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


BACKEND = re.compile(r"^capabilities/[^/]+/(real|fake)\.rs$|^capabilities/sql/mysql/")
HOST_CALL_PATH = re.compile(r"^(runtime/|journal/|grants\.rs)")


def backend_leaks(graph):
    return [(f, t) for f in sorted(graph) if BACKEND.search(f) for t in sorted(graph[f]) if HOST_CALL_PATH.search(t)]


def main():
    graph = edges()
    leaks = backend_leaks(graph)
    for f, t in leaks:
        print(f"backend {f} imports {t}: a backend knows nothing of the host-call path; pass what it needs in")
    if "--graph" in sys.argv:
        for f in sorted(graph):
            print(f, "->", ", ".join(sorted(graph[f])))
    found = circles(graph)
    for comp in found:
        print(f"import circle of {len(comp)} files:")
        members = set(comp)
        for f in comp:
            inside = sorted(graph[f] & members)
            print(f"  {f} -> {', '.join(inside)}")
    if found or leaks:
        print(f"{len(found)} import circle(s) between host files: break each by moving the shared item down "
              "(config structs to config.rs, shared types to the capability's mod.rs, never importing upward).")
        return 1
    print(f"no import circle between the host's {len(graph)} source files, and no backend imports the host-call path")
    return 0


if __name__ == "__main__":
    sys.exit(main())
