"""Just enough of the TIFF format to find a tile's bytes, so that a test can damage one tile of a real file."""

from __future__ import annotations

import struct
from pathlib import Path

_TYPES = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8


def _ifd_offsets(data: bytes) -> list[int]:
    (ifd,) = struct.unpack_from("<I", data, 4)
    offsets = []
    while ifd:
        offsets.append(ifd)
        (count,) = struct.unpack_from("<H", data, ifd)
        (ifd,) = struct.unpack_from("<I", data, ifd + 2 + 12 * count)
    return offsets


def image_count(path: Path) -> int:
    """Images (IFDs) in the file: the full resolution, then overviews and masks in GDAL's order."""
    return len(_ifd_offsets(Path(path).read_bytes()))


def tile_extents(path: Path, image: int = 0) -> list[tuple[int, int]]:
    """(offset, byte count) of every tile (or strip) of image ``image`` (0: full resolution; then overviews
    and masks in the file's order) of a little-endian classic TIFF."""
    data = Path(path).read_bytes()
    assert data[:4] == b"II*\x00", "a little-endian classic TIFF"
    ifd = _ifd_offsets(data)[image]
    (count,) = struct.unpack_from("<H", data, ifd)
    tags = {}
    for i in range(count):
        tag, kind, n, value = struct.unpack_from("<HHII", data, ifd + 2 + 12 * i)
        if tag not in (273, 279, 324, 325):
            continue
        fmt = _TYPES[kind]
        size = struct.calcsize(fmt) * n
        where = ifd + 2 + 12 * i + 8 if size <= 4 else value
        tags[tag] = struct.unpack_from(f"<{n}{fmt}", data, where)
    offsets = tags.get(324) or tags[273]
    counts = tags.get(325) or tags[279]
    return list(zip(offsets, counts))


def damage_tile(path: Path, index: int, fraction: float = 0.5, length: int = 16, image: int = 0) -> None:
    """Overwrite ``length`` bytes inside tile ``index`` of image ``image``, ``fraction`` of the way into its
    data."""
    offset, count = tile_extents(path, image)[index]
    at = offset + int(count * fraction)
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes((37 * i + 11) % 256 for i in range(length)))
