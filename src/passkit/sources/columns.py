"""Columnar text helpers shared by the sources: %-decoding, text cleaning, URL checks, license normalisation.

Everything here works on whole pyarrow arrays with numpy / pyarrow.compute kernels, never a Python loop over
rows, except where few distinct values exist (license strings) or on the rare rows that need it (bad UTF-8).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passkit.core.licenses import license_url, reconcile_licenses
from passkit.sources.compiled import load_scanner

_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _digit, _char in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_char] = _digit
for _digit, _char in enumerate(b"ABCDEF", start=10):
    _HEX_VALUE[_char] = _digit

# What Python's str.split() treats as whitespace, for RE2 (pyarrow's regex engine).
_WHITESPACE_RUN = r"[\s\x{1c}-\x{1f}\x{85}\p{Z}]+"
_CONTROL_RUN = r"[\x{00}-\x{1f}\x{7f}]+"
# Per byte of a coordinate, packed so that one sum per value counts dots, minus signs and other bytes at once
# (5 bits each: exact for values shorter than 32 bytes; longer ones take the regex path).
_FIELD_BITS = 5
_NUMBER_BYTE = np.full(256, 1 << (2 * _FIELD_BITS), dtype=np.uint16)  # anything else
_NUMBER_BYTE[list(b"0123456789")] = 0
_NUMBER_BYTE[ord(".")] = 1
_NUMBER_BYTE[ord("-")] = 1 << _FIELD_BITS
_NUMBER = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_WEB_URL = r"^[Hh][Tt][Tt][Pp][Ss]?://([^/?#@\s]*@)?[^/?#:@\s]+([:/?#][^\s]*)?$"


def binary_parts(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets relative to the first value, data bytes) of a binary/string array without nulls."""
    offsets_type = (
        np.int64 if pa.types.is_large_binary(array.type) or pa.types.is_large_string(array.type) else np.int32
    )
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=offsets_type)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    start, end = int(offsets[0]), int(offsets[-1])
    return (offsets - offsets[0]).astype(np.int64), data[start:end]


def _distinct_sorted(values: np.ndarray) -> np.ndarray:
    """``np.unique`` of an already sorted array, without sorting it again."""
    if len(values) < 2:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _from_parts(offsets: np.ndarray, data: np.ndarray) -> pa.Array:
    offsets_type = pa.large_binary() if offsets[-1] > np.iinfo(np.int32).max else pa.binary()
    dtype = np.int64 if offsets_type == pa.large_binary() else np.int32
    return pa.Array.from_buffers(
        offsets_type, len(offsets) - 1, [None, pa.py_buffer(offsets.astype(dtype)), pa.py_buffer(data.tobytes())]
    )


def percent_decode(array: pa.Array, plus_is_space: bool = True) -> pa.Array:
    """``unquote_plus`` over a whole binary/string array (no nulls): ``+`` -> space, ``%XX`` -> byte.

    Returns a binary array (the decoded bytes need not be UTF-8); malformed escapes stay as they are, like
    :func:`urllib.parse.unquote_plus`.
    """
    array = array.cast(pa.binary()) if pa.types.is_string(array.type) else array
    array = array.cast(pa.large_binary()) if pa.types.is_large_string(array.type) else array
    if array.null_count:
        raise ValueError("percent_decode needs an array without nulls")
    offsets, data = binary_parts(array)
    if len(data) == 0:
        return _from_parts(offsets, data)
    pluses = np.flatnonzero(data == ord("+")) if plus_is_space else np.zeros(0, np.int64)
    percents = np.flatnonzero(data[:-2] == ord("%")) if len(data) > 2 else np.zeros(0, np.int64)
    if len(percents) == 0 and len(pluses) == 0:
        return array  # nothing to decode (e.g. Flickr account ids)
    data = data.copy()
    data[pluses] = ord(" ")
    if len(percents) == 0:
        return _from_parts(offsets, data)
    high = _HEX_VALUE[data[percents + 1]]
    low = _HEX_VALUE[data[percents + 2]]
    value_end = offsets[np.searchsorted(offsets, percents, side="right")]
    valid = (high != 255) & (low != 255) & (percents + 2 < value_end)
    percents, high, low = percents[valid], high[valid], low[valid]
    data[percents] = high * 16 + low
    keep = np.ones(len(data), dtype=bool)
    keep[percents + 1] = False
    keep[percents + 2] = False
    dropped_before = np.concatenate(([0], np.cumsum(~keep)))
    return _from_parts(offsets - dropped_before[offsets], data[keep])


