"""Deterministic pseudo-random prose for benchmark payloads.

Every call with a different seed yields different text (never repeated), yet
the text compresses roughly like English prose: words are drawn from a fixed
vocabulary with a Zipf-like distribution and arranged into sentences and
paragraphs. Output depends only on the seed, so every saver in a run stores
byte-identical content.
"""

from __future__ import annotations

import random

# ~400 common English words (function words first, so Zipf weights make them frequent).
_WORDS = """
the of and to a in is it that for on was with as be by at this are from or an
have not but they which one you were all we her she there would their will when
has more if no out so said what up its about into than them can only other new
some could time these two may then do first any my now such like our over man me
even most made after also did many before must through back years where much your
way well down should because each just those people how too little state good very
make world still own see men work long get here between both life being under never
day same another know while last might us great old year off come since against go
came right used take three states himself few house use during without again place
american around however home small found thought went say part once general high
upon school every does got united left number course war until always away something
fact though water less public put think almost hand enough far took head yet
government system better set told nothing night end why called didn't eyes find going
look asked later knew point next city business give group toward young days let room
president side social given present several order national possible rather second
face per among form important often things looking early white case john become large
big need four within felt along children saw best church ever least power development
light thing seemed family interest want members mind country area others done turned
although open god service problem certain kind different thus began door help sense
whole matter perhaps itself york times law human line above name example action
company hands local show whether five history gave today either act feet across taken
past quite anyone having seen death experience body word half really field am car
words already themselves information tell together college shall money period held
keep sure probably free seems political real behind cannot miss question air office
making brought whose special heard major problems ago became federal moment study
available known result street economic boy reason change position south board
individual job areas society west close turn love community true court force full
court seem wife future age voice center woman control common policy necessary
following front sometimes six girl clear further land run students provide feel party
able mother music education university child effect level stood military town short
morning total outside rate figure class art century washington north usually plan
leave therefore evidence top million sound black strong hard various says believe
type value play surface soon mean near lines table peace modern tax road red book
personal process situation minutes increase schools idea english alone women gone
nor amount doing letter private although ground data storage index query table row
checkpoint thread message agent tool graph node state channel version writes
""".split()

_NAMES = """
Alice Bob Carol Dmitri Elena Farah Gustavo Hiro Ines Jamal Keiko Lars Maya Nikolai
Olga Priya Quentin Rosa Sven Tariq Uma Viktor Wen Ximena Yusuf Zoe Berlin Lisbon
Nairobi Osaka Quito Toronto Vienna Oslo Lagos Lima Hanoi Perth Dakar Cusco
""".split()

# Zipf-ish weights: weight(rank) = 1 / (rank + 2) ** 1.05
_WEIGHTS = [1.0 / (i + 2) ** 1.05 for i in range(len(_WORDS))]
_CUM: list[float] = []
_acc = 0.0
for _w in _WEIGHTS:
    _acc += _w
    _CUM.append(_acc)


def _sentence(rng: random.Random) -> str:
    n = rng.randint(6, 22)
    words = rng.choices(_WORDS, cum_weights=_CUM, k=n)
    # sprinkle names and numbers so every text is unique and not pure vocabulary
    if rng.random() < 0.45:
        words[rng.randrange(n)] = rng.choice(_NAMES)
    if rng.random() < 0.35:
        words[rng.randrange(n)] = str(rng.randint(2, 99999))
    if n > 10 and rng.random() < 0.4:
        k = rng.randrange(3, n - 3)
        words[k] = words[k] + ","
    words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words) + rng.choice("....?!;")[:1].replace(";", ".")


def prose(seed: int | str, length: int) -> str:
    """Return about ``length`` characters (exactly ``length`` or slightly less)
    of varied prose determined by ``seed``."""
    rng = random.Random(f"prose:{seed}")
    out: list[str] = []
    size = 0
    since_para = 0
    while size < length:
        s = _sentence(rng)
        if out:
            sep = "\n\n" if since_para >= rng.randint(3, 7) else " "
            since_para = 0 if sep == "\n\n" else since_para + 1
            out.append(sep)
            size += len(sep)
        out.append(s)
        size += len(s)
    text = "".join(out)
    if len(text) > length:
        cut = text.rfind(" ", 0, length)
        text = text[: cut if cut > length * 0.8 else length].rstrip(" ,") + "."
    return text


def sized(seed: int | str, lo: int, hi: int) -> str:
    """Prose whose length is drawn uniformly from [lo, hi] by ``seed``."""
    rng = random.Random(f"size:{seed}")
    return prose(seed, rng.randint(lo, hi))


if __name__ == "__main__":  # quick look + compressibility check
    import zlib

    sample = "".join(sized(i, 1000, 2000) for i in range(50))
    print(sized(1, 1000, 2000)[:600])
    print("...")
    print(f"{len(sample)} chars, zlib ratio {len(sample) / len(zlib.compress(sample.encode())):.2f}")
