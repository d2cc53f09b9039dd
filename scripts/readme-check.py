#!/usr/bin/env python3
"""Run the README's tutorial as written, and check its commands and links.

    python3 scripts/readme-check.py           # run every tutorial block in order
    python3 scripts/readme-check.py --list    # only print what would run

What runs, in document order, from the repository root:

* every `$ ` line of a ```console block (a line ending in `\\` continues on the next),
  all in one bash session (`set -euo pipefail`, so `export` and `cd` carry over from
  one command to the next) with target/release first on PATH; the other lines of a
  console block are sample output and are not checked;
* every ```python block, each as a script of its own, by .venv-py/bin/python (the
  environment variable READMECHECK_PYTHON names another interpreter).

A block that exits nonzero or runs longer than --timeout seconds fails the check,
named by its README line. Blocks in any other language (```bash, ```text, ...) never
run. Checked before anything runs: the "Two commands" section names exactly
`bash scripts/demo.sh` and `bash scripts/test.sh`, both scripts exist, and every
relative link of the README points to an existing file (and heading, for an anchor
into a Markdown file). Exit status: 0 all passed, 1 a check or a block failed.
"""

from __future__ import annotations

import argparse
import os
import queue
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TWO_COMMANDS = ["bash scripts/demo.sh", "bash scripts/test.sh"]
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass
class Command:
    line: int  # README line of its `$ `
    text: str  # the command, continuation lines included


@dataclass
class Block:
    kind: str  # "console" or "python"
    line: int  # README line of the opening fence
    commands: list[Command] = field(default_factory=list)
    code: str = ""

    def describe(self) -> str:
        if self.kind == "console":
            n = len(self.commands)
            what = "command" if n == 1 else "commands"
            return f"console block at README line {self.line} ({n} {what})"
        n = len(self.code.splitlines())
        return f"python block at README line {self.line} ({n} lines)"


@dataclass
class Fenced:
    info: str  # the fence's language
    line: int  # line of the opening fence (1-based)
    body: list[tuple[int, str]]  # (line, text without the fence's indentation)


def fenced_blocks(lines: list[str]) -> list[Fenced]:
    """Every fenced code block, in document order."""
    out: list[Fenced] = []
    open_block: Fenced | None = None
    fence = ""
    indent = 0
    for n, raw in enumerate(lines, start=1):
        m = FENCE.match(raw)
        if open_block is None:
            if m:
                fence = m["fence"]
                indent = len(m["indent"])
                open_block = Fenced(m["info"].lower(), n, [])
            continue
        stripped = raw.strip()
        if stripped.startswith(fence) and stripped == fence[0] * len(stripped):
            out.append(open_block)
            open_block = None
            continue
        cut = min(indent, len(raw) - len(raw.lstrip()))
        open_block.body.append((n, raw[cut:]))
    if open_block is not None:
        sys.exit(f"README.md:{open_block.line}: code block never closed")
    return out


def console_commands(block: Fenced) -> list[Command]:
    """The `$ ` commands of a console block, continuation lines joined."""
    cmds: list[Command] = []
    body = block.body
    i = 0
    while i < len(body):
        n, text = body[i]
        i += 1
        if not text.startswith("$ "):
            continue
        parts = [text[2:]]
        while parts[-1].rstrip().endswith("\\") and i < len(body):
            parts.append(body[i][1])
            i += 1
        cmds.append(Command(n, "\n".join(parts).strip()))
    return cmds


def tutorial_blocks(lines: list[str]) -> list[Block]:
    blocks: list[Block] = []
    for f in fenced_blocks(lines):
        if f.info == "console":
            cmds = console_commands(f)
            if cmds:
                blocks.append(Block("console", f.line, commands=cmds))
        elif f.info == "python":
            code = "\n".join(text for _, text in f.body) + "\n"
            blocks.append(Block("python", f.line, code=code))
    return blocks


def section(lines: list[str], title: str) -> list[str]:
    """The lines of the `## title` section (up to the next heading of level 1-2)."""
    out: list[str] = []
    inside = False
    for raw in lines:
        if re.match(r"^#{1,2} ", raw):
            if inside:
                break
            inside = raw.lstrip("#").strip() == title
            continue
        if inside:
            out.append(raw)
    return out


def check_two_commands(lines: list[str]) -> list[str]:
    """The first code block of "## Two commands" names exactly TWO_COMMANDS."""
    body = section(lines, "Two commands")
    if not body:
        return ['no "## Two commands" section']
    named: list[str] = []
    for f in fenced_blocks(body)[:1]:  # the section's first code block
        for _, text in f.body:
            cmd = text.split("#", 1)[0].strip()
            if cmd:
                named.append(" ".join(cmd.split()))
    problems: list[str] = []
    if named != TWO_COMMANDS:
        problems.append(f'"Two commands" names {named}, expected {TWO_COMMANDS}')
    for cmd in TWO_COMMANDS:
        script = cmd.split()[1]
        if not (ROOT / script).is_file():
            problems.append(f"{script} (named in Two commands) does not exist")
    return problems


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    in_code = {n for f in fenced_blocks(lines) for n, _ in f.body}
    seen: dict[str, int] = {}
    out: set[str] = set()
    for n, raw in enumerate(lines, start=1):
        m = re.match(r"^#{1,6} (.*)", raw)
        if not m or n in in_code:
            continue
        s = slug(m[1])
        k = seen.get(s, 0)
        seen[s] = k + 1
        out.add(s if k == 0 else f"{s}-{k}")
    return out


