"""Fails when a module of the `vortexdb` library imports a module above it, or prints.

The layers, lowest first, are listed in LAYERS (docs/ARCHITECTURE.md draws the same
table). Each top-level module of `src/` has one place in that order, and may use
(`crate::<module>`) only modules listed before it. Comments are ignored (a doc link to a
module above is not a dependency). `src/main.rs` and `src/cli/` are the binary: they
see the library only through its public API (`vortexdb::...`), which is checked too.
The library itself never prints (`println!`, `eprintln!`, `dbg!`, ...): diagnostics go
through the `log` crate, and only the binary writes to the terminal.

    python3 scripts/check-layers.py              # check src/
    python3 scripts/check-layers.py --self-test  # show that an upward import fails
"""

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (layer name, modules in order): a module may use any module listed before it.
LAYERS = [
    ("foundations", ["error", "codec", "limits", "names", "stats"]),
    ("storage", ["index", "engine", "vecio"]),
    (
        "inputs",
        ["volume", "register", "stain", "expression", "spots", "model", "phantom"],
    ),
    ("catalog", ["catalog", "maintenance"]),
    ("ingest", ["ingest"]),
    ("analysis", ["query", "predict", "domains", "metrics"]),
    ("output", ["render", "export"]),
    ("workflow", ["demo"]),
]
BINARY = {"main", "cli", "lib"}
PRINT = re.compile(r"\b(e?println|e?print|dbg)!\s*\(")

USE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
BRACED = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.DOTALL)


def strip_comments(text: str) -> str:
    """The source without comments (line and block) and string literals' contents."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
    out = []
    for line in text.splitlines():
        line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def strip_test_items(code: str) -> str:
    """The code without `#[cfg(test)]` items (a test module's braces, or one line)."""
    out, i = [], 0
    while (j := code.find("#[cfg(test)]", i)) >= 0:
        out.append(code[i:j])
        k = j + len("#[cfg(test)]")
        brace, semi = code.find("{", k), code.find(";", k)
        if brace < 0 or (0 <= semi < brace):
            i = semi + 1 if semi >= 0 else len(code)
            continue
        depth, m = 0, brace
        while m < len(code):
            depth += {"{": 1, "}": -1}.get(code[m], 0)
            m += 1
            if depth == 0:
                break
        out.append("\n" * code[j:m].count("\n"))
        i = m
    out.append(code[i:])
    return "".join(out)


def used_modules(text: str) -> set[str]:
    """Top-level modules a source file names through `crate::`."""
    code = strip_comments(text)
    used = set(USE.findall(code))
    for group in BRACED.findall(code):
        for part in group.split(","):
            head = part.strip().split("::")[0].strip("{} \n")
            if head:
                used.add(head)
    return used


def module_of(src: Path, path: Path) -> str:
    rel = path.relative_to(src)
    return rel.parts[0].removesuffix(".rs")


def check(src: Path) -> list[str]:
    """Every upward or unknown import under `src`, as messages (empty: layered)."""
    rank: dict[str, int] = {}
    layer_of: dict[str, str] = {}
    for name, mods in LAYERS:
        for m in mods:
            rank[m] = len(rank)
            layer_of[m] = name
    problems = []
    seen = set()
    for path in sorted(src.rglob("*.rs")):
        mod = module_of(src, path)
        if mod in BINARY:
            continue
        seen.add(mod)
        if mod not in rank:
            problems.append(
                f"{path}: module `{mod}` has no place in LAYERS (scripts/check-layers.py)"
            )
            continue
        for used in sorted(used_modules(path.read_text())):
            if used == mod or used in ("self", "super"):
                continue
            if used not in rank:
                problems.append(f"{path}: uses unknown module crate::{used}")
            elif rank[used] > rank[mod]:
                problems.append(
                    f"{path}: `{mod}` ({layer_of[mod]}) imports `{used}` ({layer_of[used]}), "
                    "a module above it: dependencies must point down"
                )
    for path in sorted(src.rglob("*.rs")):
        if (
            module_of(src, path) in BINARY
            or path.name == "tests.rs"
            or path.name.endswith("_tests.rs")
        ):
            continue
        code = strip_test_items(strip_comments(path.read_text()))
        for n, line in enumerate(code.splitlines(), 1):
            if PRINT.search(line):
                problems.append(
                    f"{path}:{n}: the library prints; use the `log` crate (log::debug!, ...)"
                )
    for m in rank:
        if m not in seen:
            problems.append(f"LAYERS names `{m}`, which is not a module of {src}")
    for path in [src / "main.rs", *sorted((src / "cli").rglob("*.rs"))]:
        if path.exists():
            for used in sorted(used_modules(path.read_text())):
                if used in rank:
                    problems.append(
                        f"{path}: the binary reaches into crate::{used}: use the public API"
                    )
    return problems


def self_test() -> int:
    """Adds an upward import to a copy of src/ and expects the check to catch it."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        shutil.copytree(ROOT / "src", src)
        if check(src):
            print("self-test: the unmodified copy already fails", file=sys.stderr)
            return 1
        target = src / "engine" / "mod.rs"
        target.write_text(
            target.read_text()
            + "\n#[allow(unused_imports)]\nuse crate::demo::DemoReport;\n"
        )
        problems = check(src)
        print("self-test: engine/mod.rs given `use crate::demo::DemoReport;` ->")
        for p in problems:
            print("  " + p.replace(str(src), "src"))
        if not any(
            "`engine` (storage) imports `demo` (workflow)" in p for p in problems
        ):
            print(
                "self-test FAILED: the upward import was not reported", file=sys.stderr
            )
            return 1
        target.write_text(
            target.read_text().replace("use crate::demo::DemoReport;", "")
        )
        query = src / "query" / "mod.rs"
        query.write_text(
            query.read_text() + '\nfn noisy() {\n    eprintln!("debug");\n}\n'
        )
        problems = check(src)
        print("self-test: query/mod.rs given an `eprintln!` ->")
        for p in problems:
            print("  " + p.replace(str(src), "src"))
        if not any("the library prints" in p for p in problems):
            print("self-test FAILED: the print was not reported", file=sys.stderr)
            return 1
    print("self-test: ok (the upward import and the print are refused)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    problems = check(a.src)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check-layers: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    n = sum(len(m) for _, m in LAYERS)
    print(
        f"check-layers: {n} modules in {len(LAYERS)} layers, every import points down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
