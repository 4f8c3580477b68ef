"""Two saved runs compared field by field: what a restructuring must leave unchanged (benchmark names, the fields of
every benchmark, its extra_info and comparison row, fingerprints, machine_info's keys), timings aside.

  python lab/same_fields.py BEFORE.json AFTER.json      # exit 1, naming what differs, if anything does
"""

import json
import sys
from pathlib import Path

TIMED = {"paired", "images_per_s", "gflops", "peak_fraction", "gemm_peak_gflops", "ipc_round_trip_s"}
TIMED |= {"tf_tracing_ms_per_call", "speedup_vs_1_device", "scaling_efficiency", "verdict"}


def paths(d: dict, prefix: str = "") -> set[str]:
  """Every key path of a nested dict (a fingerprint's numbers are values, compared whole)."""
  out = set()
  for k, v in d.items():
    out.add(prefix + k)
    if isinstance(v, dict) and k != "fingerprint":
      out |= paths(v, f"{prefix}{k}.")
  return out


def differences(a: dict, b: dict) -> list[str]:
  """What differs between two saved runs, timings aside."""
  out = [f"top-level keys: {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
  out += [f"machine_info keys: {sorted(set(a['machine_info']) ^ set(b['machine_info']))}"] * (
    set(a["machine_info"]) != set(b["machine_info"])
  )
  ka, kb = ({x["fullname"]: x for x in doc["benchmarks"]} for doc in (a, b))
  out += [f"benchmarks only in one: {sorted(set(ka) ^ set(kb))}"] if set(ka) != set(kb) else []
  for name in sorted(set(ka) & set(kb)):
    x, y = ka[name], kb[name]
    if paths(x) != paths(y):
      out.append(f"{name}: fields {sorted(paths(x) ^ paths(y))}")
    info = [k for k in x["extra_info"] if k not in TIMED and x["extra_info"][k] != y["extra_info"].get(k)]
    out += [f"{name}: extra_info {k} {x['extra_info'][k]!r} -> {y['extra_info'].get(k)!r}" for k in info]
  rows = [{(r["group"], r["variant"], r["batch_size"]): set(r) for r in doc["comparison"]["rows"]} for doc in (a, b)]
  out += ["comparison rows or their fields differ"] if rows[0] != rows[1] else []
  return out


if __name__ == "__main__":
  found = differences(*(json.loads(Path(p).read_text()) for p in sys.argv[1:3]))
  print("\n".join(found) or "the same fields, names and programs")
  sys.exit(1 if found else 0)
