from ops import wheelhouse

REQ = "pg8000==1.31.6\nprometheus-client==0.26.0  # metrics\n# comment\nasync-timeout==5.0.1\nloose>=1\n"


def test_pinned_ignores_comments_and_ranges():
    assert wheelhouse.pinned(REQ) == [("pg8000", "1.31.6"), ("prometheus-client", "0.26.0"),
                                      ("async-timeout", "5.0.1")]


def test_missing_matches_normalised_wheel_names():
    files = ["w/pg8000-1.31.6-py3-none-any.whl", "w/prometheus_client-0.26.0-py3-none-any.whl"]
    assert wheelhouse.missing(REQ, files) == ["async-timeout==5.0.1"]
    assert wheelhouse.missing(REQ, [*files, "async_timeout-5.0.1-py3-none-any.whl"]) == []
    assert wheelhouse.missing(REQ, ["w/pg8000-1.31.5-py3-none-any.whl"])[0] == "pg8000==1.31.6"


def test_download_targets_the_images_interpreter_on_this_architecture():
    args = wheelhouse.download_args("amd64")
    assert args[args.index("--python-version") + 1] == "3.11"
    assert "cp311" in args and "none" in args
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert "manylinux2014_x86_64" in platforms and platforms[-1] == "any"
    arm = wheelhouse.download_args("aarch64")
    assert "manylinux_2_28_aarch64" in [arm[i + 1] for i, a in enumerate(arm) if a == "--platform"]
