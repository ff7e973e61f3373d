"""Metric implementations: pure maths (frechet, resize) and the networks behind them (i3d)."""
