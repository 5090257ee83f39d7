#!/usr/bin/python3
"""Writes the small reader fixtures that the hostile-input tests and the fuzz harness mutate (issue 13), with the
standard library only (struct, zlib, gzip), straight from the format specifications. Run from this folder.

  mask_palette.png   24x20 8-bit palette PNG (labels 0-4, border 255), rows cycling through the 5 filter types,
                     image data split over two IDAT chunks, a tEXt chunk between PLTE and IDAT
  mask_palette4.png  13x9 4-bit palette PNG, 16 colours
  mask_grey.png      24x20 8-bit greyscale PNG (labels 0-4)
  image_rgb.png      24x20 8-bit RGB PNG
  image.bmp          24x20 24-bit BMP
  fmnist/            t10k-images-idx3-ubyte (3 images of 28x28) and t10k-labels-idx1-ubyte (labels 7, 2, 9)
  fmnist-gz/         the same two files gzipped
  small.dat          TorchSharp Module.save format (LEB128 count; per entry a BinaryWriter string, dtype code, rank,
                     dims, raw little-endian bytes): weight f32[2,3], bias f32[2], running_mean f64[2],
                     num_batches_tracked i64[], mask bool[3], half f16[2]
"""
import gzip, os, struct, zlib


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filtered(rows, bpp):
    """Each row prefixed by its filter type (y % 5), filtered as the PNG spec (section 9) defines."""
    out, prior = b"", bytes(len(rows[0]))
    for y, row in enumerate(rows):
        f = y % 5
        o = bytearray()
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            o.append((x - pred) & 0xFF)
        out += bytes([f]) + bytes(o)
        prior = row
    return out


def png(path, width, height, depth, colour, rows, bpp, palette=None, split=False, text=False):
    data = zlib.compress(filtered(rows, bpp), 9)
    parts = [data[: len(data) // 2], data[len(data) // 2:]] if split else [data]
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    if palette is not None:
        body += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if text:
        body += chunk(b"tEXt", b"Comment\x00Seg reader fixture")
    for p in parts:
        body += chunk(b"IDAT", p)
    body += chunk(b"IEND", b"")
    open(path, "wb").write(body)


def labels_at(x, y, w, h):
    if x == 0 or y == 0 or x == w - 1 or y == h - 1:
        return 255
    return (x // 6 + 2 * (y // 7)) % 5


W, H = 24, 20
voc = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128)] + [(i, i, i) for i in range(5, 255)] + [(224, 224, 192)]
png("mask_palette.png", W, H, 8, 3, [bytes(labels_at(x, y, W, H) for x in range(W)) for y in range(H)], 1, voc, split=True, text=True)

w4, h4 = 13, 9
rows4 = []
for y in range(h4):
    vals = [(x * 3 + y) % 16 for x in range(w4)] + [0]
    rows4.append(bytes((vals[2 * i] << 4) | vals[2 * i + 1] for i in range((w4 + 1) // 2)))
png("mask_palette4.png", w4, h4, 4, 3, rows4, 1, [(i * 16, 255 - i * 16, i * 7) for i in range(16)])

png("mask_grey.png", W, H, 8, 0, [bytes(labels_at(x, y, W, H) % 5 for x in range(W)) for y in range(H)], 1)
png("image_rgb.png", W, H, 8, 2, [bytes(v for x in range(W) for v in (x * 10, y * 12, (x + y) * 5)) for y in range(H)], 3)

# BMP: BITMAPFILEHEADER + BITMAPINFOHEADER, 24-bit BGR rows bottom-up, each padded to 4 bytes.
stride = (W * 3 + 3) // 4 * 4
pixels = b"".join(bytes(v for x in range(W) for v in ((x + y) * 5, y * 12, x * 10)) + bytes(stride - W * 3) for y in reversed(range(H)))
open("image.bmp", "wb").write(b"BM" + struct.pack("<IHHI", 54 + len(pixels), 0, 0, 54)
                              + struct.pack("<IiiHHIIiiII", 40, W, H, 1, 24, 0, len(pixels), 2835, 2835, 0, 0) + pixels)

os.makedirs("fmnist", exist_ok=True)
os.makedirs("fmnist-gz", exist_ok=True)
images = bytes((i * 37 + x * 3 + y * 5) % 256 if 4 <= x < 24 and 4 <= y < 24 else 0 for i in range(3) for y in range(28) for x in range(28))
idx3 = struct.pack(">iiii", 0x803, 3, 28, 28) + images
idx1 = struct.pack(">ii", 0x801, 3) + bytes([7, 2, 9])
for name, blob in (("t10k-images-idx3-ubyte", idx3), ("t10k-labels-idx1-ubyte", idx1)):
    open(os.path.join("fmnist", name), "wb").write(blob)
    with open(os.path.join("fmnist-gz", name + ".gz"), "wb") as f:
        f.write(gzip.compress(blob, mtime=0))


def leb(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def entry(name, code, shape, raw):
    n = name.encode()
    return leb(len(n)) + n + leb(code) + leb(len(shape)) + b"".join(leb(d) for d in shape) + raw


# TorchSharp ScalarType codes: Int64 4, Float16 5, Float32 6, Float64 7, Bool 11.
dat = leb(6)
dat += entry("weight", 6, [2, 3], struct.pack("<6f", 0.5, -1.0, 2.25, 3.0, -0.125, 7.5))
dat += entry("bias", 6, [2], struct.pack("<2f", 0.1, -0.2))
dat += entry("running_mean", 7, [2], struct.pack("<2d", 1.0 / 3.0, -2.5))
dat += entry("num_batches_tracked", 4, [], struct.pack("<q", 17))
dat += entry("mask", 11, [3], bytes([1, 0, 1]))
dat += entry("half", 5, [2], struct.pack("<2e", 1.5, -0.25))
open("small.dat", "wb").write(dat)
