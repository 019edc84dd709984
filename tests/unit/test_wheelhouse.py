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
