#!/usr/bin/env python3
"""Counts the pixels of one colour (within a small tolerance) in a PNG: png-colour-count.py FILE RRGGBB.
Standard library only (zlib): 8-bit RGB or RGBA, non-interlaced, as Chromium's screenshots are."""
import struct, sys, zlib

def pixels(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR": header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT": idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG"
    step = 3 if colour == 2 else 4
    raw, stride, previous, offset = zlib.decompress(idat), width * step, bytearray(width * step), 0
    for _ in range(height):
        kind, line = raw[offset], bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            a = line[i - step] if i >= step else 0
            b = previous[i]
            c = previous[i - step] if i >= step else 0
            if kind == 1: line[i] = (line[i] + a) & 255
            elif kind == 2: line[i] = (line[i] + b) & 255
            elif kind == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(width):
            yield tuple(line[x * step:x * step + 3])
        previous = line

want = tuple(int(sys.argv[2][i:i + 2], 16) for i in (0, 2, 4))
print(sum(1 for p in pixels(sys.argv[1]) if all(abs(p[i] - want[i]) <= 24 for i in range(3))))
