"""benchmarks/profile_train_step.py: the XLA kernel breakdown of --xla-ops."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
profile = pytest.importorskip("profile_train_step")


def test_xla_kind__names_of_the_cpu_kernels():
    assert profile.KERNEL_NAME.fullmatch("ynn_fusion.768")
    for runtime_event in ("ThunkExecutor::Execute", "PjitFunction(step)", "end: copy", "$f"):
        assert not profile.KERNEL_NAME.fullmatch(runtime_event)
    assert profile.xla_kind("ynn_fusion.768") == "dots, YNNPACK/XNNPACK fusions"
    assert profile.xla_kind("dot.3") == profile.xla_kind("bitcast_dot_fusion.1") == "dots, XLA"
    assert profile.xla_kind("transpose_copy_fusion.2") == "copies and transposes"
    assert profile.xla_kind("copy") == "copies and transposes"
    assert profile.xla_kind("multiply_add_fusion.7") == "other fusions (elementwise, reductions)"


def test_xla_op_profile__a_matmul_traced_as_a_dot():
    jax = pytest.importorskip("jax")
    x = jax.numpy.asarray(np.random.default_rng(0).standard_normal((256, 256), np.float32))
    step = jax.jit(lambda a: jax.numpy.tanh(a @ a) * 2.0)  # an argument: nothing folded
    fn = lambda: step(x)  # noqa: E731
    fn().block_until_ready()
    ops = profile.xla_op_profile(fn, lambda out: out.block_until_ready(), steps=3)
    assert ops["kernel_events_per_step"] >= 1 and ops["wall_ms"] > 0
    dots = sum(ms for kind, ms in ops["ms"].items() if kind.startswith("dots"))
    assert dots > 0, ops
