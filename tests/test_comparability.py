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
