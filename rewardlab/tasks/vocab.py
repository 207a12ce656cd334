"""Vocabulary of the built-in gold task: topics, sentence templates, sentiment words, filler, lexicon.

Every word that a generated prompt or response can contain is listed here, and
:func:`check_vocabulary` proves the properties the gold reward relies on:

* sentiment words are in the VADER lexicon (Hutto & Gilbert 2014) with the listed sign;
* every other word (templates, nouns, filler, prompt wording) is *absent* from the lexicon, so
  a response's valence comes from its sentiment words alone;
* topic keywords are disjoint across topics and from the generic nouns, so relevance is unambiguous;
* each prompt phrase names exactly one topic.

The lexicon is read straight from ``vader_lexicon.txt`` in the installed ``vaderSentiment``
package folder (found with ``importlib.util.find_spec``, without importing the module, whose
import pulls in ``requests``).
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WORD_RE = re.compile(r"[a-z]+")


def words(text: str) -> list[str]:
    """Lower-case alphabetic tokens of ``text``: the unit the gold reward counts (``"I'm"`` → ``i``, ``m``)."""
    return WORD_RE.findall(text.lower())


@dataclass(frozen=True)
class Topic:
    """A prompt topic: ``phrase`` goes into the prompt, ``name`` is the token that identifies it,
    ``nouns`` are the singular nouns a response uses to talk about it (after "the")."""

    name: str
    phrase: str
    nouns: tuple[str, ...]

    @property
    def keywords(self) -> frozenset[str]:
        """On-topic words: the name plus the nouns."""
        return frozenset((self.name, *self.nouns))


TOPICS: tuple[Topic, ...] = (
    Topic("beach", "the beach", ("beach", "sand", "shore", "tide", "surf", "pier", "lighthouse", "boardwalk")),
    Topic("coffee", "coffee", ("coffee", "espresso", "latte", "mug", "barista", "cappuccino", "grinder", "roast")),
    Topic("gardening", "gardening", ("garden", "soil", "compost", "greenhouse", "shovel", "tomato", "flowerbed", "hedge")),
    Topic("city", "life in the city", ("city", "subway", "skyline", "downtown", "skyscraper", "sidewalk", "taxi", "apartment")),
    Topic("cooking", "cooking at home", ("kitchen", "recipe", "oven", "skillet", "stew", "dough", "saucepan", "spatula")),
    Topic("jazz", "jazz", ("jazz", "saxophone", "trumpet", "piano", "melody", "drummer", "bassline", "quartet")),
    Topic("hiking", "hiking", ("trail", "summit", "backpack", "campsite", "ridge", "canyon", "compass", "trailhead")),
    Topic("cats", "cats", ("cat", "kitten", "tabby", "catnip", "whisker", "collar", "litterbox", "furball")),
    Topic("winter", "winter", ("winter", "snow", "snowfall", "sled", "mitten", "icicle", "fireplace", "snowman")),
    Topic("football", "football", ("football", "stadium", "goalkeeper", "referee", "jersey", "kickoff", "striker", "halftime")),
    Topic("reading", "reading novels", ("paperback", "hardcover", "chapter", "bookshelf", "author", "bookmark", "library", "plot")),
    Topic("train", "travelling by train", ("train", "railway", "station", "carriage", "conductor", "timetable", "platform", "locomotive")),
)
"""The twelve built-in topics; a task uses the first ``n_topics``. Keywords never carry VADER valence."""

GENERIC_NOUNS: tuple[str, ...] = ("idea", "place", "thing", "detail", "moment", "experience", "subject", "setting")
"""Nouns that are neither on- nor off-topic (relevance-neutral)."""

POSITIVE_ADJECTIVES: tuple[str, ...] = (
    "wonderful", "lovely", "delightful", "pleasant", "great", "excellent", "beautiful", "amazing", "nice",
    "fun", "charming", "fantastic", "perfect", "brilliant", "enjoyable", "cheerful", "superb", "peaceful",
    "exciting", "lively", "good", "fine", "solid", "fresh", "calm", "interesting", "relaxing", "special",
    "sweet", "comforting",
)
NEGATIVE_ADJECTIVES: tuple[str, ...] = (
    "terrible", "awful", "horrible", "boring", "dull", "disappointing", "annoying", "unpleasant", "dreadful",
    "miserable", "ugly", "nasty", "gloomy", "depressing", "bad", "frustrating", "painful", "messy", "weird",
    "odd", "strange", "lame", "poor", "stressful", "dirty", "noisy", "exhausting", "sad", "pathetic",
    "disgusting",
)
POSITIVE_VERBS: tuple[str, ...] = ("love", "enjoy", "adore", "admire", "appreciate", "like")
NEGATIVE_VERBS: tuple[str, ...] = ("hate", "dislike", "dread", "despise", "resent")

# Sentence templates. Slots: {n} first noun, {m} second noun, {a} sentiment adjective, {v} sentiment verb.
# Each template has exactly one sentiment slot and one or two noun slots; no article precedes {a}.
TEMPLATES: tuple[str, ...] = (
    "The {n} is {a}.",
    "I think the {n} is {a}.",
    "I {v} the {n}.",
    "The {n} always seems {a} to me.",
    "There is something {a} about the {n}.",
    "Every time I see the {n}, it feels {a}.",
    "The {n} and the {m} are both {a}.",
    "People often say the {n} is {a}.",
    "My experience with the {n} was {a}.",
    "I would call the {n} {a}.",
    "I {v} everything about the {n}.",
    "Most days I {v} the {n} and the {m}.",
    "To me the {n} looks {a} next to the {m}.",
)
FILLER_PREFIXES: tuple[str, ...] = (
    "In a way,", "As far as I can tell,", "If you ask me,", "Generally speaking,", "You know,",
    "At the end of the day,", "Put simply,", "All things considered,", "More or less,",
    "I would say that",
)
FILLER_SENTENCES: tuple[str, ...] = (
    "That is about all there is to it.",
    "Anyway, that is how I see it.",
    "Let me put it another way.",
    "I could go on about this for a while.",
    "That is my answer for now.",
    "Some people see it differently, of course.",
    "It depends on the person, I suppose.",
    "There is more to say, but that is the gist.",
)
PROMPT_TEMPLATES: tuple[str, ...] = (
    "Tell me about {p}.",
    "What do you think of {p}?",
    "How do you feel about {p}?",
    "Describe {p} for me.",
    "What is your opinion of {p}?",
    "What comes to mind when you think of {p}?",
    "Can you say something about {p}?",
    "Give me your take on {p}.",
)
PROMPT_FORMAT = "Question: {q}\nAnswer:"
"""Every prompt ends with ``Answer:`` so that ``prompt + " " + response`` reads as one text."""


def _slot_free_words(template: str) -> list[str]:
    return words(re.sub(r"\{[a-z]\}", " ", template))


def lexicon_path() -> Path:
    """Path of ``vader_lexicon.txt`` inside the installed ``vaderSentiment`` package (module not imported)."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'vaderSentiment' is not installed; the gold task reads its vader_lexicon.txt")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "vader_lexicon.txt"
        if path.is_file():
            return path
    raise FileNotFoundError(f"vader_lexicon.txt not found in {list(spec.submodule_search_locations)}")


