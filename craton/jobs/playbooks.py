"""Playbook sources: pinned when a job is submitted, checked out when it runs.

A git source is pinned to the commit its ref names; a directory (below the ``[sources]
file_roots`` of the job region's tenant) is copied into the cache under the digest of its
content, so the job runs — and can be re-run later — on exactly what was there when it was
submitted. ``craton:ping`` is the built-in reachability playbook and needs no source.

A source URL is held to a reference's rules (``url_problem``, then the fetcher's roots and
address policy): a bare path such as ``/tmp/x`` or ``../../x`` would otherwise be a git
"URL" that clones any repository on the server.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import threading
from pathlib import Path

from craton.errors import invalid
from craton.files import PRIVATE_FILE, private_dir
from craton.inventory.references import path_problem, ref_problem, url_problem
from craton.sources.fetch import Fetcher, FetchFailed, FetchRefused

PING = "craton:ping"
PING_PLAYBOOK = """\
- name: Craton reachability check
  hosts: all
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
"""
MAX_FILES = 20000
MAX_BYTES = 200 * 1024 * 1024


def pin_source(fetcher: Fetcher, url: str | None, ref: str | None, path: str | None,
               playbook: str) -> str | None:
    """Pin the job's source, read as ``fetcher`` (scoped to the job region's tenant) may;
    422 naming the field when the source may not be read or the playbook is not in it."""
    if playbook == PING:
        if url or path:
            raise invalid({"source": f"{PING} is built in and takes no source"})
        return None
    problems = {"playbook": path_problem(playbook)}
    if url is not None:
        problems["source.url"] = url_problem(url) or fetcher.refusal(url)
    if ref is not None:
        problems["source.ref"] = ref_problem(ref)
    if path is not None and not path.startswith("/"):
        problems["source.path"] = "must be an absolute path"
    refused = {field: problem for field, problem in problems.items() if problem is not None}
    if refused:
        raise invalid(refused)
    try:
        return _pin(fetcher, url, ref, path, playbook)
    except FetchRefused as error:
        raise invalid({"source.url" if url else "source.path": error.message}) from None


def _pin(fetcher: Fetcher, url: str | None, ref: str | None, path: str | None,
         playbook: str) -> str:
    if url:
        commit = fetcher.resolve_commit(url, ref)
        mirror = fetcher.mirror(url, commit)
        try:
            kind = subprocess.run(["git", "cat-file", "-t", f"{commit}:{playbook}"],
                                  cwd=mirror, capture_output=True, text=True,
                                  env=fetcher.git_env(), timeout=fetcher.sources.git_timeout)
        except subprocess.TimeoutExpired:
            raise FetchFailed(f"git cat-file {commit[:12]} of {url}: no answer within "
                              f"{fetcher.sources.git_timeout}s") from None
        if kind.stdout.strip() != "blob":
            raise invalid({"playbook": f"no file {playbook!r} at commit {commit[:12]}"})
        return f"commit:{commit}"
    if path:
        root = fetcher.local_path(Path(path).resolve().as_uri())
        if not root.is_dir():
            raise invalid({"source.path": "is not a directory"})
        if not (root / playbook).is_file():
            raise invalid({"playbook": f"no file {playbook!r} in {root}"})
        digest = snapshot_directory(root, fetcher.cache / "sources")
        return f"sha256:{digest}"
    raise invalid({"source": "needs a git url (with an optional ref) or a directory path"})


def snapshot_directory(root: Path, cache: Path) -> str:
    """Copy ``root`` into ``cache/<digest>`` (regular files and directories only) and return
    the digest of its paths, modes and contents."""
    files: list[tuple[str, Path]] = []
    total = 0
    for directory, subdirs, names in os.walk(root):
        subdirs.sort()
        # os.walk lists a symlinked directory among subdirs without entering it: check it too.
        for name in sorted(names) + [d for d in subdirs if (Path(directory) / d).is_symlink()]:
            full = Path(directory) / name
            mode = full.lstat().st_mode
            if not stat.S_ISREG(mode):
                raise invalid({"source.path": f"{full.relative_to(root)} is not a regular file "
                                              "(links and devices are not copied)"})
            total += full.stat().st_size
            files.append((str(full.relative_to(root)), full))
            if len(files) > MAX_FILES or total > MAX_BYTES:
                raise invalid({"source.path": f"is larger than {MAX_FILES} files or "
                                              f"{MAX_BYTES} bytes"})
    digest = hashlib.sha256()
    for relative, full in files:
        digest.update(f"{relative}\0{full.stat().st_mode & 0o111:o}\0".encode())
        digest.update(hashlib.sha256(full.read_bytes()).digest())
    pin = digest.hexdigest()
    target = cache / pin
    if not target.exists():
        partial = cache / f".{pin}.{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        private_dir(partial)
        for relative, full in files:
            copy = partial / relative
            private_dir(copy.parent)
            shutil.copyfile(full, copy)
            # Readable by Craton's user only; executable (by it) if it was executable at all.
            os.chmod(copy, PRIVATE_FILE | (0o100 if full.stat().st_mode & 0o111 else 0))
        partial.rename(target)
    return pin


def checkout(fetcher: Fetcher, url: str | None, pin: str | None, playbook: str,
             target: Path, *, git_timeout: float) -> None:
    """Put the pinned source into ``target`` (the job's project directory)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if playbook == PING:
        (target / "ping.yml").write_text(PING_PLAYBOOK)
        return
    kind, _, value = (pin or "").partition(":")
    if kind == "commit" and url:
        extract_commit(fetcher, fetcher.mirror(url, value), value, target, timeout=git_timeout)
        return
    if kind == "sha256":
        snapshot = fetcher.cache / "sources" / value
        if not snapshot.is_dir():
            raise FetchFailed(f"the source snapshot {value[:12]} is no longer in the cache")
        shutil.copytree(snapshot, target, dirs_exist_ok=True)
        return
    raise FetchFailed(f"cannot check out a source pinned as {pin!r}")


def extract_commit(fetcher: Fetcher, mirror: Path, commit: str, target: Path, *,
                   timeout: float) -> None:
    """The tree of ``commit`` in ``mirror``, streamed from ``git archive`` into ``target``:
    never held in memory, within ``timeout`` seconds, at most MAX_FILES files and MAX_BYTES
    bytes (a directory source's limits), every entry kept inside ``target``."""
    process = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=mirror,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=fetcher.git_env())
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        process.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    files = size = 0
    try:
        assert process.stdout is not None
        with tarfile.open(fileobj=process.stdout, mode="r|") as tar:
            for member in tar:
                files += 1
                size += max(member.size, 0)
                if files > MAX_FILES or size > MAX_BYTES:
                    raise FetchRefused(f"commit {commit[:12]} holds more than {MAX_FILES} "
                                       f"files or {MAX_BYTES} bytes")
                tar.extract(member, target, filter="data")
        returncode = process.wait()
    except tarfile.TarError as error:
        if timed_out.is_set():
            raise FetchFailed(f"git archive {commit[:12]}: not done within {timeout}s") from None
        raise FetchFailed(f"git archive {commit[:12]} failed: {error}") from None
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    if timed_out.is_set():
        raise FetchFailed(f"git archive {commit[:12]}: not done within {timeout}s")
    if returncode != 0:
        raise FetchFailed(f"git archive {commit[:12]} failed")


def playbook_path(playbook: str) -> str:
    return "ping.yml" if playbook == PING else playbook
