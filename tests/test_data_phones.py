"""Phone labels: espeak-ng / flite / lexicon -> the 39 CMU phones."""

import subprocess

import pytest

from compress_lib.data.manifest import PHONES
from compress_lib.data.phones import (
    ESPEAK_TO_CMU,
    FLITE_TO_CMU,
    espeak_to_cmu,
    flite_to_cmu,
    read_lexicon,
    words_to_phones,
)
from compress_lib.errors import CompressLibError


def test_inventory_is_the_39_cmu_phones_sorted():
    assert len(PHONES) == 39 == len(set(PHONES))
    assert list(PHONES) == sorted(PHONES)
    for table in (ESPEAK_TO_CMU, FLITE_TO_CMU):
        assert {p for v in table.values() for p in v.split()} <= set(PHONES)


@pytest.mark.parametrize(
    "espeak, cmu",
    [
        ("h 'i@3 r I N", "hh ih r ih ng"),  # r after an r-coloured vowel is not doubled
        ("h 3: r-  'A@ m i", "hh er aa r m iy"),  # linking r- dropped after er; words split on two spaces
        ("h 'i@ r oU", "hh ih r ow"),  # i@ before r
        ("aI d 'i@", "ay d iy ah"),  # i@ in hiatus
        ("s 'aI@ n s", "s ay ah n s"),
        ("f 'aI3", "f ay er"),
        ("D I2 ;  'aI3 n", "dh ih ay er n"),  # pause symbols dropped
        ("'E r 3", "eh r er"),  # a plain r before er is kept
        ("b 'V t n-", "b ah t ah n"),
        ("tS 'i: z  dZ 'V dZ", "ch iy z jh ah jh"),
    ],
)
def test_espeak_mapping(espeak, cmu):
    assert " ".join(espeak_to_cmu(espeak)) == cmu


def test_espeak_multiline_clauses():
    assert espeak_to_cmu("h @ l 'oU\nD 'e@\n") == "hh ah l ow dh eh r".split()


def test_unknown_espeak_symbol_is_an_error():
    with pytest.raises(CompressLibError, match="ESPEAK_TO_CMU"):
        espeak_to_cmu("h Q@@ l")


def test_flite_mapping():
    segments = "pau hh ax l ow dh eh r pau b ah t el ax n pau"
    assert flite_to_cmu(segments) == "hh ah l ow dh eh r b ah t ah l ah n".split()
    with pytest.raises(CompressLibError, match="FLITE_TO_CMU"):
        flite_to_cmu("pau qq pau")


def test_espeak_engine_output_maps(tmp_path):
    """The installed espeak-ng's real output for a sentence maps without error in every rhotic accent."""
    for accent in ("en-us", "en-us-nyc", "en-gb-scotland"):
        out = subprocess.run(
            ["espeak-ng", "-q", "-v", accent, "-x", "--sep= ", "The quick brown fox jumps over the lazy dog."],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        phones = espeak_to_cmu(out)
        assert phones[:2] == ["dh", "ah"] and "f" in phones and set(phones) <= set(PHONES)


def test_lexicon_strips_stress_and_skips_variants(tmp_path):
    lex = tmp_path / "lexicon.txt"
    lex.write_text(";;; comment\nABOUT\tAH0 B AW1 T\nA AH0\nA(2) EY1\nhello HH AH0 L OW1\n")
    lexicon = read_lexicon(lex)
    assert lexicon == {"ABOUT": ["ah", "b", "aw", "t"], "A": ["ah"], "HELLO": ["hh", "ah", "l", "ow"]}
    assert words_to_phones("about a Hello", lexicon, "x") == "ah b aw t ah hh ah l ow".split()
    with pytest.raises(CompressLibError, match=r"word 'ZEBRA' is not in the lexicon.*add a line"):
        words_to_phones("about zebra", lexicon, "trans.txt:3")


def test_lexicon_errors(tmp_path):
    with pytest.raises(CompressLibError, match="does not exist; pass --lexicon"):
        read_lexicon(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("ABOUT AH0 B AW1 TX\n")
    with pytest.raises(CompressLibError, match=r"bad.txt:1: phone TX is not one of the 39"):
        read_lexicon(bad)
