import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passkit.core.keys import (
    MAX_KEY_LENGTH,
    DuplicateKeyError,
    InvalidKeyError,
    KeyRegistry,
    is_valid_key,
    make_key,
    validate_key,
)


@pytest.mark.parametrize("key", ["yfcc-343224206", "a", "0", "demo_1-x", "a" * MAX_KEY_LENGTH])
def test_valid_keys(key):
    assert validate_key(key) == key
    assert is_valid_key(key)


@pytest.mark.parametrize(
    "key",
    ["", "Yfcc-1", "yfcc.1", "a/b", "../x", "-a", "_a", "a b", "é", "a" * (MAX_KEY_LENGTH + 1), None, 12],
)
def test_invalid_keys(key):
    assert not is_valid_key(key)
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_make_key_keeps_safe_ids_verbatim():
    assert make_key("yfcc", 343224206) == "yfcc-343224206"
    assert make_key("yfcc", "343224206") == "yfcc-343224206"
    assert make_key("my-pool", "img_01") == "my-pool-img_01"


def test_make_key_normalises_unsafe_ids_deterministically():
    dotted = make_key("folder", "IMG.0001.JPG")
    assert is_valid_key(dotted) and "." not in dotted
    assert dotted.startswith("folder-img-0001-jpg-")
    assert dotted == make_key("folder", "IMG.0001.JPG")
    # ids differing only in case or in unsafe characters get different keys
    assert make_key("folder", "IMG.0001.JPG") != make_key("folder", "img.0001.jpg")
    assert make_key("folder", "a.b") != make_key("folder", "a-b")
    assert make_key("folder", "a.b") != make_key("folder", "a b")
    assert is_valid_key(make_key("folder", "Zürich Straße"))
    assert is_valid_key(make_key("folder", "東京"))  # nothing ASCII survives: digest only
    long_key = make_key("folder", "x" * 500)
    assert is_valid_key(long_key) and len(long_key) <= MAX_KEY_LENGTH


@pytest.mark.parametrize("source,item", [("yfcc", ""), ("yfcc", "   "), ("YFCC", "1"), ("a.b", "1"), ("", "1")])
def test_make_key_rejects_empty_ids_and_bad_sources(source, item):
    with pytest.raises(InvalidKeyError):
        make_key(source, item)


@given(st.text(min_size=1).filter(lambda s: s.strip()))
def test_derived_keys_are_always_valid_and_stable(item):
    key = make_key("pool", item)
    assert is_valid_key(key)
    assert make_key("pool", item) == key


@given(st.text(min_size=1), st.text(min_size=1))
def test_distinct_ids_get_distinct_keys(a, b):
    if a == b or not a.strip() or not b.strip():
        return
    assert make_key("pool", a) != make_key("pool", b)


@given(st.text(alphabet=string.ascii_lowercase + string.digits + "_-", min_size=1, max_size=60))
def test_safe_ids_round_trip(item):
    assert make_key("pool", item) == f"pool-{item}"


def test_registry_refuses_collisions():
    registry = KeyRegistry()
    registry.add("pool-a", "pool:a")
    registry.add("pool-a", "pool:a")  # the same item again is fine
    assert "pool-a" in registry and len(registry) == 1
    with pytest.raises(DuplicateKeyError, match=r"pool:a.*pool:b"):
        registry.add("pool-a", "pool:b")
