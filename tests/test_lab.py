"""The lab's drivers (lab/: the experiments behind the evidence pages) do what their pages say they did."""

from lab import recheck_windows


def test_the_recheck_counted_on_saved_windows_keeps_a_finding_only_where_the_next_window_repeats_it():
  def window(i, verdict_, busy=False):
    return {"window": i, "side": "B", "rows": {"k": {"verdict": verdict_, "busy": busy}}}

  windows = [window(0, "slower"), window(1, "slower"), window(2, "slower"), window(3, "undecided"), window(4, "same")]
  assert [(f["window"], g["window"]) for f, g in recheck_windows.pairs(windows)] == [(0, 1), (2, 3)]  # 4 unpaired
  outcomes = [recheck_windows.outcome(f["rows"]["k"], g["rows"]["k"]) for f, g in recheck_windows.pairs(windows)]
  assert outcomes == [("slower", "slower"), ("slower", "-")]
  assert recheck_windows.outcome({"verdict": "slower", "busy": False}, {"verdict": "slower", "busy": True}) == (
    "busy",
    "busy",
  )
