"""``tools/benchmark.py``, the one benchmark command: a quick run goes through every section's tool and lists
every target of issue 11 without judging it; on full results it judges each target from the section's own
figures (not timed)."""
import copy

import pytest

from tools import benchmark


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return benchmark.main(["--quick", "--json", str(tmp_path_factory.mktemp("bench") / "benchmark.json")])


def test_quick_run_covers_every_section_and_target(quick):
    assert set(quick["sections"]) == set(benchmark.SECTIONS) and quick["quick"] is True
    assert all(s["quick"] for s in quick["sections"].values())
    targets = [r["target"] for r in quick["targets"]]
    assert len(targets) == 6 and any(t.startswith("DARK") for t in targets) and any("GPU" in t for t in targets)
    assert all(r["met"] is None for r in quick["targets"])  # a smoke run judges nothing
    inference = quick["sections"]["inference"]
    assert {(r["config"], r["batch"]) for r in inference["rows"]} == {
        (c, b) for c in ("sample", "sample_rle") for b in (1, 2)}
    assert {(r["kind"], r["device_targets"]) for r in quick["sections"]["train"]["rows"]} == {
        ("model", False), ("pipeline", False), ("pipeline", True)}
    assert {r["workers"] for r in quick["sections"]["pipeline"]["rows"]} == {0, 2}


def test_targets_are_judged_from_the_sections_figures(quick):
    full = copy.deepcopy(quick["sections"])
    decode = full["decode"]
    for r, speedup in zip(decode["rows"], (30.0, 28.0, 25.0, 24.0, 11.0, 1.5, 7.0, 7.0)):
        r["speedup"] = speedup
        r["batch"] = {2: 32, 4: 256}[r["batch"]]
    decode["targets_met"] = {"dark_20x": True, "basic_2x_batch32_default": False}
    full["pipeline"]["quick"] = False
    full["pipeline"]["targets_met"] = {"exact_1.3x": True, "options_2x": True}
    inference = full["inference"]
    inference["quick"] = False
    rows = {r["target"].split(" >=")[0].split(":")[0]: r for r in benchmark.target_rows(full)}
    assert rows["DARK decoding"]["met"] is True and rows["DARK decoding"]["measured"].startswith("30.0x")
    assert rows["basic decoding"]["met"] is False
    assert rows["training data pipeline"]["met"] is True
    assert rows["GPU"]["met"] is None and "no CUDA device" in rows["GPU"]["measured"]
    # batch 2 instead of 32: not every family has its batch-32 row
    assert rows["inference images/s and ms per person of every config family, batch 1 and 32 (CPU)"]["met"] is False
    for r in inference["rows"]:
        r["batch"] = 32 if r["batch"] == 2 else 1
    again = {r["target"]: r for r in benchmark.target_rows(full)}
    assert again["inference images/s and ms per person of every config family, batch 1 and 32 (CPU)"]["met"] is True
