"""Share links and access control under AppTest: read-only views that reopen the same page, row and numbers."""

from __future__ import annotations

from core.isolation.workers import close_all_pools
from tests.pages.test_pages import _fresh_caches, app, chart  # noqa: F401 - _fresh_caches is an autouse fixture


def _share_from_row_explorer(row: int) -> tuple[str, str]:
    at = app(row=str(row)).run()
    at.switch_page("pages/row_explorer.py").run()
    waterfall = chart(at, "Waterfall")
    share_button = next(b for b in at.sidebar.button if b.label == "Share this view")
    share_button.click().run()
    link = at.sidebar.code[0].value
    return link, waterfall["layout"]["annotations"][1]["text"]


def test_a_share_link_reopens_the_same_view_read_only():
    link, prediction_text = _share_from_row_explorer(7)
    assert "?s=" in link and "page=rows" in link and "row=7" in link
    params = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    fresh = app(**params).run()  # a new session: no uploads, no state
    assert not fresh.exception
    assert fresh.title[0].value == "Row explorer"
    waterfall = chart(fresh, "Waterfall")
    assert waterfall["layout"]["title"]["text"] == "Waterfall for row 7"
    assert waterfall["layout"]["annotations"][1]["text"] == prediction_text
    assert not fresh.get("file_uploader") and not fresh.get("button_group")
    assert any("Shared view (read-only)" in i.value for i in fresh.sidebar.info)


def test_unknown_and_malformed_links_show_a_clear_page():
    for bad in ("Q" * 32, "nope"):
        at = app(s=bad).run()
        assert not at.exception
        text = " ".join(e.value for e in at.error)
        assert ("does not exist" in text) if len(bad) == 32 else ("malformed" in text)


def test_password_gate(monkeypatch):
    monkeypatch.setenv("MODELLENS_PASSWORD", "correct horse")
    at = app().run()
    assert at.title[0].value == "ModelLens" and not at.get("plotly_chart")
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert "not right" in at.error[0].value
    at.text_input[0].input("correct horse")
    at.button[0].click().run()
    assert at.title[0].value == "Overview" and chart(at, "Predictions")


def test_share_links_stay_viewable_without_login_by_default(monkeypatch):
    link, _ = _share_from_row_explorer(3)
    monkeypatch.setenv("MODELLENS_PASSWORD", "s3cret")
    params = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    viewer = app(**params).run()
    assert viewer.title[0].value == "Row explorer"
    close_all_pools()
    import streamlit as st

    st.cache_resource.clear()
    made_up = app(**{**params, "s": "Q" * 32}).run()  # an id that opens nothing does not skip the login
    assert made_up.title[0].value == "ModelLens" and made_up.text_input[0].label == "Password"
    monkeypatch.setenv("MODELLENS_LOGIN_FOR", "all")
    close_all_pools()
    st.cache_resource.clear()
    locked = app(**params).run()
    assert locked.title[0].value == "ModelLens" and locked.text_input[0].label == "Password"


def test_oidc_allowlist(monkeypatch):
    monkeypatch.setenv("MODELLENS_ALLOWED_EMAILS", "ada@corp.com,@partner.org")
    secrets = {
        "auth": {
            "redirect_uri": "http://localhost:8501/oauth2callback",
            "cookie_secret": "x" * 32,
            "client_id": "id",
            "client_secret": "s",
            "server_metadata_url": "https://idp/.well-known",
        }
    }
    outsider = app()
    outsider.secrets.update(secrets)
    outsider.user = {"is_logged_in": True, "email": "eve@evil.com"}
    outsider.run()
    assert "not on this deployment's allowlist" in outsider.error[0].value
    for email in ("ada@corp.com", "bob@partner.org"):
        member = app()
        member.secrets.update(secrets)
        member.user = {"is_logged_in": True, "email": email}
        member.run()
        assert member.title[0].value == "Overview", email
    anonymous = app()
    anonymous.secrets.update(secrets)
    anonymous.user = {"is_logged_in": False}
    anonymous.run()
    assert any(b.label == "Log in" for b in anonymous.button)


def test_read_only_server_offers_no_upload_but_serves_links(monkeypatch):
    link, prediction_text = _share_from_row_explorer(5)
    monkeypatch.setenv("MODELLENS_READ_ONLY", "1")
    import streamlit as st

    st.cache_resource.clear()
    home = app().run()
    assert not home.exception and chart(home, "Predictions")
    assert not home.get("file_uploader") and not home.get("button_group")
    assert any("Uploads are off" in c.value for c in home.sidebar.caption)
    params = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    shared = app(**params).run()
    assert chart(shared, "Waterfall")["layout"]["annotations"][1]["text"] == prediction_text


def _my_shares(at) -> int:
    heading = next(s.value for s in at.subheader if s.value.startswith("Your shares ("))
    return int(heading.removeprefix("Your shares (").removesuffix(")"))


def test_share_and_export_page_creates_lists_and_deletes_links():
    at = app(row="4").run()
    at.switch_page("pages/share.py").run()
    assert not at.exception and at.title[0].value == "Share & export"
    before = _my_shares(at)  # the test session shares one store
    next(b for b in at.button if b.label == "Create link").click().run()
    link = at.code[0].value
    assert "?s=" in link and "page=rows" in link and "row=4" in link
    assert _my_shares(at) == before + 1
    params = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    assert app(**params).run().title[0].value == "Row explorer"  # the link works in a new session
    delete = next(b for b in at.button if b.label == "Delete" and b.key == f"delete_{params['s']}")
    delete.click().run()
    assert _my_shares(at) == before
    gone = app(**params).run()
    assert "does not exist" in " ".join(e.value for e in gone.error)
    labels = {b.label for b in at.get("download_button")}
    assert {"CSV", "Parquet"} <= labels
    next(b for b in at.button if b.label == "Build report").click().run()
    assert not at.exception and "Download report (HTML)" in {b.label for b in at.get("download_button")}
