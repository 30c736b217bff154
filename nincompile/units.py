"""How sizes and counts are written for people, one convention each: bytes in binary
units (``1.5 MiB``, as ``--max-memory`` takes them) and multiply-accumulates with a
decimal prefix (``1.23G``).  No TensorFlow, no Keras."""

from __future__ import annotations


def format_bytes(n: int) -> str:
    """``512 bytes``, ``1.5 KiB``, ``3.2 GiB``; exact integers from 10,000 of a unit up
    (a float would overflow past 1e308)."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            if n >= 10_000 * size:
                return f"{n // size:,} {unit}"
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def format_macs(value: int | None) -> str:
    """``1.23G``, ``45.60M``, ``7.00K`` or the number itself; ``-`` when unknown."""
    if value is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= div:
            return f"{value / div:.2f}{unit}"
    return str(value)
