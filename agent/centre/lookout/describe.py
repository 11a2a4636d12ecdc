"""A Korean or English description into lookout slots, with a curated word list.

Why a word list and not a sentence encoder: embeddings do not bind colours to garments (a
multilingual encoder swapped upper and lower in a quarter of Korean queries, see
docs/lookout.md).  Here a colour binds to the garment after it ("빨간 상의", "red jacket"),
or, when none follows in the same clause, to the garment before it ("상의는 빨강").  Every
word is accounted for: a slot, a known filler ("입은", "wearing"), a note (a colour of a
bag, a gender: no slot for it) or an unknown word; nothing is dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["Described", "describe"]

_COLOURS: Final[dict[str, tuple[str, ...]]] = {
    "red": ("빨간", "빨강", "빨간색", "빨강색", "붉은", "적색", "레드", "red"),
    "orange": ("주황", "주황색", "오렌지", "orange"),
    "yellow": ("노란", "노랑", "노란색", "노랑색", "황색", "옐로", "yellow"),
    "green": ("초록", "초록색", "녹색", "연두", "연두색", "카키", "green", "khaki"),
    "blue": ("파란", "파랑", "파란색", "청색", "블루", "blue"),
    "navy": ("남색", "곤색", "감색", "네이비", "navy"),
    "skyblue": ("하늘색", "skyblue"),
    "purple": ("보라", "보라색", "자주", "자주색", "purple", "violet"),
    "pink": ("분홍", "분홍색", "핑크", "pink"),
    "brown": ("갈색", "밤색", "고동색", "브라운", "brown"),
    "beige": ("베이지", "베이지색", "beige", "tan"),
    "black": ("검은", "검정", "검정색", "검은색", "까만", "까만색", "블랙", "black"),
    "white": ("흰", "흰색", "하얀", "하얀색", "화이트", "white"),
    "grey": ("회색", "쥐색", "그레이", "grey", "gray"),
    "silver": ("은색", "은회색", "실버", "silver"),
}
_UPPER: Final = (
    "상의", "윗옷", "옷", "티셔츠", "티", "셔츠", "점퍼", "잠바", "자켓", "재킷", "코트", "후드",
    "후드티", "스웨터", "니트", "조끼", "패딩", "블라우스", "외투", "교복", "top", "shirt",
    "t-shirt", "tshirt", "jacket", "coat", "hoodie", "sweater", "jumper", "vest", "blouse",
    "parka", "clothes",
)  # fmt: skip
_LOWER: Final = (
    "하의", "바지", "치마", "스커트", "반바지", "레깅스", "슬랙스", "bottom", "bottoms",
    "trousers", "pants", "skirt", "shorts", "leggings",
)  # fmt: skip
_JEANS: Final = ("청바지", "jeans", "denim")  # lower, and blue unless a colour is given
_SIZE: Final[dict[str, tuple[str, ...]]] = {
    "child": (
        "초등학생", "아이", "어린이", "아동", "유아", "꼬마", "어린아이", "미취학", "여자아이",
        "남자아이", "여아", "남아", "child",
        "kid", "boy", "girl", "children",
    ),
    "adult": ("성인", "어른", "adult", "man", "woman", "grown-up"),
}  # fmt: skip
_ITEMS: Final[dict[str, tuple[str, ...]]] = {
    "backpack": ("가방", "백팩", "책가방", "배낭", "backpack", "bag", "schoolbag", "rucksack"),
    "handbag": ("핸드백", "손가방", "handbag", "purse"),
    "umbrella": ("우산", "양산", "umbrella"),
    "suitcase": ("캐리어", "여행가방", "suitcase", "luggage"),
}
_RIDES: Final[dict[str, tuple[str, ...]]] = {
    "bicycle": ("자전거", "bicycle", "bike"),
    "motorcycle": ("오토바이", "스쿠터", "motorcycle", "scooter", "motorbike"),
}
_VEHICLES: Final[dict[str, tuple[str, ...]]] = {
    "car": ("차", "승용차", "자동차", "택시", "suv", "car", "taxi"),
    "truck": ("트럭", "화물차", "truck", "lorry"),
    "bus": ("버스", "bus"),
}
# Words that carry no slot but are understood (so they are not "unknown").
_FILLERS: Final = frozenset(
    (
        "입은", "입고", "착용", "착용한", "메고", "멘", "맨", "든", "들고", "쓰고", "쓴",
        "신은", "신고",
        "타고", "탄", "타는", "있는", "있음", "색", "계열", "정도", "그리고", "및", "사람", "차림",
        "a", "an", "the", "with", "wearing", "in", "and", "carrying", "on", "of", "riding", "has",
        "person", "dressed", "wears", "holding",
    )
)  # fmt: skip
_NO_SLOT: Final[dict[str, str]] = dict.fromkeys(
    ("남자", "여자", "남성", "여성", "male", "female"),
    "no slot for gender (size is child/adult only)",
) | dict.fromkeys(
    ("모자", "운동화", "신발", "구두", "hat", "cap", "shoes", "sneakers"),
    "no slot for headwear or shoes",
)
_PARTICLES: Final = ("에다", "에는", "하고", "이랑", "랑", "에", "을", "를", "이", "가", "은", "는",
                     "의", "와", "과", "도", "색", "으로", "로")  # fmt: skip
_PHRASES: Final = (
    ("light blue", "skyblue"), ("sky blue", "skyblue"), ("dark blue", "navy"),
    ("navy blue", "navy"), ("t shirt", "tshirt"), ("school bag", "schoolbag"),
)  # fmt: skip
_CLAUSE: Final = re.compile(r"[,;.!?/\n]+")
_WORD: Final = re.compile(r"[^\s()\"'+]+")


def _lexicon() -> dict[str, tuple[str, str]]:
    lex: dict[str, tuple[str, str]] = {}
    for kind, table in (
        ("colour", _COLOURS), ("size", _SIZE), ("item", _ITEMS), ("ride", _RIDES),
        ("vehicle", _VEHICLES),
    ):  # fmt: skip
        lex |= {w: (kind, value) for value, words in table.items() for w in words}
    lex |= dict.fromkeys(_UPPER, ("upper", "upper"))
    lex |= dict.fromkeys(_LOWER, ("lower", "lower"))
    lex |= dict.fromkeys(_JEANS, ("jeans", "lower"))
    lex |= dict.fromkeys(_FILLERS, ("filler", ""))
    lex |= {w: ("noslot", why) for w, why in _NO_SLOT.items()}
    return lex


_LEX: Final = _lexicon()


def _lookup(word: str) -> tuple[str, str] | None:
    """The meaning of a word, a Korean particle or two stripped off its end if need be."""
    for cand in (word, word.rstrip("s") if word.isascii() and len(word) > 3 else word):
        if cand in _LEX:
            return _LEX[cand]
    for p in _PARTICLES:
        if word.endswith(p) and len(word) > len(p):
            stem = word[: -len(p)]
            found = _LEX.get(stem) or _lookup_once(stem)
            if found is not None:
                return found
    return None


def _lookup_once(stem: str) -> tuple[str, str] | None:
    for p in _PARTICLES:
        if stem.endswith(p) and stem[: -len(p)] in _LEX:
            return _LEX[stem[: -len(p)]]
    return None


@dataclass
class Described:
    """Slots as :class:`~agent.control.lookout.LookoutArgs` fields, and what did not fit."""

    slots: dict[str, Any] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # words not in the list
    notes: list[str] = field(default_factory=list)  # understood, but no slot takes them

    def _add(self, slot: str, value: str) -> None:
        have = self.slots.setdefault(slot, [])
        if value not in have:
            have.append(value)


class _Clause:
    def __init__(self, out: Described) -> None:
        self.out = out
        self.pending: list[str] = []  # colour words waiting for their garment
        self.last: str | None = None  # the slot of the last garment in this clause
        self.jeans_open = False  # jeans seen; blue unless a colour comes for them

    def colour_target(self, slot: str) -> None:
        for c in self.pending:
            self.out._add(slot, c)
        self.pending = []
        self.last = slot

    def word(self, raw: str, meaning: tuple[str, str] | None) -> None:
        out = self.out
        if meaning is None:
            out.unknown.append(raw)
            return
        kind, value = meaning
        if kind == "colour":
            self.pending.append(value)
        elif kind in ("upper", "lower"):
            self.colour_target("upper" if kind == "upper" else "lower")
        elif kind == "jeans":
            given = bool(self.pending)
            self.colour_target("lower")
            if not given:
                out._add("lower", "blue")
        elif kind == "vehicle":
            out.slots["cls"] = "vehicle"
            out.slots["vehicle_type"] = value
            self.colour_target("vehicle_colour")
        elif kind == "item":
            out._add("items", value)
            for c in self.pending:
                out.notes.append(f"{c} ({raw}): items have no colour slot")
            self.pending = []
        elif kind == "ride":
            out.slots["riding"] = value
        elif kind == "size":
            out.slots["size"] = value
        elif kind == "noslot":
            out.notes.append(f"{raw}: {value}")
            for c in self.pending:
                out.notes.append(f"{c} ({raw}): {value}")
            self.pending = []

    def end(self) -> None:
        if self.pending and self.last is not None:
            self.colour_target(self.last)  # "상의는 빨강": the garment came first
        for c in self.pending:
            self.out.notes.append(f"{c}: a colour without a garment; say upper or lower")


def describe(text: str) -> Described:
    """Slots from a description; see the module's doc for the rules."""
    out = Described()
    low = text.lower()
    for phrase, word in _PHRASES:
        low = low.replace(phrase, word)
    for part in _CLAUSE.split(low):
        clause = _Clause(out)
        for raw in _WORD.findall(part):
            clause.word(raw, _lookup(raw))
        clause.end()
    if out.slots.get("cls") == "vehicle":
        # a vehicle's description: garments said along with it are not for the vehicle
        for slot in ("upper", "lower", "items", "size", "riding"):
            if slot in out.slots:
                out.notes.append(f"{slot}: left out, the lookout is for a vehicle")
                del out.slots[slot]
    return out
