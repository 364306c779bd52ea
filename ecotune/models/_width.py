"""The `width` knob: one multiplier on every hidden layer's channels or units."""

from __future__ import annotations

__all__ = ["scaled"]


def scaled(base: int, width: float, multiple_of: int = 1) -> int:
    """``base * width`` rounded to the nearest multiple of ``multiple_of``, at least one.

    Example:
        >>> scaled(64, 0.5), scaled(16, 0.01), scaled(24, 1.3, multiple_of=8)
        (32, 1, 32)
    """
    if width <= 0:
        raise ValueError(f"width must be > 0 (got {width})")
    return max(multiple_of, multiple_of * round(base * width / multiple_of))
