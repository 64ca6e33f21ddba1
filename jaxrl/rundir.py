"""Where a run writes its results, so that nothing the run did not create is ever deleted or
replaced. `--out` is checked before anything runs (`check_out`); the run writes into `OUT.partial`,
claimed atomically and held by a lock for the process's lifetime (`claim`), so two runs can never
share it; at the end `finish` renames it to OUT in one atomic step that refuses to replace anything
that appeared meanwhile, and with `--overwrite` replaces only the finished run that was there when
the run started. When it refuses, the results stay in OUT.partial and the message says so."""
from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil

from jaxrl.config import ConfigError

LOCK = ".jaxrl.lock"
RUN_MARKER = "summary.json"  # a finished run's folder holds it: --overwrite replaces only those


class KeptPartial(RuntimeError):
    """The results are complete but stay in OUT.partial: OUT could not be put in place."""


def partial_of(out: str) -> str:
    return out + ".partial"


def check_out(text: str, overwrite: bool, option: str = "--out") -> tuple[str, tuple | None]:
    """The absolute `--out` folder and the identity (device, inode) of the finished run it may
    replace with `overwrite` (None when there is none). Raises ConfigError for an empty path, the
    working directory or one of its parents, a file, a symbolic link, a path under a file, and an
    existing folder without `overwrite` or that is not a finished run."""
    if not text or not text.strip():
        raise ConfigError(f"{option}: got an empty path; give a new folder for the results")
    out = os.path.abspath(text)
    cwd = os.path.realpath(os.getcwd())
    real = os.path.realpath(out)
    if real == cwd or os.path.commonpath([real, cwd]) == real:
        raise ConfigError(f"{option}: {text!r} is the working directory or one of its parents; "
                          "give a new folder for the results")
    if os.path.islink(out):
        raise ConfigError(f"{option}: {text} is a symbolic link; give a new folder for the results")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"{option}: {text} is a file; give a new folder for the results")
    parent = os.path.dirname(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(f"{option}: {parent} is a file, so {text} cannot be created under it")
    if not os.path.isdir(out):
        return out, None
    if not overwrite:
        raise ConfigError(f"{option}: {text} already exists; choose a new folder or pass --overwrite")
    if not os.path.isfile(os.path.join(out, RUN_MARKER)):
        raise ConfigError(f"{option}: {text} is not a finished jaxrl run (no {RUN_MARKER}); "
                          "--overwrite replaces only those")
    st = os.stat(out)
    return out, (st.st_dev, st.st_ino)


class Claim:
    """Exclusive use of `OUT.partial`: created with mkdir (atomic: one of two racing runs wins),
    or, with `resume`, an existing one; either way locked with flock for as long as this process
    lives (the kernel drops the lock when it dies, so a killed run can be resumed at once)."""

    def __init__(self, out: str, resume: bool = False, can_resume: bool = True):
        self.out, self.partial, self.created = out, partial_of(out), not resume
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            if not resume:
                os.mkdir(self.partial)
            elif not os.path.isdir(self.partial):
                raise ConfigError(f"--resume: no unfinished run at {self.partial}")
            self._lock = open(os.path.join(self.partial, LOCK), "a")
        except FileExistsError:
            if _locked(self.partial):
                raise ConfigError(f"--out: another jaxrl run is writing to {self.partial} now; "
                                  "choose another --out") from None
            hint = "pass --resume to continue it or " if can_resume else ""
            raise ConfigError(f"--out: an unfinished run is at {self.partial}; {hint}delete that "
                              "folder") from None
        except OSError as e:
            raise ConfigError(f"--out: cannot create {self.partial}: {e.strerror}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ConfigError(f"--out: another jaxrl run is writing to {self.partial} now; "
                              "choose another --out") from None

    def abandon(self) -> None:
        """Remove OUT.partial if this process created it (nothing ran yet), and drop the lock."""
        self.release()
        if self.created:
            shutil.rmtree(self.partial, ignore_errors=True)

    def release(self) -> None:
        """Drop the lock (the process's exit does the same)."""
        self._lock.close()

    def path(self, *names: str) -> str:
        return os.path.join(self.partial, *names)

    def finish(self, replaces: tuple | None) -> None:
        """Rename OUT.partial to OUT, atomically and never onto anything but the finished run
        `replaces` (from check_out) when --overwrite was given; raises KeptPartial otherwise."""
        out, partial = self.out, self.partial
        old = None
        if os.path.lexists(out):
            st = os.lstat(out)
            if replaces is None or (st.st_dev, st.st_ino) != replaces:
                raise KeptPartial(f"{out} appeared while this run trained, so it was left alone; "
                                  f"the results are complete in {partial}")
            old = f"{out}.replaced-{os.getpid()}"
            os.rename(out, old)
        os.remove(os.path.join(partial, LOCK))
        try:
            _rename_noreplace(partial, out)
        except FileExistsError:
            aside = f" (the run it was to replace is now {old})" if old else ""
            raise KeptPartial(f"{out} appeared while this run trained, so it was left alone; the "
                              f"results are complete in {partial}{aside}") from None
        finally:
            self.release()
        if old is not None:
            shutil.rmtree(old)


def _locked(partial: str) -> bool:
    try:
        with open(os.path.join(partial, LOCK), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def _rename_noreplace(src: str, dst: str) -> None:
    """rename(2) that fails with FileExistsError if dst exists (Linux renameat2 RENAME_NOREPLACE;
    a check-then-rename elsewhere)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        at_fdcwd, noreplace = -100, 1
        if renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) == 0:
            return
        code = ctypes.get_errno()
        if code == errno.EEXIST:
            raise FileExistsError(code, os.strerror(code), dst)
        if code not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code), dst)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
    os.rename(src, dst)
