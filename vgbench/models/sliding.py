"""Sliding-window plans for videos longer than a prior's training clip (issue 20).

A prior of latent grid (T', H', W') samples one window of T' latent frames. A longer video of F frames has
L = F / d_t latent frames (d_t the VQ-VAE's temporal downsampling): the first window is sampled as a training-length
clip; each later window slides by the stride S in latent time, keeps the previous window's last T' - S latent frames
as context (latent positions 0..T'-S-1 of the window, prefilled through the teacher-forced pass into the KV cache)
and samples S new ones. The last window may slide less, so that it ends exactly at L. This module holds only the
arithmetic and its input checks (no torch), so the CLI can refuse bad values before loading a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from vgbench.errors import InputError

COND_POLICIES = ("first", "window")  # what conditions later windows of a frame-conditional prior


@dataclass(frozen=True)
class Window:
    """One window of the plan, in latent frames: it covers ``start .. start + T' - 1`` and samples
    ``new_from .. start + T' - 1`` (the frames before ``new_from`` are its context)."""

    start: int
    new_from: int

    def context(self) -> int:
        return self.new_from - self.start


@dataclass(frozen=True)
class WindowPlan:
    """Windows of an F-frame video from a prior of ``latent_frames`` T' latent frames per window."""

    frames: int  # F, pixel frames of the long video
    clip_frames: int  # T, pixel frames of the training clip
    time_downsample: int  # d_t
    latent_frames: int  # T' of one window
    stride: int  # S, latent frames added per window (the last may add fewer)
    windows: tuple[Window, ...]

    @property
    def latent_length(self) -> int:
        return self.frames // self.time_downsample

    def as_dict(self) -> dict:
        """JSON for the samples' sidecar."""
        return {
            "frames": self.frames,
            "clip_frames": self.clip_frames,
            "time_downsample": self.time_downsample,
            "latent_frames_per_window": self.latent_frames,
            "stride_latent_frames": self.stride,
            "stride_frames": self.stride * self.time_downsample,
            "window_starts_latent": [w.start for w in self.windows],
            "window_new_from_latent": [w.new_from for w in self.windows],
        }


def default_stride(latent_frames: int) -> int:
    """Half the window in latent time (at least 1)."""
    return max(1, latent_frames // 2)


def plan(frames: int, clip_frames: int, time_downsample: int, latent_frames: int,
         stride: int | None = None) -> WindowPlan:  # fmt: skip
    """The windows of an F-frame video; :class:`InputError` (naming the value, what is allowed, how to fix it)
    for F below the training length, F not a multiple of d_t, or a stride outside 1..T'-1."""
    if frames < clip_frames:
        raise InputError(
            f"--frames {frames}: shorter than the prior's training clip of {clip_frames} frames; give --frames "
            f"{clip_frames} or more (longer videos are sampled with a sliding window)"
        )
    if frames % time_downsample:
        lo = frames // time_downsample * time_downsample
        raise InputError(
            f"--frames {frames}: not a multiple of the VQ-VAE's temporal downsampling {time_downsample}; give a "
            f"multiple of {time_downsample} (e.g. {max(lo, clip_frames)} or {lo + time_downsample})"
        )
    if stride is None:
        stride = default_stride(latent_frames)
    if frames > clip_frames and latent_frames < 2:
        raise InputError(
            f"--frames {frames}: this prior's window holds {latent_frames} latent frame, so a sliding window keeps "
            f"no context; give --frames {clip_frames}"
        )
    if not 1 <= stride <= max(1, latent_frames - 1):
        raise InputError(
            f"--stride {stride}: out of range; allowed 1..{max(1, latent_frames - 1)} latent frames (a window holds "
            f"{latent_frames}, and at least one is kept as context); leave --stride out for the default "
            f"{default_stride(latent_frames)}"
        )
    total = frames // time_downsample
    windows = [Window(0, 0)]
    end = latent_frames
    while end < total:
        new_end = min(end + stride, total)
        windows.append(Window(new_end - latent_frames, end))
        end = new_end
    return WindowPlan(frames, clip_frames, time_downsample, latent_frames, stride, tuple(windows))
