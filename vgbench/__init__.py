"""vgbench: trustworthy video-generation metrics (FVD, FVD*, R-FVD, IS, NMSE, bits/dim) with named protocols."""

__version__ = "0.1.0"

__all__ = ["__version__"]
