import pytest
from hypothesis import given
from hypothesis import strategies as st

from passkit.core.licenses import (
    ALL_IDS,
    ARR,
    CC0,
    CC_FAMILIES,
    CC_VERSIONS,
    FLICKR_LICENSE_IDS,
    NKCR,
    PDM,
    UNKNOWN,
    US_GOV,
    LicensePolicy,
    family_of,
    license_name,
    license_url,
    normalize_license,
    reconcile_licenses,
)

FLICKR = {
    0: ARR,
    1: "CC-BY-NC-SA-2.0",
    2: "CC-BY-NC-2.0",
    3: "CC-BY-NC-ND-2.0",
    4: "CC-BY-2.0",
    5: "CC-BY-SA-2.0",
    6: "CC-BY-ND-2.0",
    7: NKCR,
    8: US_GOV,
    9: CC0,
    10: PDM,
}

# The license names of the YFCC100M dump (and Flickr's licenses.getInfo), with their URLs.
YFCC = [
    ("Attribution License", "http://creativecommons.org/licenses/by/2.0/", "CC-BY-2.0"),
    ("Attribution-ShareAlike License", "http://creativecommons.org/licenses/by-sa/2.0/", "CC-BY-SA-2.0"),
    ("Attribution-NoDerivs License", "http://creativecommons.org/licenses/by-nd/2.0/", "CC-BY-ND-2.0"),
    ("Attribution-NonCommercial License", "http://creativecommons.org/licenses/by-nc/2.0/", "CC-BY-NC-2.0"),
    (
        "Attribution-NonCommercial-ShareAlike License",
        "http://creativecommons.org/licenses/by-nc-sa/2.0/",
        "CC-BY-NC-SA-2.0",
    ),
    (
        "Attribution-NonCommercial-NoDerivs License",
        "http://creativecommons.org/licenses/by-nc-nd/2.0/",
        "CC-BY-NC-ND-2.0",
    ),
]


@pytest.mark.parametrize("flickr_id,expected", sorted(FLICKR.items()))
def test_flickr_ids(flickr_id, expected):
    assert normalize_license(flickr_id) == expected
    assert normalize_license(str(flickr_id)) == expected
    assert FLICKR_LICENSE_IDS[flickr_id] == expected


@pytest.mark.parametrize("value", [11, -1, 99, "11", "123456", True])
def test_unlisted_flickr_ids_are_unknown(value):
    assert normalize_license(value) == UNKNOWN


@pytest.mark.parametrize("name,url,expected", YFCC)
def test_yfcc_names_and_urls(name, url, expected):
    assert normalize_license(name) == expected
    assert normalize_license(name.replace(" ", "+")) == expected  # as the dump encodes it
    assert normalize_license(url) == expected
    assert reconcile_licenses([name, url]) == expected


@pytest.mark.parametrize(
    "value,expected",
    [
        ("https://creativecommons.org/licenses/by/4.0/", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by/4.0", "CC-BY-4.0"),
        ("http://www.creativecommons.org/licenses/by/3.0/", "CC-BY-3.0"),
        ("https://creativecommons.org/licenses/by-sa/4.0/deed.de", "CC-BY-SA-4.0"),
        ("https://creativecommons.org/licenses/by/4.0/deed.zh_TW", "CC-BY-4.0"),
        ("https://creativecommons.org/licenses/by-nc/3.0/legalcode", "CC-BY-NC-3.0"),
        ("https://creativecommons.org/licenses/by/2.0/de/", "CC-BY-2.0"),
        ("https://creativecommons.org/licenses/by/2.5/scotland/deed.en", "CC-BY-2.5"),
        ("creativecommons.org/licenses/by/2.0/", "CC-BY-2.0"),
        ("HTTP://CREATIVECOMMONS.ORG/LICENSES/BY/2.0/", "CC-BY-2.0"),
        ("http%3A%2F%2Fcreativecommons.org%2Flicenses%2Fby%2F2.0%2F", "CC-BY-2.0"),
        ("https://creativecommons.org/licenses/by-nd-nc/1.0/", "CC-BY-NC-ND-1.0"),
        ("https://creativecommons.org/publicdomain/zero/1.0/", CC0),
        ("https://creativecommons.org/publicdomain/mark/1.0/deed.en", PDM),
        ("https://www.flickr.com/commons/usage/", NKCR),
        ("http://www.usa.gov/copyright.shtml", US_GOV),
        ("CC-BY-4.0", "CC-BY-4.0"),
        ("cc-by-sa-3.0", "CC-BY-SA-3.0"),
        ("CC-BY-3.0-DE", "CC-BY-3.0"),
        ("CC BY 4.0", "CC-BY-4.0"),
        ("CC BY-NC-SA 4.0", "CC-BY-NC-SA-4.0"),
        ("Creative Commons Attribution 4.0 International", "CC-BY-4.0"),
        ("Creative Commons Attribution-ShareAlike 4.0 International License", "CC-BY-SA-4.0"),
        ("Attribution-NoDerivatives 4.0 International", "CC-BY-ND-4.0"),
        ("CC0-1.0", CC0),
        ("CC0", CC0),
        ("CC0 1.0 Universal", CC0),
        ("Public Domain Dedication (CC0)", CC0),
        ("Public Domain Mark", PDM),
        ("Public Domain Mark 1.0", PDM),
        ("No known copyright restrictions", NKCR),
        ("United States Government Work", US_GOV),
        ("All Rights Reserved", ARR),
        ("  attribution license  ", "CC-BY-2.0"),
    ],
)
def test_known_forms(value, expected):
    assert normalize_license(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        None,
        "CC BY",  # no version: attribution must name the exact license
        "cc-by",
        "Creative Commons",
        "see website",
        "Attribution-ShareAlike-NoDerivs",  # no such license
        "https://creativecommons.org/licenses/by/2.1/jp/",  # ported-only version, not mapped
        "https://creativecommons.org/licenses/by/2.0/evil/path",
        "https://example.com/licenses/by/2.0/",
        "https://creativecommons.org/licenses/zz/2.0/",
        "GPL-3.0",
        3.0,
    ],
)
def test_unknown_forms_are_never_guessed(value):
    assert normalize_license(value) == UNKNOWN


