"""Access control: an optional password for the whole app, or OIDC login (st.login) with an allowlist.

* Password: ``MODELLENS_PASSWORD`` or ``password = "..."`` in ``.streamlit/secrets.toml``; compared in
  constant time (``hmac.compare_digest``), remembered for the browser session.
* OIDC: an ``[auth]`` section in secrets.toml (Streamlit's st.login, needs ``streamlit[auth]``) plus an
  allowlist of e-mail addresses or ``@domain`` entries in ``MODELLENS_ALLOWED_EMAILS`` (comma-separated) or
  ``allowed = [...]`` under ``[modellens]`` in secrets.toml. Authentication alone admits nobody.
* ``MODELLENS_LOGIN_FOR=uploads`` (default): share links stay viewable by link, everything else needs login;
  ``all``: share links need login too. With neither configured the app is open (local use).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

import streamlit as st

from ui import loaders

_OK = "_auth_ok"


def _secret(*path: str) -> Any:
    try:
        node: Any = st.secrets
        for key in path:
            node = node[key]
        return node
    except (KeyError, FileNotFoundError, AttributeError, Exception):  # noqa: BLE001 - no secrets file is fine
        return None


def _password() -> str | None:
    return loaders.settings().password or _secret("password")


def _oidc_configured() -> bool:
    return _secret("auth") is not None


def allowed(email: str | None) -> bool:
    """True when the e-mail is on the allowlist (exact address, or ``@domain``)."""
    raw = os.environ.get("MODELLENS_ALLOWED_EMAILS") or ",".join(_secret("modellens", "allowed") or [])
    entries = [e.strip().lower() for e in raw.split(",") if e.strip()]
    email = (email or "").strip().lower()
    return bool(email) and any(email == e or (e.startswith("@") and email.endswith(e)) for e in entries)


def current_user() -> str:
    """Who owns shares made in this session: the login e-mail, ``team`` behind a password, else ``local``."""
    if _oidc_configured() and getattr(st.user, "is_logged_in", False):
        return str(st.user.get("email") or "unknown")
    return "team" if _password() else "local"


def _password_form(password: str) -> None:
    st.title("ModelLens")
    with st.form("login"):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Open ModelLens")
    if submitted:
        digest = hashlib.sha256(given.encode()).digest()
        if hmac.compare_digest(digest, hashlib.sha256(password.encode()).digest()):
            st.session_state[_OK] = True
            st.rerun()
        st.error("That password is not right.")
    st.stop()


def _oidc_gate() -> None:
    if not getattr(st.user, "is_logged_in", False):
        st.title("ModelLens")
        st.info("Log in with your organisation's account to continue.")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    if not allowed(st.user.get("email")):
        st.title("ModelLens")
        st.error("Your account is not on this deployment's allowlist; ask its administrator for access.")
        st.button("Log out", on_click=st.logout)
        st.stop()


def gate() -> None:
    """Stop the run with a login form when this deployment requires one for what is being opened."""
    share_id = st.query_params.get("s")
    # only a share that exists and has not expired is viewable without login (a made-up id opens nothing)
    if share_id and loaders.settings().login_for == "uploads" and loaders.share(share_id).error is None:
        return
    if _oidc_configured():
        _oidc_gate()
        return
    password = _password()
    if password and not st.session_state.get(_OK):
        _password_form(password)
