#!/usr/bin/env python3
"""Draws the app icons (PNG) from the same shapes as client/assets/icon.svg.

No image library is needed (none is installed on the build machines): shapes are tested per
pixel with 4x4 supersampling and written as PNG with zlib. Run once after changing the icon;
the PNGs are committed. Usage: scripts/make-icons.py client/assets
"""
import struct
import sys
import zlib

BLUE = (0x2F, 0x6F, 0xED)
WHITE = (0xFF, 0xFF, 0xFF)


def in_round_rect(x, y, x0, y0, x1, y1, r):
    if not (x0 <= x <= x1 and y0 <= y <= y1):
        return False
    cx = min(max(x, x0 + r), x1 - r)
    cy = min(max(y, y0 + r), y1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def in_tail(x, y):
    # Triangle (20,44) (30,44) (20,52): the speech bubble's tail.
    return 20 <= x and 44 <= y <= 52 and (x - 20) <= (52 - y) * 10 / 8


def colour(x, y, maskable):
    """Colour at icon coordinates (0..64), or None for transparent."""
    if maskable:
        # Full bleed background; the drawing shrinks into the safe zone (80%).
        x, y = 32 + (x - 32) / 0.8, 32 + (y - 32) / 0.8
    elif not in_round_rect(x, y, 0, 0, 64, 64, 14):
        return None
    for cx in (24, 32, 40):
        if (x - cx) ** 2 + (y - 31) ** 2 <= 9:
            return BLUE
    if in_round_rect(x, y, 10, 18, 54, 44, 4) or in_tail(x, y):
        return WHITE
    return BLUE


def render(size, maskable=False):
    rows = []
    n = 4
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(n):
                for sx in range(n):
                    x = (px + (sx + 0.5) / n) * 64 / size
                    y = (py + (sy + 0.5) / n) * 64 / size
                    c = colour(x, y, maskable)
                    if c:
                        acc[0] += c[0]
                        acc[1] += c[1]
                        acc[2] += c[2]
                        acc[3] += 255
            alpha = acc[3] // (n * n)
            if alpha:
                k = acc[3] / 255
                row += bytes([round(acc[0] / k), round(acc[1] / k), round(acc[2] / k), alpha])
            else:
                row += bytes(4)
        rows.append(bytes(row))
    raw = b"".join(rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "client/assets"
    for name, size, maskable in [
        ("icon-192.png", 192, False),
        ("icon-512.png", 512, False),
        ("icon-maskable-512.png", 512, True),
        ("apple-touch-icon.png", 180, True),
    ]:
        with open(f"{out}/{name}", "wb") as f:
            f.write(render(size, maskable))
        print(f"{out}/{name}")
