"""Files that are whole or absent: atomic writes, and what to say about a file torch
cannot read. No model code: checkpoints, reports and the converter of the authors' files
all use it."""
import contextlib
import os
from pathlib import Path

import torch


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path beside `path` to write, then renames it over `path`: a reader
    sees the old file or the new one, never half of one, whatever moment the run is killed,
    and a failed write (a full disk, a folder in the way) leaves neither a partial file nor
    the temporary one, and is one ValueError."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError
        raise ValueError(f"cannot write {path}: {getattr(error, 'strerror', None) or error}") from None
    finally:
        tmp.unlink(missing_ok=True)


def save_atomic(obj, path: Path):
    """torch.save through atomic_file."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def why_unreadable(path: Path, error: Exception) -> str:
    """What to tell a user about a file that torch.load could not read."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):  # zip (torch.save) or a pickle
        return "it is not a PyTorch file"
    text = str(error).strip()
    return (text.splitlines()[0][:200] if text else type(error).__name__) + "; the file may be truncated"


def write_atomic(path: Path, data):
    """Writes text or bytes to `path` through atomic_file."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
