"""Reviewers come from CONVEYOR_REVIEW_USERS; nobody signs in without one, and passwords
never show in a repr."""
from __future__ import annotations

import pytest

from conveyor.review.settings import ReviewSettings, ReviewSettingsError


def test_reviewers_and_defaults():
    rs = ReviewSettings.from_env({"CONVEYOR_REVIEW_USERS": "alice:s3cret, bob:pa:ss"})
    assert (rs.addr, rs.port) == ("127.0.0.1", 8088)
    assert rs.check("alice", "s3cret") and rs.check("bob", "pa:ss")
    assert not rs.check("alice", "pa:ss") and not rs.check("carol", "s3cret")
    assert "s3cret" not in repr(rs) and "s3cret" not in str(rs.users)


@pytest.mark.parametrize("environ, message", [
    ({}, "no reviewer can sign in"),
    ({"CONVEYOR_REVIEW_USERS": "alice"}, "name:password"),
    ({"CONVEYOR_REVIEW_USERS": "alice:x", "CONVEYOR_REVIEW_PORT": "http"}, "must be a port number"),
])
def test_unusable_settings_say_why(environ, message):
    with pytest.raises(ReviewSettingsError, match=message):
        ReviewSettings.from_env(environ)
