"""backends/jax.py: the fused EMA equals the formula leaf by leaf."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from jepa_components.backends.jax import ema_update  # noqa: E402


def test_ema_update__formula_on_a_tree():
    rng = np.random.default_rng(0)
    target = {"a": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "b": [jnp.ones(2)]}
    online = {"a": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "b": [jnp.zeros(2)]}
    out = ema_update(target, online, 0.9)
    np.testing.assert_allclose(
        out["a"], 0.9 * np.asarray(target["a"]) + 0.1 * np.asarray(online["a"]), rtol=1e-6
    )
    np.testing.assert_allclose(out["b"][0], [0.9, 0.9])
    donated = ema_update({"a": jnp.ones(2)}, {"a": jnp.zeros(2)}, 0.5, donate=True)
    np.testing.assert_allclose(donated["a"], [0.5, 0.5])


def test_ema_update__rejects_bad_momentum():
    with pytest.raises(ValueError, match="momentum"):
        ema_update({"a": jnp.ones(1)}, {"a": jnp.ones(1)}, 1.5)
