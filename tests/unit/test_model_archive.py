"""The model channel's archive is unpacked without trusting it: every hostile member is refused by
name and nothing lands outside the target directory."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.contract.model_archive import Limits, extract, find_archive, member_problem


def tar(path: Path, members, mode="w:gz") -> Path:
    """members: (TarInfo fields..., data) as dicts."""
    with tarfile.open(path, mode) as t:
        for m in members:
            info = tarfile.TarInfo(m["name"])
            info.type = m.get("type", tarfile.REGTYPE)
            info.linkname = m.get("link", "")
            data = m.get("data", b"")
            info.size = len(data) if info.type == tarfile.REGTYPE else 0
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return path


GOOD = [
    {"name": "image-classification-symbol.json", "data": b"{}"},
    {"name": "sub", "type": tarfile.DIRTYPE},
    {"name": "sub/model-shapes.json", "data": b"[]"},
    {"name": "alias.json", "type": tarfile.SYMTYPE, "link": "sub/model-shapes.json"},
    {"name": "copy.json", "type": tarfile.LNKTYPE, "link": "sub/model-shapes.json"},
]


def test_a_plain_archive_unpacks(tmp_path):
    out = extract(tar(tmp_path / "model.tar.gz", GOOD), tmp_path / "out")
    assert (out / "sub" / "model-shapes.json").read_bytes() == b"[]"
    assert (out / "alias.json").read_bytes() == b"[]" and (out / "copy.json").read_bytes() == b"[]"


@pytest.mark.parametrize(
    "member, problem",
    [
        ({"name": "/etc/evil", "data": b"x"}, "has an absolute path"),
        ({"name": "../evil", "data": b"x"}, "leaves the directory ('..')"),
        ({"name": "a/../../evil", "data": b"x"}, "leaves the directory ('..')"),
        (
            {"name": "passwd", "type": tarfile.SYMTYPE, "link": "/etc/passwd"},
            "is a link to '/etc/passwd', outside",
        ),
        ({"name": "up", "type": tarfile.SYMTYPE, "link": "../.."}, "is a link to '../..', outside"),
        ({"name": "d/up", "type": tarfile.SYMTYPE, "link": "../../x"}, "is a link to '../../x', outside"),
        (
            {"name": "hard", "type": tarfile.LNKTYPE, "link": "../outside"},
            "is a link to '../outside', outside",
        ),
        ({"name": "tty", "type": tarfile.CHRTYPE}, "is a character device"),
        ({"name": "disk", "type": tarfile.BLKTYPE}, "is a block device"),
        ({"name": "fifo", "type": tarfile.FIFOTYPE}, "is a FIFO"),
    ],
)
def test_hostile_members_are_refused_by_name(tmp_path, member, problem):
    archive = tar(tmp_path / "model.tar.gz", [GOOD[0], member])
    with pytest.raises(ClientError) as err:
        extract(archive, tmp_path / "out")
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(
        f"channel 'model': model.tar.gz: member {member['name']!r} {problem}"
    )
    assert not (tmp_path / "evil").exists() and not (tmp_path.parent / "evil").exists()


def test_a_member_written_through_a_link_is_refused(tmp_path):
    """The classic: a link to a directory outside, then a file below the link."""
    (tmp_path / "victim").mkdir()
    archive = tar(
        tmp_path / "m.tar",
        [
            {"name": "inside", "type": tarfile.DIRTYPE},
            {"name": "link", "type": tarfile.SYMTYPE, "link": "inside"},
            {"name": "link/file", "data": b"x"},
        ],
        mode="w",
    )
    with pytest.raises(ClientError, match="member 'link/file' lies below a link in the archive"):
        extract(archive, tmp_path / "out")


def test_a_chain_of_links_that_leads_out_is_refused(tmp_path):
    """Each link's text stays inside, but `d -> .` makes `d/..` the parent of the directory."""
    archive = tar(
        tmp_path / "m.tar.gz",
        [
            {"name": "d", "type": tarfile.SYMTYPE, "link": "."},
            {"name": "e", "type": tarfile.SYMTYPE, "link": "d/../secret"},
        ],
    )
    (tmp_path / "secret").write_text("not yours")
    with pytest.raises(ClientError, match="member 'e' is a link that leads outside the directory"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_file_that_replaces_a_link_cannot_write_through_it(tmp_path):
    archive = tar(
        tmp_path / "m.tar.gz",
        [
            {"name": "d", "type": tarfile.SYMTYPE, "link": "."},
            {"name": "e", "type": tarfile.SYMTYPE, "link": "d/../target"},
            {"name": "e", "data": b"overwrite"},
        ],
    )
    (tmp_path / "target").write_text("keep")
    with pytest.raises(ClientError, match="member 'e' lies below a link"):
        extract(archive, tmp_path / "out")
    assert (tmp_path / "target").read_text() == "keep"


def test_size_and_member_limits_count_what_is_written(tmp_path):
    bomb = tar(tmp_path / "bomb.tar.gz", [{"name": "zeros", "data": b"\0" * (3 << 20)}])
    assert bomb.stat().st_size < 10_000  # compresses to almost nothing
    with pytest.raises(ClientError, match=r"unpacks to more than 2097152 bytes \(at member 'zeros'\)"):
        extract(bomb, tmp_path / "out", Limits(max_bytes=2 << 20))
    many = tar(tmp_path / "many.tar.gz", [{"name": f"f{i}", "data": b"x"} for i in range(5)])
    with pytest.raises(ClientError, match="more than 4 members"):
        extract(many, tmp_path / "out2", Limits(max_members=4))


def test_not_an_archive_and_damaged_archives(tmp_path):
    (tmp_path / "model.tar.gz").write_bytes(b"plain text")
    with pytest.raises(ClientError, match="model.tar.gz: not a tar archive"):
        extract(tmp_path / "model.tar.gz", tmp_path / "out")
    good = tar(tmp_path / "good.tar.gz", GOOD).read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ClientError, match="cut.tar.gz: "):
        extract(tmp_path / "cut.tar.gz", tmp_path / "out3")


def test_finding_the_archive(tmp_path):
    channel = tmp_path / "model"
    channel.mkdir()
    assert find_archive(channel) is None  # unpacked files
    (channel / "model.tar.gz").write_bytes(b"")
    assert find_archive(channel) == channel / "model.tar.gz"
    (channel / "other.tgz").write_bytes(b"")
    with pytest.raises(ClientError, match="expected one model.tar.gz in .*, found model.tar.gz, other.tgz"):
        find_archive(channel)
    with pytest.raises(ClientError, match="does not exist"):
        find_archive(tmp_path / "nowhere")


def test_member_problem_is_pure():
    info = tarfile.TarInfo("ok/file")
    assert member_problem(info, set()) is None
    assert member_problem(info, {"ok"}) == "lies below a link in the archive"