def check_links(readme: Path, lines: list[str]) -> list[str]:
    blocks = fenced_blocks(lines)
    code_lines = {n for f in blocks for n, _ in f.body} | {f.line for f in blocks}
    problems: list[str] = []
    for n, raw in enumerate(lines, start=1):
        if n in code_lines:
            continue
        text = re.sub(r"`[^`]*`", "", raw)  # links inside code spans are not links
        for m in LINK.finditer(text):
            target = m["target"]
            if SCHEME.match(target) or target.startswith("#"):
                continue
            path_part, _, anchor = target.partition("#")
            path = (readme.parent / path_part.split("?", 1)[0]).resolve()
            if not path.exists():
                problems.append(f"README.md:{n}: link to {target}: no such file")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                problems.append(f"README.md:{n}: link to {target}: no such heading")
    return problems


def print_block(i: int, b: Block) -> None:
    print(f"==> [{i}] {b.describe()}", flush=True)
    if b.kind == "python":
        for text in b.code.rstrip("\n").splitlines():
            print(f"    {text}".rstrip())
    else:
        for c in b.commands:
            text = c.text.replace("\n", "\n      ")
            print(f"    $ {text}  (line {c.line})")
    sys.stdout.flush()


def shell_script(blocks: list[Block], token: str, py_files: dict[int, Path]) -> str:
    """One bash script running every block in order; `token` marks each step."""
    q = shlex.quote
    out = [
        "set -euo pipefail",
        f"cd {q(str(ROOT))}",
        f'export PATH={q(str(ROOT / "target" / "release"))}:"$PATH"',
    ]
    for i, b in enumerate(blocks):
        if b.kind == "python":
            out.append(f"printf '{token} {i} {b.line}\\n'")
            out.append(
                f'(cd {q(str(ROOT))} && PYTHONUNBUFFERED=1 "$READMECHECK_PY" '
                f"{q(str(py_files[i]))})"
            )
            continue
        for c in b.commands:
            out.append(f"printf '{token} {i} {c.line}\\n'")
            out.append(c.text)
    return "\n".join(out) + "\n"


def kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def run(blocks: list[Block], python: str, timeout: float) -> int:
    token = "@@readme-check-" + secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="readme-check-") as tmp:
        py_files: dict[int, Path] = {}
        for i, b in enumerate(blocks):
            if b.kind == "python":
                py_files[i] = Path(tmp) / f"block_{i}_line_{b.line}.py"
                py_files[i].write_text(b.code, encoding="utf-8")
        script = Path(tmp) / "readme.sh"
        script.write_text(shell_script(blocks, token, py_files), encoding="utf-8")
        env = dict(os.environ, READMECHECK_PY=python)
        proc = subprocess.Popen(
            ["bash", str(script)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for text in proc.stdout:
                lines.put(text)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        current: tuple[int, int] | None = None  # (block index, README line)
        deadline = float("inf")
        t0 = time.monotonic()
        finished = False
        try:
            while True:
                try:
                    text = lines.get(timeout=1.0)
                except queue.Empty:
                    if time.monotonic() < deadline or current is None:
                        continue
                    b = blocks[current[0]]
                    print(
                        f"readme-check: FAILED: the {b.describe()} ran longer than "
                        f"{timeout:g} s (at README line {current[1]}); stopped",
                        flush=True,
                    )
                    return 1
                if text is None:
                    finished = True
                    break
                at = text.find(token)
                if at < 0:
                    print(f"    | {text}", end="", flush=True)
                    continue
                if at > 0:  # output that did not end its line, then the marker
                    print(f"    | {text[:at]}", flush=True)
                i, line = (int(x) for x in text[at:].split()[1:3])
                if current is None or current[0] != i:
                    print_block(i, blocks[i])
                    deadline = time.monotonic() + timeout
                current = (i, line)
        finally:
            if not finished:  # timed out, or interrupted: stop everything it started
                kill_group(proc)
        rc = proc.wait()
        if rc != 0:
            where = "before the first block"
            if current is not None:
                b = blocks[current[0]]
                where = f"in the {b.describe()}, at README line {current[1]}"
            print(f"readme-check: FAILED (exit {rc}) {where}", flush=True)
            return 1
        n = sum(len(b.commands) if b.kind == "console" else 1 for b in blocks)
        secs = time.monotonic() - t0
        print(f"readme-check: {len(blocks)} blocks ({n} steps) passed in {secs:.1f} s")
        return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="only print what would run")
    ap.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds one block may run (default 300)",
    )
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = ap.parse_args()

    readme = args.readme.resolve()
    lines = readme.read_text(encoding="utf-8").splitlines()
    blocks = tutorial_blocks(lines)
    problems = check_two_commands(lines) + check_links(readme, lines)
    for p in problems:
        print(f"readme-check: {p}", flush=True)

    if args.list:
        for i, b in enumerate(blocks):
            print_block(i, b)
        return 1 if problems else 0
    if problems:
        print("readme-check: FAILED before running anything", flush=True)
        return 1
    python = os.environ.get("READMECHECK_PYTHON", ".venv-py/bin/python")
    if os.sep not in python:  # a name on PATH
        python = shutil.which(python) or python
    python = str(ROOT / python)  # relative to the repository root; absolute stays
    if any(b.kind == "python" for b in blocks) and not Path(python).exists():
        print(
            f"readme-check: FAILED: no Python interpreter at {python} (run "
            "scripts/setup-python-package.sh, or set READMECHECK_PYTHON)",
            flush=True,
        )
        return 1
    return run(blocks, python, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
