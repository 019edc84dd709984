import pytest

from ops.commands import image_prune as cmd
from ops.commands.line import words


def test_only_deployed_tags_that_nothing_keeps_go():
    tags = {"v1": "a", "v2": "b", "v3": "c", "wip": "d", "v4": "e"}
    keep = cmd.kept_tags(["v4", "v3", "v2", "v1"], 2, ["v1"])  # newest 2 + the idle color's
    assert keep == ["v4", "v3", "v1"]
    assert cmd.to_remove(tags, keep, deployed={"v1", "v2", "v3", "v4", "gone"}) == ["v2"]
    assert cmd.to_remove(tags, keep, deployed=set()) == []  # never deployed: never ours


def test_release_directories_follow_the_kept_tags():
    names = ["20261201T000000Z-v1", "20261202T000000Z-v2", "20261203T000000Z-v2", "20261204T000000Z-v3"]
    assert cmd.releases_beyond(names, ["v3", "v1"]) == ["20261202T000000Z-v2", "20261203T000000Z-v2"]
    argv = words(cmd.remove_releases("/s/app/releases", ["20261202T000000Z-v2"]))
    assert argv == ["rm", "-rf", "--", "/s/app/releases/20261202T000000Z-v2"]
    with pytest.raises(ValueError):
        cmd.remove_releases("/s/app/releases", ["../../etc"])


def test_listing_removal_and_disk_usage_are_parsed():
    text = "reg/api\tv1\tsha1\nreg/api\t<none>\tsha2\nother/api\tv1\tsha3\n"
    assert cmd.parse_images(text, "reg/api") == {"v1": "sha1"}
    assert cmd.parse_removed("removed reg/api:v1\nin-use reg/api:v2\n") == (["reg/api:v1"], ["reg/api:v2"])
    assert cmd.parse_disk_usage("Images\t1.234GB\nContainers\t5MB\n") == 1_234_000_000
    assert cmd.parse_disk_usage("Images\t512kB\n") == 512_000 and cmd.parse_disk_usage("") is None
    line = str(cmd.remove(["reg/api:v1"]))
    assert "docker image rm reg/api:v1" in line and "in-use" in line
    with pytest.raises(ValueError):
        cmd.remove(["reg/api:v1;rm -rf /"])
