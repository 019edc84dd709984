import re
from datetime import UTC, datetime

import pytest

from ops import maintenance
from ops.errors import OpsError

AT = datetime(2026, 12, 7, 21, 44, 39, tzinfo=UTC)


def test_the_file_sets_the_three_variables_and_says_since_when():
    text = maintenance.conf("Back at 10:00", 120, AT)
    assert 'set $maintenance "on since 2026-12-07T21:44:39Z";' in text
    assert 'set $maintenance_retry "120";' in text
    assert maintenance.state(text) == {"on": True, "since": "2026-12-07T21:44:39Z"}
    assert maintenance.state(None) == {"on": False, "since": None}
    assert maintenance.state("") == {"on": False, "since": None}


def test_the_message_is_html_and_inert_for_nginx():
    text = maintenance.conf('<b>"$host"</b> \\ & ;} include /etc/passwd;', 60, AT)
    line = next(ln for ln in text.splitlines() if ln.startswith("set $maintenance_message"))
    value = line[len('set $maintenance_message "'):-2]
    assert not re.search(r'[<>"$\\]', value), value  # no tag, quote, variable or escape left
    assert "&lt;b&gt;&quot;&#36;host&quot;&lt;/b&gt; &#92; &amp; ;} include /etc/passwd;" == value
    assert line.endswith('";')


@pytest.mark.parametrize("bad", ["two\nlines", "tab\there", "x" * 501, "bell\x07"])
def test_a_message_nginx_or_a_page_cannot_hold_is_refused(bad):
    with pytest.raises(OpsError) as exc:
        maintenance.check_message(bad)
    assert exc.value.code == 2


def test_no_message_is_a_short_apology():
    assert maintenance.check_message(None) == maintenance.check_message("  ") == maintenance.DEFAULT_MESSAGE
