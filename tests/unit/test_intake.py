"""The archive key rule: exact messages, the suffix in any case (pure functions)."""

from __future__ import annotations

import pytest
from expectations import INVALID, RULE

from event_pipeline.intake import drop, keys


@pytest.mark.parametrize(("key", "error"), INVALID, ids=range(len(INVALID)))
def test_invalid_keys_get_the_exact_error(key, error):
    assert keys.key_error(key) == f"{error}; {RULE}"
    with pytest.raises(keys.InvalidKey) as raised:
        keys.check_key(key)
    assert str(raised.value) == f"{error}; {RULE}"


@pytest.mark.parametrize("key", ["OTS16", "FOSSASIASummit2016", "conf-0", "a.b_c-d", "_x", "1", "k" * 128])
def test_valid_keys(key):
    assert keys.key_error(key) is None and keys.check_key(key) == key


def test_129_characters_is_one_too_many():
    assert keys.key_error("k" * 129) == f"invalid archive key '{'k' * 40}...': it is 129 characters long; {RULE}"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Conf.zip", "Conf"),
        ("Conf.ZIP", "Conf"),
        ("Conf.Zip", "Conf"),
        ("Conf.zIp", "Conf"),
        ("a.zip.zip", "a.zip"),
        ("noext", "noext"),
    ],
)
def test_the_suffix_is_stripped_in_any_case(name, key):
    assert keys.key_from_name(name) == key
    assert keys.key_for(f"/some/folder/{name}") == key
    assert keys.key_for(f"s3://bucket/prefix/{name}") == key
    if name != "noext":
        assert drop.archive_key(name) == key
