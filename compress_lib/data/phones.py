"""Phone labels in the 39-phone CMU inventory (ARPAbet without stress, the SUPERB PR inventory).

Three sources map into it:

- espeak-ng's English phoneme mnemonics (`espeak-ng -x --sep=' '`), see `espeak_to_cmu`;
- flite's segment names (`flite -ps`), see `flite_to_cmu`;
- a CMU-style pronunciation lexicon (`WORD  AH0 B AW1 T`, as LibriSpeech's `librispeech-lexicon.txt`),
  see `read_lexicon` / `words_to_phones`.

The tables below are the mapping measured for the study (3,000 WordNet sentences in each of espeak-ng's
8 English accents leave no symbol unmapped), with two symbols corrected after checking words: `i@` (hiatus,
"idea" -> iy ah; "ih" before r) and `aI@` ("science", "diet" -> ay ah; espeak-ng's en-us writes the r-coloured
"fire" vowel as `aI3` -> ay er). An unknown symbol is an error, never a silent drop, so that a new engine
version cannot corrupt the labels unnoticed.
"""

from __future__ import annotations

import re
from pathlib import Path

from compress_lib.errors import CompressLibError

PHONES = (
    "aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g", "hh", "ih", "iy", "jh",
    "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th", "uh", "uw", "v", "w", "y", "z", "zh",
)  # fmt: skip
PHONE_SET = frozenset(PHONES)

# espeak-ng English mnemonic -> CMU phones (stress / syllable marks removed before lookup)
ESPEAK_TO_CMU = {
    **{c: c for c in "p b t d k g f v s z m n l r w".split()},
    "T": "th", "D": "dh", "S": "sh", "Z": "zh", "h": "hh", "N": "ng", "r-": "r", "w#": "w", "j": "y",
    "tS": "ch", "dZ": "jh", "t#": "t", "t2": "t", "t[": "t", "d#": "d", "x": "k", "z#": "z", "l/": "l",
    "n-": "ah n", "@L": "ah l",
    "I": "ih", "I2": "ih", "I#": "ih", "i": "iy", "i:": "iy", "E": "eh", "e": "eh", "E~": "eh",
    "a": "ae", "aa": "ae", "a#": "ah", "A:": "aa", "0": "aa", "O2": "aa", "O~": "aa", "a~": "aa", "A~": "aa",
    "O:": "ao", "O": "ao", "V": "ah", "@": "ah", "@2": "ah", "@5": "ah", "@-": "ah", "3": "er", "3:": "er",
    "U": "uh", "U~": "uh", "u:": "uw", "eI": "ey", "aI": "ay", "aI2": "ay", "OI": "oy", "aU": "aw",
    "oU": "ow", "o": "ow",
    "A@": "aa r", "O@": "ao r", "o@": "ao r", "e@": "eh r", "i@": "iy ah", "i@3": "ih r", "IR": "ih r",
    "U@": "uh r", "VR": "ah r", "aI@": "ay ah", "aI3": "ay er", "eI@": "ey er", "aU@": "aw er",
}  # fmt: skip
ESPEAK_PAUSES = frozenset({"_", "_:", "_!", "_|", "||", "|", ";", "?"})
ESPEAK_STRESS = re.compile(r"['',%=]")

FLITE_TO_CMU = {
    **{p: p for p in PHONES},
    "ax": "ah", "axr": "er", "ix": "ih", "dx": "t", "nx": "n", "el": "ah l", "em": "ah m", "en": "ah n",
    "hv": "hh", "ux": "uw",
}  # fmt: skip
FLITE_PAUSES = frozenset({"pau", "h#", "sil"})


