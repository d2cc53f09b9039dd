"""The ablation table: means and per-section values, time and memory from
`/usr/bin/time -v`, and a missing run named rather than skipped."""

import json

import pytest

from vortex_train.ablation import report

TIME = """\tCommand being timed: "python -m vortex_train her2st"
\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:30.00
\tMaximum resident set size (kbytes): 2097152
"""


def _run(pcc: float) -> dict:
    s = {"pcc_all": pcc, "pcc_top50": pcc + 0.2}
    return {"vortex_2_5d": s, "vortex_2d": s, "bleep_knn_2_5d": s,
            "probe": {"vortex_2_5d": pcc, "vortex_2d": pcc, "init_2d": pcc, "raw_pixels": 0.1}}  # fmt: skip


def test_report_averages_sections_and_reads_time(tmp_path):
    for h, v in (("C3", 0.2), ("C4", 0.3)):
        (tmp_path / f"base-{h}.json").write_text(json.dumps(_run(v)))
    (tmp_path / "base-C3.time").write_text(TIME)
    text, values = report(tmp_path, ["base"], ["C3", "C4"])
    assert values["base"]["2.5D PCC"]["mean"] == pytest.approx(0.25)
    assert values["base"]["2.5D PCC"]["C4"] == pytest.approx(0.3)
    assert values["base"]["train_minutes"][0] == pytest.approx(62.5)
    assert values["base"]["peak_gib"][0] == pytest.approx(2.0)
    assert "0.250 (0.200 / 0.300)" in text and "| 62.5 | 2.00 |" in text
    with pytest.raises(FileNotFoundError, match="res-C3.json"):
        report(tmp_path, ["base", "res"], ["C3"])
