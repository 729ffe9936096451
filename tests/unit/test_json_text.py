"""The text JSON columns store: orjson's, with json.dumps for what orjson refuses."""

import json

from event_pipeline.db import json_text


def test_plain_values_are_written_compactly_and_as_utf8():
    value = {"name": "Café ☕", "n": [1, 2.5, None, True], "nested": {"a": "b"}}
    assert json_text(value) == '{"name":"Café ☕","n":[1,2.5,null,true],"nested":{"a":"b"}}'
    assert json.loads(json_text(value)) == value


def test_what_orjson_refuses_falls_back_to_json_dumps():
    big = 2**70  # beyond 64 bits
    assert json_text({"n": big}) == '{"n": 1180591620717411303424}'
    assert json_text({1: "a"}) == '{"1": "a"}'  # a key that is no string, as json.dumps writes it
    assert json_text("\ud800") == '"\\ud800"'  # a lone surrogate, escaped
