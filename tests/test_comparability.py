"""What makes two runs comparable: the machine and its setup for timings, the compiler's versions for programs."""

from mnist_models.bench import comparability

INFO = {
  "cpu": {"brand_raw": "AMD EPYC", "flags": ["avx2", "fma"]},
  "cpu_count": 2,
  "cpu_affinity": [1],
  "tf_onednn_enabled": False,
  "versions": {"jax": "0.10.2", "numpy": "2.3.0"},
}


def test_machine_key_sees_cpu_flags_pinning_and_onednn_but_not_versions():
  other = {
    **INFO,
    "cpu": {"brand_raw": "AMD EPYC", "flags": ["avx2", "avx512f"]},
    "cpu_affinity": [0, 1],
    "tf_onednn_enabled": True,
    "versions": {"jax": "0.9.0"},
  }
  assert comparability.machine_differences(INFO, INFO) == ()
  assert [str(d) for d in comparability.machine_differences(INFO, other)] == [
    "cpu_features: ['avx2'] -> ['avx2', 'avx512f']",
    "pinned_cpus: 1 -> 2",
    "tf_onednn_enabled: False -> True",
  ]


def test_programs_compare_exactly_only_with_the_compilers_versions_timings_on_any_versions():
  numpy_only = comparability.compare(INFO, {**INFO, "versions": {"jax": "0.10.2", "numpy": "2.4.0"}})
  assert [(d.key, d.base, d.now) for d in numpy_only.versions] == [("numpy", "2.3.0", "2.4.0")]
  assert numpy_only.timings_comparable and numpy_only.programs_comparable
  jax_upgrade = comparability.compare(INFO, {**INFO, "versions": {"jax": "0.10.3", "numpy": "2.3.0"}})
  assert jax_upgrade.timings_comparable and not jax_upgrade.programs_comparable
  other_machine = comparability.compare(INFO, {**INFO, "cpu_count": 4})
  assert not other_machine.timings_comparable and not other_machine.programs_comparable
  assert comparability.same_setup(INFO, dict(INFO)) and not comparability.same_setup(INFO, {**INFO, "versions": {}})


def test_another_host_of_the_same_kind_keeps_programs_comparable_but_not_timings():
  here, there = {**INFO, "host": "a1"}, {**INFO, "host": "b2"}
  other_host = comparability.compare(there, here)
  assert not other_host.timings_comparable and other_host.programs_comparable and other_host.other_host
  unrecorded = comparability.compare(INFO, here)  # a baseline saved before hosts were recorded
  assert not unrecorded.timings_comparable and unrecorded.other_host
  assert not comparability.compare(there, {**here, "cpu_count": 4}).other_host
  assert not comparability.same_setup(there, here)  # nor are the two hosts' runs pooled


def test_host_id_is_a_hash_of_the_machine_and_boot_ids_and_none_without_them(tmp_path):
  from mnist_models.bench.machine import host_id

  (tmp_path / "id").write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
  (tmp_path / "other").write_text("0" * 32 + "\n")
  (tmp_path / "boot").write_text("1df79c5e-d8cf-4901-942a-75323efb3e73\n")
  (tmp_path / "reboot").write_text("2df79c5e-d8cf-4901-942a-75323efb3e73\n")
  (tmp_path / "empty").write_text("")
  ids = {name: str(tmp_path / name) for name in ("id", "other", "boot", "reboot", "empty", "missing")}
  first = host_id(ids["id"], ids["boot"])
  assert len(first) == 16 and "3d1219" not in first and first == host_id(ids["id"], ids["boot"])
  assert first != host_id(ids["other"], ids["boot"])  # another machine
  assert first != host_id(ids["id"], ids["reboot"])  # the same image's id, booted again (or another VM of it)
  assert host_id(ids["id"], ids["missing"]) not in (None, first)
  assert host_id(ids["empty"], ids["missing"]) is None
