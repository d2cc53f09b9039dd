"""The README's Python workflow (examples/workflow.py) runs and prints the figures of
the Rust example on the same held-out phantom."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "workflow.py"


def test_readme_workflow_runs(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].split() == ["sample", "id", "z", "y", "x", "score", "percentile"]
    assert "heatmap (32, 160, 160)" in lines[-2]
    assert "over 60 genes at 16 spots" in lines[-1]
    # Nothing but what the workflow asked for was written.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phantom", "store"]
