"""TensorFlow backends for I3D features: ``tf`` (same weights, TF kernels) and ``tfhub`` (the TF-Hub module).

``tf`` rebuilds the TF-Hub graph's operations (conv3d and max pools with 'SAME' padding, BatchNorm with moving
statistics and no gamma, VALID average pool, time mean) from the cached tensors and uses TF's own
``tf.compat.v1.image.resize_bilinear``: an independent check of the torch path inside one process.
``tfhub`` loads ``deepmind/i3d-kinetics-400/1`` from the hub, so it needs the network (or a hub cache).
"""

from __future__ import annotations

import numpy as np

from vgbench import cache
from vgbench.deps import require
from vgbench.errors import DownloadError, VgbenchError
from vgbench.metrics.protocols import FVDProtocol
from vgbench.models.i3d import MIXED, TF_PREFIX

TFHUB_HANDLE = "https://tfhub.dev/deepmind/i3d-kinetics-400/1"


def _tf():
    # deps.require names the real cause when an installed TensorFlow fails to import
    return require("tensorflow", "tf", "the tf and tfhub backends")


def tf_preprocess(tf, x0255: np.ndarray, p: FVDProtocol):
    """float32 (B, T, H, W, C) 0-255 -> (B, T, S, S, C) in [-1, 1] with TF's resize kernels."""
    b, t, h, w, c = x0255.shape
    frames = tf.reshape(tf.constant(x0255), (b * t, h, w, c))
    if p.resize_mode != "direct":
        raise VgbenchError(f"the tf backend supports resize_mode 'direct' only, not {p.resize_mode!r}")
    if p.resize == "tf_legacy":
        frames = tf.compat.v1.image.resize_bilinear(frames, (p.size, p.size))
    elif p.resize == "torch_half_pixel":
        frames = tf.image.resize(frames, (p.size, p.size), method="bilinear", antialias=False)
    elif (h, w) != (p.size, p.size):
        raise VgbenchError(f"protocol resize 'none' needs {p.size}x{p.size} frames, got {h}x{w}")
    if p.scale == "minus_one_one":
        frames = 2.0 * tf.cast(frames, tf.float32) / 255.0 - 1.0
    return tf.reshape(frames, (b, t, p.size, p.size, c))


class TFExtractor:
    """I3D with TensorFlow kernels and the cached TF-Hub tensors."""

    backend = "tf"
    device = "cpu"

    def __init__(self, tensors: dict[str, np.ndarray], protocol: FVDProtocol):
        self.tf = _tf()
        self.t = {k: self.tf.constant(v) for k, v in tensors.items()}
        self.protocol = protocol
        self.eps = protocol.bn_eps

    def _unit(self, x, scope: str, stride=(1, 1, 1)):
        tf, t = self.tf, self.t
        y = tf.nn.conv3d(x, t[f"{TF_PREFIX}{scope}/conv_3d/w"], strides=(1, *stride, 1), padding="SAME")
        mean, var = t[f"{TF_PREFIX}{scope}/batch_norm/moving_mean"], t[f"{TF_PREFIX}{scope}/batch_norm/moving_variance"]
        y = tf.nn.batch_normalization(
            y, mean, var, offset=t[f"{TF_PREFIX}{scope}/batch_norm/beta"], scale=None, variance_epsilon=self.eps
        )
        return tf.nn.relu(y)

    def _pool(self, x, k, s):
        return self.tf.nn.max_pool3d(x, (1, *k, 1), (1, *s, 1), padding="SAME")

    def network(self, x):
        """(B, T, 224, 224, 3) in [-1, 1] -> (B, 400) logits averaged over time."""
        tf = self.tf
        x = self._unit(x, "Conv3d_1a_7x7", (2, 2, 2))
        x = self._pool(x, (1, 3, 3), (1, 2, 2))
        x = self._unit(self._unit(x, "Conv3d_2b_1x1"), "Conv3d_2c_3x3")
        x = self._pool(x, (1, 3, 3), (1, 2, 2))
        for name, *_ in MIXED:
            if name == "Mixed_4b":
                x = self._pool(x, (3, 3, 3), (2, 2, 2))
            elif name == "Mixed_5b":
                x = self._pool(x, (2, 2, 2), (2, 2, 2))
            b2 = "Conv3d_0a_3x3" if name == "Mixed_5b" else "Conv3d_0b_3x3"
            x = tf.concat(
                [
                    self._unit(x, f"{name}/Branch_0/Conv3d_0a_1x1"),
                    self._unit(self._unit(x, f"{name}/Branch_1/Conv3d_0a_1x1"), f"{name}/Branch_1/Conv3d_0b_3x3"),
                    self._unit(self._unit(x, f"{name}/Branch_2/Conv3d_0a_1x1"), f"{name}/Branch_2/{b2}"),
                    self._unit(self._pool(x, (3, 3, 3), (1, 1, 1)), f"{name}/Branch_3/Conv3d_0b_1x1"),
                ],
                axis=4,
            )
        x = tf.nn.avg_pool3d(x, (1, 2, 7, 7, 1), (1, 1, 1, 1, 1), padding="VALID")
        w, b = (
            self.t[f"{TF_PREFIX}Logits/Conv3d_0c_1x1/conv_3d/w"],
            self.t[f"{TF_PREFIX}Logits/Conv3d_0c_1x1/conv_3d/b"],
        )
        x = tf.nn.conv3d(x, w, (1, 1, 1, 1, 1), padding="SAME") + b
        return tf.reduce_mean(tf.squeeze(x, (2, 3)), axis=1)

    def __call__(self, x0255: np.ndarray) -> np.ndarray:
        return self.network(tf_preprocess(self.tf, x0255, self.protocol)).numpy().astype(np.float64)


class TFHubExtractor:
    """The TF-Hub module itself (signature ``default``, input ``rgb_input``, output the 400 logits)."""

    backend = "tfhub"
    device = "cpu"

    def __init__(self, protocol: FVDProtocol):
        tf = _tf()
        if protocol.bn_eps != 1e-3:
            raise VgbenchError(
                f"the TF-Hub module has BN eps 1e-3 built in; protocol asks for {protocol.bn_eps}. "
                "Use --backend torch for this protocol."
            )
        tfhub = require("tensorflow_hub", "tf", "the tfhub backend")  # installed but broken: the real cause
        if cache.offline():
            raise DownloadError(
                f"--backend tfhub loads {TFHUB_HANDLE}, but VGBENCH_OFFLINE is set. "
                "Use --backend torch (same weights) or unset VGBENCH_OFFLINE."
            )
        try:
            self.fn = tfhub.load(TFHUB_HANDLE).signatures["default"]
        except Exception as exc:  # the hub raises many types for unreachable hosts
            raise DownloadError(
                f"could not load {TFHUB_HANDLE} ({type(exc).__name__}: {exc}). The hub must be "
                "reachable (or TFHUB_CACHE_DIR hold the module); --backend torch uses the same "
                "weights offline."
            ) from exc
        self.tf, self.protocol = tf, protocol

    def __call__(self, x0255: np.ndarray) -> np.ndarray:
        x = tf_preprocess(self.tf, x0255, self.protocol)
        return self.fn(rgb_input=x)["default"].numpy().astype(np.float64)
