"""Output folders and the files in them: a folder claimed by one run at a time (a lock
naming its holder) and cleared only of what a command will rewrite, files written whole or
not at all, and what to say about a file torch cannot read. No model code and no plotting:
checkpoints, training, reports and the converter of the authors' files all use it."""
import atexit
import contextlib
import json
import os
import shutil
import socket
import sys
import time
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


LOCK_NAME = ".dhif-run.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _read_lock(lock: Path) -> dict:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):  # being written, or garbage
        return {}


def hold_folder(out: Path):
    """Marks `out` as this process's output folder until it exits, so that a second dhif
    run into the same folder is refused in one line naming the holder. A lock whose process
    is gone (a crashed or killed run on this host) is taken over."""
    lock = Path(out) / LOCK_NAME
    mine = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(["dhif"] + sys.argv[1:])}
    for _ in range(2):
        try:
            with open(lock, "x") as f:
                json.dump(mine, f)
            atexit.register(_release, lock, mine["pid"])
            return
        except FileExistsError:
            holder = _read_lock(lock)
        except OSError as error:
            raise ValueError(f"cannot write to {out}: {error.strerror or error}") from None
        same_host = holder.get("host") == mine["host"]
        if same_host and holder.get("pid") == mine["pid"]:
            return
        if same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
            lock.unlink(missing_ok=True)  # left by a run that no longer exists
            continue
        raise ValueError(f"{out} is in use by another dhif run (pid {holder.get('pid')} on {holder.get('host')}, "
                         f"started {holder.get('started')}: {holder.get('command')}); wait for it to end or choose "
                         f"another --out (if that run is gone, delete {lock})")
    raise ValueError(f"cannot take the lock {lock}; delete it if no dhif run is using {out}")


def _release(lock: Path, pid: int):
    if os.getpid() == pid and _read_lock(lock).get("pid") == pid:
        lock.unlink(missing_ok=True)


def release_folder(out: Path):
    """Gives up this process's hold on `out` before it exits (a library call that is done)."""
    _release(Path(out) / LOCK_NAME, os.getpid())


def claim_output(out: Path, names, overwrite: bool):
    """Makes `out` ready for a command that writes `names` (files or folders) in it, before
    any long work: refuses, in one line, when another live dhif run holds `out`
    (hold_folder), when an earlier run's `names` are there unless `overwrite` (then only
    those are removed; nothing else in `out` is touched), and when `out` cannot be written."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot write to {out}: {error.strerror or error}") from None
    hold_folder(out)  # writes the lock: also the check that `out` can be written
    present = [name for name in names if (out / name).exists()]
    if present and not overwrite:
        raise ValueError(f"{out} already holds {', '.join(present)} from an earlier run; pass --overwrite to "
                         "replace them, or choose another --out")
    for name in present:
        path = out / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
