import pytest

from passkit.core.attribution import Attribution, clean_text


def full(**overrides):
    fields = {
        "creator": "danielbuechele",
        "title": "Summer Palace",
        "page_url": "https://www.flickr.com/photos/danielbuechele/6061409035/",
        "license": "Attribution License",
        "license_url": "http://creativecommons.org/licenses/by/2.0/",
    }
    fields.update(overrides)
    return Attribution.from_fields(**fields)


def test_complete_attribution_and_tasl():
    attribution = full()
    assert attribution.license == "CC-BY-2.0"
    assert attribution.check() == ""
    assert attribution.tasl() == (
        '"Summer Palace" by danielbuechele (https://www.flickr.com/photos/danielbuechele/6061409035/), '
        "licensed under CC BY 2.0 (http://creativecommons.org/licenses/by/2.0/)"
    )
    html = full(title="<b>Palace</b> & co").tasl_html()
    assert "&lt;b&gt;Palace&lt;/b&gt; &amp; co" in html and "<b>" not in html


def test_license_url_filled_from_license_id():
    attribution = full(license_url=None, license=4)
    assert attribution.license_url == "https://creativecommons.org/licenses/by/2.0/"
    assert attribution.check() == ""


@pytest.mark.parametrize(
    "overrides,reason",
    [
        ({"creator": ""}, "attribution:incomplete:creator"),
        ({"creator": "   "}, "attribution:incomplete:creator"),
        ({"creator": None}, "attribution:incomplete:creator"),
        ({"page_url": ""}, "attribution:incomplete:page_url"),
        ({"page_url": "flickr.com/photos/x/1"}, "attribution:incomplete:page_url"),
        ({"page_url": "javascript:alert(1)"}, "attribution:incomplete:page_url"),
        ({"license": "whatever", "license_url": None}, "attribution:incomplete:license,license_url"),
        ({"license": "All Rights Reserved", "license_url": None}, "attribution:incomplete:license_url"),
        ({"creator": "", "page_url": None}, "attribution:incomplete:creator,page_url"),
    ],
)
def test_incomplete_attribution_names_the_fields(overrides, reason):
    assert full(**overrides).check() == reason


def test_untitled_is_allowed_unless_required():
    untitled = full(title="")
    assert untitled.check() == ""
    assert untitled.tasl().startswith("Untitled by danielbuechele")
    assert untitled.check(require_title=True) == "attribution:incomplete:title"


def test_text_is_cleaned():
    assert clean_text("  a\tb\x00c\n ") == "a b c"
    assert clean_text(None) == ""
    assert full(creator="  Jane\x07 Doe ").creator == "Jane Doe"
    assert set(full().to_dict()) == {"creator", "title", "page_url", "license", "license_url"}