def espeak_to_cmu(phoneme_text: str) -> list[str]:
    """CMU phones of `espeak-ng -x --sep=' '` output (one line per clause, two spaces between words).

    Two rules beyond the table:
    - after an r-coloured vowel (a mapping ending in r / er), a following `r` or linking `r-` in the same word
      is dropped: espeak writes "h 'i@3 r I N" for "hearing", which is "hh ih r ih ng", not "hh ih r r ih ng";
    - `i@` is "ih" before an `r` of the same word ("hero": h 'i@ r oU -> hh ih r ow) and "iy ah" elsewhere: the
      rhotic accents use it only there and in hiatus ("idea": aI d 'i@ -> ay d iy ah; "here" is `i@3`).
    """
    phones: list[str] = []
    for line in phoneme_text.splitlines():
        for word in re.split(r"\s{2,}", line.strip()):
            symbols = [ESPEAK_STRESS.sub("", s) for s in word.split()]
            symbols = [s for s in symbols if s and s not in ESPEAK_PAUSES and not s.startswith("_")]
            r_coloured = False
            for i, symbol in enumerate(symbols):
                if symbol not in ESPEAK_TO_CMU:
                    raise CompressLibError(
                        f"espeak-ng phoneme {symbol!r} (in {word.strip()!r}) has no CMU mapping; add it to "
                        "ESPEAK_TO_CMU in compress_lib/data/phones.py (a new espeak-ng version?)"
                    )
                if r_coloured and symbol in ("r", "r-"):
                    r_coloured = False
                    continue
                if symbol == "i@" and i + 1 < len(symbols) and symbols[i + 1] in ("r", "r-"):
                    mapped = ["ih"]
                else:
                    mapped = ESPEAK_TO_CMU[symbol].split()
                phones.extend(mapped)
                r_coloured = mapped[-1] in ("r", "er") and symbol not in ("r", "r-")
    return phones


def flite_to_cmu(segments: str) -> list[str]:
    """CMU phones of `flite -ps` output (space-separated segment names, pauses dropped)."""
    phones: list[str] = []
    for seg in segments.split():
        if seg in FLITE_PAUSES:
            continue
        if seg not in FLITE_TO_CMU:
            raise CompressLibError(
                f"flite segment {seg!r} has no CMU mapping; add it to FLITE_TO_CMU in compress_lib/data/phones.py"
            )
        phones.extend(FLITE_TO_CMU[seg].split())
    return phones


def cmu_from_lexicon_phone(symbol: str) -> str:
    """'AH0' -> 'ah': strip the stress digit, lower-case; raise for anything outside the 39 phones."""
    phone = symbol.rstrip("012").lower()
    if phone not in PHONE_SET:
        raise ValueError(symbol)
    return phone


def read_lexicon(path: str | Path) -> dict[str, list[str]]:
    """A CMU-style lexicon: one `WORD PH1 PH2 ...` per line (tabs or spaces; stress digits allowed).

    Words are upper-cased; the first pronunciation of a word wins (CMUdict writes variants as `WORD(2)`,
    which are skipped). Lines starting with `;;;` are comments.
    """
    path = Path(path)
    if not path.is_file():
        raise CompressLibError(
            f"lexicon {path} does not exist; pass --lexicon with a word-to-phone file such as LibriSpeech's "
            "librispeech-lexicon.txt (one `WORD PH1 PH2 ...` per line)"
        )
    lexicon: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith(";;;"):
                continue
            word = parts[0].upper()
            if word.endswith(")") and "(" in word:  # CMUdict alternative pronunciation
                continue
            if len(parts) < 2:
                raise CompressLibError(f"{path}:{number}: word {parts[0]!r} has no phones; fix or delete the line")
            try:
                phones = [cmu_from_lexicon_phone(p) for p in parts[1:]]
            except ValueError as exc:
                raise CompressLibError(
                    f"{path}:{number}: phone {exc} is not one of the 39 CMU phones; the lexicon must use "
                    "ARPAbet (e.g. AH0, B, AW1, T)"
                ) from None
            lexicon.setdefault(word, phones)
    if not lexicon:
        raise CompressLibError(f"lexicon {path} holds no entries; check it is a `WORD PH1 PH2 ...` file")
    return lexicon


def words_to_phones(text: str, lexicon: dict[str, list[str]], where: str) -> list[str]:
    """Look up each word of `text` (upper-cased); an unknown word is an error naming `where` and the word."""
    phones: list[str] = []
    for word in text.upper().split():
        if word not in lexicon:
            raise CompressLibError(
                f"{where}: word {word!r} is not in the lexicon; add a line `{word} PH1 PH2 ...` to it "
                "(LibriSpeech's librispeech-lexicon.txt covers every LibriSpeech word)"
            )
        phones.extend(lexicon[word])
    return phones
