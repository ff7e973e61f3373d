"""Decoding video and image files with PyAV (frames as uint8 RGB), below both the sample-set reader
(:mod:`vgbench.video`) and the validation rules that probe files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vgbench.deps import require
from vgbench.errors import InputError

VIDEO_EXTS = (".mp4", ".avi", ".webm", ".gif", ".mov", ".mkv", ".m4v")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _av():
    return require("av", "data", "reading video and image files")


class VideoDecodeError(InputError):
    """A video file that cannot be decoded to its end.

    Attributes:
        decoded: frames decoded before the failure.
        declared: frames the container's header declares (0 when it declares none).
    """

    def __init__(self, message: str, decoded: int = 0, declared: int = 0):
        super().__init__(message)
        self.decoded, self.declared = decoded, declared

    def __reduce__(self):  # picklable with its counts (worker processes report it to the parent)
        return type(self), (str(self), self.decoded, self.declared)


def _frame_rgb(frame) -> np.ndarray:
    """One decoded frame as uint8 (H, W, 3) RGB. Frames with alpha or a palette (GIF, PNG, WebM with alpha) are
    converted to RGBA first, so FFmpeg applies the palette and transparency index, and any pixel still
    transparent is composited over black: the colour stored behind a transparent pixel is arbitrary."""
    fmt = frame.format
    if not (fmt.has_palette or any(c.is_alpha for c in fmt.components)):
        return frame.to_ndarray(format="rgb24")
    rgba = frame.to_ndarray(format="rgba")
    alpha = rgba[..., 3:4].astype(np.uint16)
    return ((rgba[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def decode_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video file as uint8 (T, H, W, 3) RGB: the one decoder of the package.

    ``eval --samples``, ``doctor`` and ``data prepare`` (UCF-101 AVIs, TGIF GIFs) all decode through here, so the
    same file gives the same pixels everywhere. Decoded frames are taken in order at native rate (no timestamps,
    no frame-rate conversion; GIF frame durations are ignored, like torchvision's ``VideoClips``).

    Raises:
        InputError: the file cannot be opened, has no video stream or no frame, fails in the middle (the message
            gives the number of frames decoded before the failure), or ends before the frame count its header
            declares (a truncated file, which FFmpeg would otherwise end silently).
    """
    av = _av()
    path = Path(path)
    frames: list[np.ndarray] = []
    declared = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream; expected a video file ({', '.join(VIDEO_EXTS)})")
            declared = container.streams.video[0].frames  # from the header (AVI, MP4, GIF); 0 when unknown
            for f in container.decode(video=0):
                frames.append(_frame_rgb(f))
    except (av.error.FFmpegError, OSError) as exc:
        where = f"after {len(frames)} decoded frames " if frames else ""
        raise VideoDecodeError(
            f"{path}: cannot decode video {where}({type(exc).__name__}: {exc}); re-encode the file or remove it",
            len(frames),
            declared,
        ) from exc
    if not frames:
        raise VideoDecodeError(f"{path}: the video has no decodable frames", 0, declared)
    if len(frames) < declared:
        raise VideoDecodeError(
            f"{path}: truncated or damaged: decoding stopped at frame {len(frames)} of the {declared} its header "
            "declares; copy or download the file again",
            len(frames),
            declared,
        )
    return np.stack(frames)


def probe_video(path: str | os.PathLike) -> tuple[None, int, int, int]:
    """A video file's clip shape (T, H, W, C) from its header, without decoding: T is None (a header's frame
    count is not reliable enough to refuse a file on), H and W are the stream's frame size.

    Raises:
        VideoDecodeError: the file cannot be opened or holds no video stream.
    """
    av = _av()
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(f"{path}: no video stream; expected a video file ({', '.join(VIDEO_EXTS)})")
            ctx = container.streams.video[0].codec_context
            return None, int(ctx.height), int(ctx.width), 3
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoDecodeError(
            f"{path}: cannot open video ({type(exc).__name__}: {exc}); re-encode the file or remove it"
        ) from exc


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """One image file (PNG, JPEG, ...) as uint8 (H, W, 3) RGB, with the same colour and alpha rules as videos."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            return _frame_rgb(next(container.decode(video=0)))
    except (av.error.FFmpegError, OSError, StopIteration) as exc:
        raise InputError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