def to_utf8(array: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Binary -> string array; values that are not valid UTF-8 become ``""``. Returns (strings, bad mask)."""
    bad = np.zeros(len(array), dtype=bool)
    candidate = array.view(pa.string()) if pa.types.is_binary(array.type) else array.view(pa.large_string())
    try:
        candidate.validate(full=True)
        return candidate, bad
    except pa.ArrowInvalid:
        pass
    offsets, data = binary_parts(array)
    high = np.flatnonzero(data >= 0x80)
    suspects = _distinct_sorted(np.searchsorted(offsets, high, side="right") - 1)
    values = array.to_pylist()
    for row in suspects.tolist():
        try:
            values[row].decode("utf-8")
        except UnicodeDecodeError:
            bad[row] = True
            values[row] = b""
    return pa.array(values, type=array.type).view(candidate.type), bad


def _needs_cleaning(array: pa.Array) -> np.ndarray:
    """Rows that :func:`clean_text` may change: control bytes, double/leading/trailing spaces, or a UTF-8 lead
    byte pair that can start a Unicode space (U+0085, U+00A0, U+1680, U+2000-U+205F, U+3000). Conservative."""
    offsets, data = binary_parts(array)
    flagged = (data < 0x20) | (data == 0x7F)
    if len(data) > 1:
        here, after = data[:-1], data[1:]
        flagged[:-1] |= (here == 0x20) & (after == 0x20)
        flagged[:-1] |= (here == 0xC2) & ((after == 0x85) | (after == 0xA0))
        flagged[:-1] |= ((here == 0xE1) & (after == 0x9A)) | ((here == 0xE3) & (after == 0x80))
        flagged[:-1] |= (here == 0xE2) & ((after == 0x80) | (after == 0x81))
    rows = np.zeros(len(array), dtype=bool)
    rows[np.searchsorted(offsets, np.flatnonzero(flagged), side="right") - 1] = True
    nonempty = np.flatnonzero(offsets[1:] > offsets[:-1])
    rows[nonempty] |= (data[offsets[nonempty]] == 0x20) | (data[offsets[nonempty + 1] - 1] == 0x20)
    return rows


def clean_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """:func:`passkit.core.attribution.clean_text` over a string array: control characters and whitespace runs
    become one space, ends trimmed; nulls become ``""``. Only the rows that need it go through the regexes."""
    array = pc.fill_null(array.cast(pa.string()), "")
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    needs = _needs_cleaning(array)
    if not needs.any():
        return array
    mask = pa.array(needs)
    dirty = array.filter(mask)
    dirty = pc.replace_substring_regex(dirty, _CONTROL_RUN, " ")
    dirty = pc.replace_substring_regex(dirty, _WHITESPACE_RUN, " ")
    return pc.replace_with_mask(array, mask, pc.utf8_trim_whitespace(dirty))


def web_url_mask(array: pa.Array, compiled: bool = True) -> np.ndarray:
    """True where the value is an http(s) URL with a host and no whitespace (``attribution.is_web_url``): the
    compiled check when built (and ``compiled``), else the regex."""
    values = pc.fill_null(array.cast(pa.string()), "")
    module = load_scanner() if compiled else None
    if module is not None and len(values):
        offsets, data = binary_parts(values)
        return np.frombuffer(module.web_urls(offsets, np.ascontiguousarray(data)), np.bool_)
    matches = pc.match_substring_regex(values, _WEB_URL)
    return matches.to_numpy(zero_copy_only=False)


def parse_coordinate(raw: pa.Array, limit: float) -> tuple[pa.Array, pa.Array]:
    """(float64 column, unparsable mask) from text or numbers: empty/null -> null; values outside
    [-limit, limit] -> null (not an error; longitude limit 180, latitude 90)."""
    if pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_decimal(raw.type):
        values = raw.cast(pa.float64())
        unparsable = pa.repeat(pa.scalar(False), len(raw))
    else:
        raw = pc.utf8_trim_whitespace(pc.fill_null(raw.cast(pa.string()), ""))
        number = pc.match_substring_regex(raw, _NUMBER)
        values = pc.cast(pc.if_else(number, raw, None), pa.float64())
        unparsable = pc.invert(pc.or_(pc.equal(raw, ""), number))
    in_range = pc.less_equal(pc.abs(values), limit)
    return pc.if_else(in_range, values, None), unparsable


def coordinate_unparsable(raw: pa.Array) -> np.ndarray:
    """The unparsable mask of :func:`parse_coordinate` for a string column without nulls, without converting
    the values. Values made of digits with at most one ``.`` and a leading ``-`` (nearly all) are checked with
    per-value byte counts; only the rest (spaces, exponents, other characters) go through the regex."""
    offsets, data = binary_parts(raw)
    lengths = np.diff(offsets)
    unparsable = np.zeros(len(raw), dtype=bool)
    rows = np.flatnonzero(lengths)
    if len(rows) == 0:
        return unparsable
    starts = offsets[rows]
    counts = np.add.reduceat(_NUMBER_BYTE[data], starts)
    field = (1 << _FIELD_BITS) - 1
    others, minuses, dots = counts >> (2 * _FIELD_BITS), (counts >> _FIELD_BITS) & field, counts & field
    simple = (others == 0) & (dots <= 1) & (minuses <= (data[starts] == ord("-"))) & (lengths[rows] < field)
    unparsable[rows[simple]] = lengths[rows[simple]] == dots[simple] + minuses[simple]  # no digit
    rest = rows[~simple]
    if len(rest):
        values = pc.utf8_trim_whitespace(raw.take(pa.array(rest)))
        number = pc.or_(pc.equal(values, ""), pc.match_substring_regex(values, _NUMBER))
        unparsable[rest] = ~number.to_numpy(zero_copy_only=False)
    return unparsable


def spread(array: pa.Array, rows: np.ndarray, count: int) -> pa.Array:
    """A ``count``-long array holding ``array``'s values at positions ``rows`` (increasing) and null elsewhere:
    ``array.take(indices with nulls)`` without the gather (string data and offsets are reused)."""
    valid = np.zeros(count, dtype=bool)
    valid[rows] = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else True
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    if pa.types.is_string(array.type) or pa.types.is_binary(array.type):
        offsets, data = binary_parts(array)
        lengths = np.zeros(count, dtype=np.int32)
        lengths[rows] = np.diff(offsets)
        positions = np.zeros(count + 1, dtype=np.int32)
        np.cumsum(lengths, out=positions[1:])
        return pa.Array.from_buffers(array.type, count, [bitmap, pa.py_buffer(positions), pa.py_buffer(data)])
    width = array.type.bit_width // 8 if pa.types.is_primitive(array.type) else 0
    if width not in (4, 8) or pa.types.is_boolean(array.type):
        positions = np.full(count, -1, dtype=np.int64)
        positions[rows] = np.arange(len(rows))
        return array.take(pa.array(positions, mask=positions < 0))
    dtype = np.int64 if width == 8 else np.int32
    values = np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset : array.offset + len(array)]
    out = np.zeros(count, dtype=dtype)
    out[rows] = values
    return pa.Array.from_buffers(array.type, count, [bitmap, pa.py_buffer(out)])


_LOWER_HEX = np.zeros(256, dtype=bool)
_LOWER_HEX[list(b"0123456789abcdef")] = True


def lower_hex_mask(array: pa.Array, shortest: int, longest: int) -> np.ndarray:
    """``^[0-9a-f]{shortest,longest}$`` per value of a string array without nulls (a table lookup per byte)."""
    offsets, data = binary_parts(array)
    lengths = np.diff(offsets)
    ok = (lengths >= shortest) & (lengths <= longest)
    other = np.flatnonzero(~_LOWER_HEX[data])
    if len(other):
        ok[np.searchsorted(offsets, other, side="right") - 1] = False
    return ok


def decodes_to_bad_utf8(array: pa.Array) -> np.ndarray:
    """Rows of a UTF-8 string column (no nulls) whose :func:`percent_decode` is not UTF-8. Only an escape of a
    byte >= 0x80 can make it so (the rest of a value decodes to itself or to ASCII), so only values that hold
    one are decoded."""
    offsets, data = binary_parts(array)
    bad = np.zeros(len(array), dtype=bool)
    percents = np.flatnonzero(data[:-2] == ord("%")) if len(data) > 2 else np.zeros(0, np.int64)
    high, low = _HEX_VALUE[data[percents + 1]], _HEX_VALUE[data[percents + 2]]
    percents = percents[(high >= 8) & (high != 255) & (low != 255)]
    rows = np.searchsorted(offsets, percents, side="right") - 1
    rows = _distinct_sorted(rows[percents + 2 < offsets[rows + 1]])  # the escape lies within its value
    if len(rows):
        bad[rows] = to_utf8(percent_decode(array.take(pa.array(rows))))[1]
    return bad


class LicenseNormalizer:
    """Normalises (name, url) license columns by mapping their few distinct pairs once, then taking."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], str] = {}

    def pair(self, name: str, url: str) -> str:
        """License id of one (name, url) pair."""
        return self._lookup(name, url)

    def _lookup(self, name: str, url: str) -> str:
        pair = (name, url)
        if pair not in self._cache:
            self._cache[pair] = reconcile_licenses([name, url])
        return self._cache[pair]

    def __call__(self, names: pa.Array, urls: pa.Array | None = None) -> pa.Array:
        """License id per row, from one or two columns that describe the same license (string arrays)."""
        names = _combined(pc.fill_null(names.cast(pa.string()), ""))
        urls = _combined(pc.fill_null(urls.cast(pa.string()), "")) if urls is not None else pa.repeat("", len(names))
        # Distinct (name, url) pairs from the two columns' dictionary codes: no per-row strings are built.
        name_codes, url_codes = names.dictionary_encode(), urls.dictionary_encode()
        width = len(url_codes.dictionary)
        pairs = name_codes.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width
        pairs += url_codes.indices.to_numpy(zero_copy_only=False)
        if len(name_codes.dictionary) * width <= 1 << 20:
            seen = np.zeros(len(name_codes.dictionary) * width, dtype=bool)
            seen[pairs] = True
            distinct = np.flatnonzero(seen)
            lookup = np.zeros(len(seen), dtype=np.int64)
            lookup[distinct] = np.arange(len(distinct))
            codes = lookup[pairs]
        else:
            distinct, codes = np.unique(pairs, return_inverse=True)
        name_values, url_values = name_codes.dictionary.to_pylist(), url_codes.dictionary.to_pylist()
        ids = [self._lookup(name_values[pair // width], url_values[pair % width]) for pair in distinct.tolist()]
        return pa.array(ids, pa.string()).take(pa.array(codes))


def _combined(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def fill_license_urls(license_urls: pa.Array, license_ids: pa.Array) -> pa.Array:
    """Cleaned license URL as given, else the canonical URL of the license id (never one for unknown/ARR)."""
    given = clean_text(license_urls)
    encoded = license_ids.dictionary_encode()
    canonical = pc.take(pa.array([license_url(i) or "" for i in encoded.dictionary.to_pylist()]), encoded.indices)
    return pc.if_else(pc.equal(given, ""), canonical, given)


__all__ = [
    "LicenseNormalizer",
    "binary_parts",
    "clean_text",
    "coordinate_unparsable",
    "decodes_to_bad_utf8",
    "fill_license_urls",
    "lower_hex_mask",
    "parse_coordinate",
    "percent_decode",
    "spread",
    "to_utf8",
    "web_url_mask",
]