@lru_cache(maxsize=1)
def vader_lexicon() -> dict[str, float]:
    """VADER token → mean valence (−4 … +4), for the purely alphabetic lower-case tokens.

    File format: ``token<TAB>mean<TAB>std<TAB>[10 ratings]``. A token listed twice keeps its last
    value, as VADER's own ``make_lex_dict`` does (e.g. ``ok``: 1.6 then 1.2 → 1.2).
    """
    lexicon: dict[str, float] = {}
    for line in lexicon_path().read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        token = fields[0].strip()
        if WORD_RE.fullmatch(token):
            lexicon[token] = float(fields[1])
    return lexicon


def template_words() -> set[str]:
    """Every fixed (non-slot) word of templates, filler and prompts."""
    fixed: set[str] = set()
    for text in (*TEMPLATES, *FILLER_PREFIXES, *FILLER_SENTENCES, *PROMPT_TEMPLATES, PROMPT_FORMAT):
        fixed.update(_slot_free_words(text))
    for topic in TOPICS:
        fixed.update(w for w in words(topic.phrase) if w != topic.name)
    return fixed


@lru_cache(maxsize=1)
def check_vocabulary() -> None:
    """Raise ``ValueError`` naming every word that breaks the properties listed in the module docstring."""
    lex = vader_lexicon()
    problems: list[str] = []
    for sign, group in ((+1, POSITIVE_ADJECTIVES + POSITIVE_VERBS), (-1, NEGATIVE_ADJECTIVES + NEGATIVE_VERBS)):
        for w in group:
            if w not in lex or lex[w] * sign <= 0:
                problems.append(f"sentiment word {w!r} has valence {lex.get(w)} (sign {sign:+d} expected)")
    keyword_owner: dict[str, str] = {}
    for topic in TOPICS:
        for w in topic.keywords:
            if w in keyword_owner:
                problems.append(f"keyword {w!r} in topics {keyword_owner[w]!r} and {topic.name!r}")
            keyword_owner[w] = topic.name
        named = [keyword_owner.get(w) for w in words(topic.phrase)]
        if topic.name not in words(topic.phrase) or any(o not in (None, topic.name) for o in named):
            problems.append(f"phrase {topic.phrase!r} must name topic {topic.name!r} and no other")
    neutral = set(keyword_owner) | set(GENERIC_NOUNS) | template_words()
    for w in sorted(neutral):
        if w in lex:
            problems.append(f"word {w!r} must be neutral but has VADER valence {lex[w]}")
    for w in sorted(template_words() | set(GENERIC_NOUNS)):
        if w in keyword_owner and not any(w in words(t.phrase) for t in TOPICS):
            problems.append(f"fixed word {w!r} is a keyword of topic {keyword_owner[w]!r}")
    sentiment = set(POSITIVE_ADJECTIVES + NEGATIVE_ADJECTIVES + POSITIVE_VERBS + NEGATIVE_VERBS)
    for w in sorted(sentiment & neutral):
        problems.append(f"word {w!r} is both a sentiment word and a neutral word")
    for t in TEMPLATES:
        slots = re.findall(r"\{([a-z])\}", t)
        if slots.count("n") != 1 or slots.count("a") + slots.count("v") != 1 or set(slots) - {"n", "m", "a", "v"}:
            problems.append(f"template {t!r} needs one {{n}}, at most one {{m}}, and one {{a}} or {{v}}")
    if problems:
        raise ValueError("gold-task vocabulary is inconsistent:\n  " + "\n  ".join(problems))
