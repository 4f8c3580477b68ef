"""A SAME, stride-1 NHWC/HWIO convolution whose backward pass is written as two canonical convolutions.

Inside `lax.scan` (an XLA while loop) XLA's CPU backend leaves the weight gradient of a convolution in
a non-canonical layout and runs it as a naive loop, ~10x slower (jax-ml/jax#12868). Writing both
backward convolutions explicitly as NHWC x HWIO -> NHWC, with transposes around them, keeps every
convolution on the fast path. The math is the same; the gradients match XLA's to float32 rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")


@jax.custom_vjp
def conv_same(x: jax.Array, w: jax.Array) -> jax.Array:
  """x [batch, h, w, in] * w [kh, kw, in, out] -> [batch, h, w, out], SAME padding, stride 1."""
  return lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN)


def _conv_same_fwd(x, w):
  return conv_same(x, w), (x, w)


def _conv_same_bwd(residuals, g):
  x, w = residuals
  kh, kw = w.shape[:2]
  flipped = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2))  # [kh, kw, out, in]
  dx = lax.conv_general_dilated(g, flipped, (1, 1), "SAME", dimension_numbers=_DN)
  ph, pw = (kh - 1) // 2, (kw - 1) // 2
  x_padded = jnp.pad(x, ((0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)))
  # Batch and channels swap roles: [in, H, W, batch] x [h, w, batch, out] -> [in, kh, kw, out].
  dw = lax.conv_general_dilated(
    jnp.transpose(x_padded, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)), (1, 1), "VALID", dimension_numbers=_DN
  )
  return dx, jnp.transpose(dw, (1, 2, 0, 3))


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


def canonical_conv_general_dilated(
  lhs,
  rhs,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count=1,
  precision=None,
  **_,
):
  """`lax.conv_general_dilated`'s signature, for `flax.linen.Conv(conv_general_dilated=...)`; SAME stride-1 only."""
  kh, kw = rhs.shape[:2]
  same = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (kh, kw)]
  simple = (
    tuple(window_strides) == (1, 1)
    and feature_group_count == 1
    and all(d is None or tuple(d) == (1, 1) for d in (lhs_dilation, rhs_dilation))
    and (padding == "SAME" or (not isinstance(padding, str) and [tuple(p) for p in padding] == same))
  )
  if not simple:
    raise ValueError(
      "the canonical convolution supports SAME padding, stride 1, no dilation and no groups only; "
      "use CNNSpec(conv='xla') for other convolutions"
    )
  return conv_same(lhs, rhs)
