"""The `model` channel of incremental training: a model.tar.gz from an earlier job, found and
unpacked without trusting it.

An archive may name any path and any kind of member. Each member is checked before anything is
written: no absolute paths, no `..`, no member below a link, no link whose target leaves the
directory, nothing but regular files, directories and such links (no devices, FIFOs), and a cap
on the member count and on the bytes written (a small gzip can expand without bound; the bytes
are counted as they are written, not taken from the headers). Every refusal is a ClientError
naming the member.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sagemaker_cv.contract.errors import ClientError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 8 << 30  # ResNet-200 weights are ~0.25 GB; a model with every epoch kept is more
    max_members: int = 10_000


def find_archive(channel_dir: Path) -> Path | None:
    """The one archive in the channel; None when the channel holds the model's files unpacked."""
    if not channel_dir.is_dir():
        raise ClientError(f"channel 'model': directory {channel_dir} does not exist")
    archives = sorted(p for p in channel_dir.rglob("*") if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES))
    if len(archives) > 1:
        raise ClientError(
            f"channel 'model': expected one model.tar.gz in {channel_dir}, found {', '.join(p.name for p in archives)}"
        )
    return archives[0] if archives else None


def member_problem(member: tarfile.TarInfo, seen_links: set[str]) -> str | None:
    """Why a member may not be extracted, or None. `seen_links` are the links accepted so far
    (a later member below one would be written wherever the link points)."""
    name = member.name
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "has an absolute path"
    if ".." in path.parts:
        return "leaves the directory ('..')"
    normal = posixpath.normpath(name)
    if any(normal == link or normal.startswith(link + "/") for link in seen_links):
        return "lies below a link in the archive"
    if member.issym() or member.islnk():
        target = member.linkname
        if member.issym():
            target = posixpath.join(posixpath.dirname(normal), target)
        target = posixpath.normpath(target)
        if PurePosixPath(member.linkname).is_absolute() or target == ".." or target.startswith("../"):
            return f"is a link to {member.linkname!r}, outside the directory"
        return None
    if not (member.isfile() or member.isdir()):
        kind = {
            tarfile.CHRTYPE: "a character device",
            tarfile.BLKTYPE: "a block device",
            tarfile.FIFOTYPE: "a FIFO",
        }.get(member.type, f"of type {member.type!r}")
        return f"is {kind}; only files and directories are extracted"
    return None


def extract(archive: Path, target: Path, limits: Limits = Limits(), origin: str | None = None) -> Path:
    """Unpack `archive` into `target` (created); every refusal names the member. `origin` says
    where the archive came from in messages (default: the model channel)."""
    name = origin or f"channel 'model': {archive.name}"
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ClientError(
            f"{name}: not a tar archive ({exc}); expected the model.tar.gz of an earlier job"
        ) from None
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    written, count = 0, 0
    links: set[str] = set()
    with tar:
        try:
            for member in tar:
                count += 1
                if count > limits.max_members:
                    raise ClientError(f"{name}: more than {limits.max_members} members")
                problem = member_problem(member, links)
                if problem:
                    raise ClientError(f"{name}: member {member.name!r} {problem}")
                dest = target / posixpath.normpath(member.name)
                if root not in dest.resolve().parents and dest.resolve() != root:
                    raise ClientError(f"{name}: member {member.name!r} resolves outside the directory")
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                if member.issym() or member.islnk():
                    links.add(posixpath.normpath(member.name))
                    _link(member, dest, target, name)
                    continue
                source = tar.extractfile(member)
                with open(dest, "wb") as out:
                    while block := source.read(1 << 20):
                        written += len(block)
                        if written > limits.max_bytes:
                            raise ClientError(
                                f"{name}: unpacks to more than {limits.max_bytes} bytes (at member {member.name!r})"
                            )
                        out.write(block)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ClientError(f"{name}: damaged archive ({exc})") from None
    # Links were checked by their text; a chain of them can still lead out (`d -> .`, then
    # `e -> d/../x`), so check where each one really leads now that all exist.
    for link in sorted(links):
        real = Path(os.path.realpath(target / link))
        if real != root and root not in real.parents:
            shutil.rmtree(target, ignore_errors=True)
            raise ClientError(f"{name}: member {link!r} is a link that leads outside the directory")
    return target


def _link(member: tarfile.TarInfo, dest: Path, target: Path, name: str) -> None:
    """A link that stays inside: a symlink as it is; a hard link as a copy of its (earlier) target."""
    if dest.exists() or dest.is_symlink():
        dest.unlink()
    if member.issym():
        os.symlink(member.linkname, dest)
        return
    source = target / posixpath.normpath(member.linkname)
    if not source.is_file():
        raise ClientError(
            f"{name}: member {member.name!r} links to {member.linkname!r}, which is not a file before it"
        )
    shutil.copyfile(source, dest)
