"""The archive key rule: exact messages, the suffix in any case (pure functions)."""

from __future__ import annotations

import pytest

from event_pipeline.intake import drop, keys

RULE = (
    "a key is 1 to 128 characters, each an ASCII letter, a digit, '.', '_' or '-', "
    "not starting with '.' or '-', without '..'"
)


LONG = "k" * 5000


INVALID = [
    ("x/y", "invalid archive key 'x/y': it contains '/'"),
    (".", "invalid archive key '.': it starts with '.'"),
    ("..", "invalid archive key '..': it starts with '.'"),
    (LONG, "invalid archive key '" + "k" * 40 + "...': it is 5000 characters long"),
    ("", "invalid archive key '': it is empty"),
    ("a...b", "invalid archive key 'a...b': it contains '..'"),
    ("x..y", "invalid archive key 'x..y': it contains '..'"),
    ("-rf", "invalid archive key '-rf': it starts with '-'"),
    ("a b", "invalid archive key 'a b': it contains ' '"),
    ("a\\b", "invalid archive key 'a\\\\b': it contains '\\\\'"),
    ("café", "invalid archive key 'caf\\xe9': it contains '\\xe9'"),
    ("nul\x00", "invalid archive key 'nul\\x00': it contains '\\x00'"),
    ("\ud800", "invalid archive key '\\ud800': it contains '\\ud800'"),
    ("line\nbreak", "invalid archive key 'line\\nbreak': it contains '\\n'"),
]


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
