"""A directory as the tar inside a backup, and back (``gateway node backup``,
``gateway central backup``).

Modes are kept, so a 0600 key file comes back 0600; unpacking uses tarfile's ``data``
filter (no absolute paths, no links leading out, no device files) and only into an
empty directory, so a restore never mixes two states.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Final

from gateway.backupfile import BackupError

__all__ = ["SKIPPED", "tar_directory", "untar_into"]

SKIPPED: Final = ("-wal", "-shm", "-journal")
"""A database's side files: its snapshot already holds what they hold."""


def tar_directory(base: Path, replaced: dict[Path, Path], skip: set[Path]) -> tuple[bytes, int]:
    """A tar of ``base`` (modes kept); a file in ``replaced`` is taken from its value."""
    buffer = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(base.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            if path in skip or skip & set(path.parents):
                continue
            name = str(path)
            if any(name.endswith(s) and Path(name[: -len(s)]) in replaced for s in SKIPPED):
                continue  # the snapshot holds what the log's side files hold
            source = replaced.get(path, path)
            info = tar.gettarinfo(str(source), arcname=str(path.relative_to(base)))
            info.mode = path.stat().st_mode & 0o777
            with source.open("rb") as handle:
                tar.addfile(info, handle)
            count += 1
    return buffer.getvalue(), count


def untar_into(payload: bytes, to: Path) -> int:
    """Unpack a backup's tar into ``to``, which must be empty or not exist yet."""
    if to.exists() and any(to.iterdir()):
        raise BackupError(f"{to} is not empty; restore into a fresh directory")
    to.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r") as tar:
        members = tar.getmembers()
        tar.extractall(to, filter="data")  # no absolute paths, no links out, modes kept
    return len(members)
