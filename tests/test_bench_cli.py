"""``make bench`` runs ``python -m bench`` with no arguments: that must mean every section."""

import pytest

from bench.__main__ import SECTIONS, sections


def test_no_sections_means_all():
    assert sections([]) == (list(SECTIONS), False)


def test_named_sections_and_quick():
    assert sections(["dask", "treeshap", "--quick"]) == (["dask", "treeshap"], True)


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sections(["nope"])
    assert exit_info.value.code == 2
    assert "unknown section nope" in capsys.readouterr().err