@pytest.mark.parametrize("family", CC_FAMILIES)
@pytest.mark.parametrize("version", CC_VERSIONS)
def test_every_cc_url_variant(family, version):
    license_id = f"{family}-{version}"
    url = license_url(license_id)
    bare = url.removeprefix("https://")
    for variant in (url, url.rstrip("/"), "http://" + bare, "https://www." + bare, url + "deed.fr", url + "legalcode"):
        assert normalize_license(variant) == license_id, variant
    assert normalize_license(license_id) == license_id
    assert normalize_license(license_name(license_id)) == license_id
    assert family_of(license_id) == family


@pytest.mark.parametrize("license_id", [i for i in ALL_IDS if i not in (ARR, UNKNOWN)])
def test_canonical_url_round_trips(license_id):
    assert normalize_license(license_url(license_id)) == license_id


def test_no_url_for_arr_and_unknown():
    assert license_url(ARR) is None
    assert license_url(UNKNOWN) is None


def test_reconcile_conflicts_are_unknown():
    assert reconcile_licenses(["Attribution License", "http://creativecommons.org/licenses/by-sa/2.0/"]) == UNKNOWN
    assert reconcile_licenses(["", "http://creativecommons.org/licenses/by/2.0/"]) == "CC-BY-2.0"
    assert reconcile_licenses([None, "nonsense"]) == UNKNOWN


@given(st.one_of(st.text(), st.integers(), st.none(), st.floats(), st.binary()))
def test_normalize_never_raises_and_returns_a_contract_id(value):
    assert normalize_license(value) in ALL_IDS


@given(st.sampled_from([i for i in ALL_IDS if i not in (ARR, UNKNOWN)]), st.sampled_from(["", " ", "\t"]))
def test_ids_survive_whitespace(license_id, pad):
    assert normalize_license(pad + license_id + pad) == license_id


def test_policies():
    cc_by = LicensePolicy.parse("cc-by")
    permissive = LicensePolicy.parse("permissive")
    for version in CC_VERSIONS:
        assert cc_by.allows(f"CC-BY-{version}")
        assert permissive.allows(f"CC-BY-{version}")
    for other in ("CC-BY-SA-2.0", "CC-BY-NC-2.0", "CC-BY-ND-4.0", CC0, PDM, US_GOV, NKCR, ARR, UNKNOWN):
        assert not cc_by.allows(other), other
    for ok in (CC0, PDM, US_GOV, NKCR):
        assert permissive.allows(ok)
    for no in ("CC-BY-SA-2.0", "CC-BY-NC-ND-2.0", ARR, UNKNOWN):
        assert not permissive.allows(no)


def test_allow_list_policy():
    policy = LicensePolicy.parse("CC-BY-4.0, CC-BY-SA-*, CC0-1.0")
    assert policy.allows("CC-BY-4.0") and not policy.allows("CC-BY-2.0")
    assert policy.allows("CC-BY-SA-2.0") and policy.allows("CC-BY-SA-4.0")
    assert policy.allows(CC0) and not policy.allows(UNKNOWN)


@pytest.mark.parametrize("spec", ["", "unknown", "CC-BY-4.0,unknown", "MIT", "CC-BY-*-foo", "cc by"])
def test_bad_policies_are_clear_errors(spec):
    with pytest.raises(ValueError, match="license policy"):
        LicensePolicy.parse(spec)


@given(st.one_of(st.text(), st.integers()))
def test_unknown_is_rejected_by_every_policy(value):
    license_id = normalize_license(value)
    if license_id == UNKNOWN:
        for name in ("cc-by", "permissive", "CC-BY-4.0,CC0-1.0"):
            assert not LicensePolicy.parse(name).allows(license_id)


@pytest.mark.parametrize("value", ["²", "³", "¹2", "٤", "①", "4²"])
def test_non_ascii_digits_are_unknown_not_an_error(value):
    assert normalize_license(value) == UNKNOWN
