"""Atomic file writes: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None, sync: bool = True) -> bool:
    """Write `data` to `path` via a synced temp file and a rename; skip identical content.

    Returns True when the file changed. Leaving unchanged files alone keeps their
    mtime, which is what the web front's Last-Modified headers are made from.
    `sync=False` skips the fsync, for caches that verify what they read: the rename still
    makes the write atomic for readers, and after a power cut a damaged file is only a miss.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def is_inside(path: Path, folder: Path) -> bool:
    """True if `path`, with symlinks resolved, lies within `folder`."""
    try:
        path.resolve().relative_to(folder.resolve())
    except (ValueError, OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return False
    return True


def pack_checked(magic: bytes, value: object) -> bytes:
    """`magic`, a CRC-32 of the pickle, the pickle: the bytes of a cache file."""
    import pickle
    import zlib

    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return magic + zlib.crc32(payload).to_bytes(4, "big") + payload


def unpack_checked(raw: bytes, magic: bytes) -> object | None:
    """What `pack_checked` packed, or None for damaged or foreign bytes: never an error."""
    import pickle
    import zlib

    checksum, payload = raw[len(magic) : len(magic) + 4], raw[len(magic) + 4 :]
    if not raw.startswith(magic) or zlib.crc32(payload).to_bytes(4, "big") != checksum:
        return None
    try:
        return pickle.loads(payload)
    except Exception:  # noqa: BLE001 (pickle raises anything on foreign bytes)
        return None


def save_checked(path: Path, magic: bytes, value: object) -> None:
    """A cache file (`pack_checked`), written atomically, not synced (a file a power cut damaged fails its
    checksum and is only a cache miss). OSError is the caller's to ignore."""
    write_atomic(path, pack_checked(magic, value), sync=False)


def load_checked(path: Path, magic: bytes) -> object | None:
    """What `save_checked` wrote, or None for a missing, damaged or foreign file: never an error."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return unpack_checked(raw, magic)
