"""Reward models on real (tiny or embedded) weights: no mocks."""

from __future__ import annotations

import math
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from langchain_darwin.inprocess.prefix import MIN_SHARED_SAVING, common_prefix
from langchain_darwin.rewards import (
    CallableReward,
    CivilityReward,
    EchoReward,
    FluencyReward,
    HFSequenceClassifierReward,
    RelevanceReward,
    RewardModel,
    SubstanceReward,
    ToneReward,
    WeightedReward,
    as_reward_model,
    default_reward,
)
from tests.tiny import tiny_tokenizer

EGG = [{"role": "user", "content": "How do I boil an egg?"}]
GOOD = (
    "Put the egg in a pot of cold water, bring it to a boil, then simmer for 9 minutes and "
    "cool it in cold water. Enjoy your egg!"
)
OFF_TOPIC = "The stock market closed slightly higher today after a quiet session."
RUDE = "Boil it, obviously. What a stupid question, figure it out yourself, idiot."
ANSWERS = ["Boil it.", GOOD, "", "Ten minutes in hot water, peel, salt, done. " * 3, RUDE]


# -- HF sequence-classifier reward (tiny random Llama) ----------------------------------------


@pytest.fixture(scope="module")
def tiny_rm(tiny_dirs: tuple[Path, Path]) -> HFSequenceClassifierReward:
    return HFSequenceClassifierReward(tiny_dirs[1], batch_size=2)


def test_hf_scores_are_finite_floats_one_per_answer(tiny_rm: HFSequenceClassifierReward) -> None:
    scores = tiny_rm.score(EGG, ANSWERS)
    assert len(scores) == len(ANSWERS)
    assert all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert len(set(scores)) > 1  # the random head still tells answers apart
    assert tiny_rm.score(EGG, []) == []


def test_hf_batching_matches_one_by_one_and_keeps_order(
    tiny_rm: HFSequenceClassifierReward,
) -> None:
    batched = tiny_rm.score(EGG, ANSWERS)
    single = [tiny_rm.score(EGG, [a])[0] for a in ANSWERS]
    assert batched == pytest.approx(single, abs=1e-4)
    reversed_scores = tiny_rm.score(EGG, ANSWERS[::-1])
    assert reversed_scores == pytest.approx(batched[::-1], abs=1e-4)


def test_hf_renders_with_the_rm_chat_template_and_counts_positions(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(tiny_dirs[1])
    conversation = [{"role": "system", "content": "Be brief."}, *EGG]
    text = rm.render(conversation, "Boil it.")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")  # bos string kept
    assert text.endswith("<|im_start|>assistant\nBoil it.<|im_end|>\n")
    assert rm.positions_scored == 0
    rm.score(conversation, ["Boil it.", GOOD])
    short, good = (
        rm.tokenizer(rm.render(conversation, a), add_special_tokens=False)["input_ids"]
        for a in ["Boil it.", GOOD]
    )
    # both rows are read whole, but the prompt they share is forwarded once
    shared = common_prefix(short, good)
    assert shared > MIN_SHARED_SAVING
    expected = len(short) + len(good) - shared
    assert rm.positions_scored == expected
    rm.score(conversation, ["Boil it."])
    assert rm.positions_scored > expected  # cumulative


def test_hf_model_object_matches_path(tiny_dirs, tiny_rm: HFSequenceClassifierReward) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(tiny_dirs[1])
    rm = HFSequenceClassifierReward(model, tokenizer=tiny_tokenizer())
    assert rm.score(EGG, ANSWERS) == pytest.approx(tiny_rm.score(EGG, ANSWERS), abs=1e-4)


def test_hf_loads_once_under_concurrent_first_use(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(tiny_dirs[1])
    results: list[list[float]] = []
    models: list[object] = []

    def work() -> None:
        results.append(rm.score(EGG, ANSWERS[:2]))
        models.append(rm.model)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == pytest.approx(results[0], abs=1e-5) for r in results)
    assert all(m is models[0] for m in models)


def test_hf_refuses_to_truncate(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(tiny_dirs[1], max_length=60)
    with pytest.raises(ValueError, match=r"answer 1 renders to \d+ reward-model tokens.*60"):
        rm.score(EGG, ["Boil it.", GOOD])
    assert rm.positions_scored == 0


def test_hf_default_max_length_is_the_models_context(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(tiny_dirs[1])
    rm.score(EGG, ["ok"])
    assert rm.max_length == 4096


def test_hf_missing_path_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="AutoModelForSequenceClassification"):
        HFSequenceClassifierReward(tmp_path / "no-such-rm")
    with pytest.raises(FileNotFoundError):
        HFSequenceClassifierReward("./typo")


def test_hf_hub_id_is_accepted_without_loading() -> None:
    rm = HFSequenceClassifierReward("org/some-reward-model")  # lazy: nothing is fetched yet
    assert rm.spec == "org/some-reward-model"


def test_hf_causal_lm_is_not_a_reward_model(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(tiny_dirs[0])
    with pytest.raises(ValueError, match="must be an AutoModelForSequenceClassification"):
        rm.score(EGG, ["Boil it."])
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[0])
    with pytest.raises(ValueError, match="must be an AutoModelForSequenceClassification"):
        HFSequenceClassifierReward(model, tokenizer=tiny_tokenizer())


def test_hf_tokenizer_without_chat_template(tiny_dirs) -> None:
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = None
    rm = HFSequenceClassifierReward(tiny_dirs[1], tokenizer=tokenizer)
    with pytest.raises(ValueError, match="no chat template"):
        rm.score(EGG, ["Boil it."])


def test_hf_pad_falls_back_to_eos(tiny_dirs, tmp_path: Path) -> None:
    folder = tmp_path / "rm-no-pad"
    shutil.copytree(tiny_dirs[1], folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.config.pad_token_id = None
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = None
    rm = HFSequenceClassifierReward(model, tokenizer=tokenizer, batch_size=4)
    scores = rm.score(EGG, ANSWERS)
    assert model.config.pad_token_id == tokenizer.eos_token_id == tokenizer.pad_token_id
    assert scores == pytest.approx([rm.score(EGG, [a])[0] for a in ANSWERS], abs=1e-4)


# -- callable and weighted --------------------------------------------------------------------


def test_callable_reward_sees_original_conversation_and_converts_numbers() -> None:
    seen: list[list[dict[str, str]]] = []

    def length(conversation, answer):
        seen.append(list(conversation))
        return len(answer)  # an int

    assert CallableReward(length).score(EGG, ["ab", "", "abcd"]) == [2.0, 0.0, 4.0]
    assert seen[0] == EGG and len(seen) == 3
    np_reward = CallableReward(lambda c, a: np.float32(0.25) * len(a))
    scores = np_reward.score(EGG, ["abcd"])
    assert scores == [1.0] and type(scores[0]) is float


def test_callable_reward_rejects_bad_results() -> None:
    with pytest.raises(TypeError, match="must return a number"):
        CallableReward(lambda c, a: "high").score(EGG, ["x"])
    # NaN passes through; the search ranks it last (see test_graph).
    assert math.isnan(CallableReward(lambda c, a: float("nan")).score(EGG, ["x"])[0])
    with pytest.raises(TypeError):
        CallableReward(42)  # type: ignore[arg-type]


LENGTH = CallableReward(lambda c, a: len(a))
VOWELS = CallableReward(lambda c, a: sum(ch in "aeiou" for ch in a))


def test_weighted_sum_arithmetic() -> None:
    answers = ["hello there", "xyz", ""]
    combined = 0.5 * LENGTH + VOWELS * 2
    assert isinstance(combined, WeightedReward)
    manual = [
        0.5 * x + 2 * y
        for x, y in zip(LENGTH.score(EGG, answers), VOWELS.score(EGG, answers), strict=True)
    ]
    assert combined.score(EGG, answers) == pytest.approx(manual)
    assert [w for w, _ in (LENGTH + VOWELS + LENGTH).terms] == [1.0, 1.0, 1.0]  # stays flat
    scaled = 3 * combined
    assert [w for w, _ in scaled.terms] == [1.5, 6.0]
    assert scaled.score(EGG, answers) == pytest.approx([3 * m for m in manual])
    assert WeightedReward.of(combined) is combined
    assert WeightedReward.of(LENGTH).terms == [(1.0, LENGTH)]
    assert combined.score(EGG, []) == []


def test_weighted_counts_positions_of_hf_terms(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(tiny_dirs[1])
    combined = rm + 0.1 * LENGTH
    combined.score(EGG, ["Boil it."])
    assert combined.positions_scored == rm.positions_scored > 0


# -- resolving reward specs --------------------------------------------------------------------


def test_as_reward_model_coercions(tiny_dirs) -> None:
    default = as_reward_model(None)
    assert isinstance(default, WeightedReward)
    kinds = [(w, type(r)) for w, r in default.terms]
    assert kinds[:2] == [(1.5, RelevanceReward), (0.5, CivilityReward)]
    weighted = default_reward(relevance_weight=2.0, tone_weight=0.25)
    assert [w for w, _ in weighted.terms][:2] == [2.0, 0.25]
    assert {SubstanceReward, FluencyReward, EchoReward} <= {k for _, k in kinds}
    no_models = default_reward(relevance_weight=0.0, fluency_weight=0.0)
    assert {type(r) for _, r in no_models.terms} == {CivilityReward, SubstanceReward, EchoReward}
    with pytest.raises(ValueError, match="constant"):
        default_reward(0, 0, 0, 0, 0)
    assert as_reward_model(LENGTH) is LENGTH
    by_str = as_reward_model(str(tiny_dirs[1]))
    assert isinstance(by_str, HFSequenceClassifierReward)
    assert as_reward_model(tiny_dirs[1]) is by_str  # shared between chat models
    fn = as_reward_model(lambda c, a: 1)
    assert isinstance(fn, CallableReward) and fn.score(EGG, ["x"]) == [1.0]
    mix = as_reward_model([(0.5, LENGTH), (2, lambda c, a: 1.0)])
    assert isinstance(mix, WeightedReward) and mix.score(EGG, ["abcd"]) == [4.0]
    assert isinstance(mix, RewardModel)


@pytest.mark.parametrize("bad", [42, 1.5, {"reward": "x"}, [], [LENGTH], [(1.0, LENGTH, 2)]])
def test_as_reward_model_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="reward"):
        as_reward_model(bad)


# -- offline default (VADER is light; MiniLM is embedded) -------------------------------------


def test_tone_reward_prefers_polite() -> None:
    good, rude, empty = ToneReward().score(EGG, [GOOD, RUDE, ""])
    assert good > 0 > rude and empty == 0.0


def test_civility_only_takes_away_and_one_hostile_sentence_is_enough() -> None:
    cheerful = "Great question! I'm so happy to help, what a wonderful day!"
    good, rude, cheer, insult, empty = CivilityReward().score(
        EGG, [GOOD, RUDE, cheerful, GOOD + " Only an idiot would ask that.", ""]
    )
    assert good == cheer == empty == 0.0  # cheerfulness earns nothing
    assert rude < 0 and insult < 0


def test_echo_is_the_share_of_trigrams_copied_from_the_question() -> None:
    question = [{"role": "user", "content": "How long should I boil an egg for breakfast?"}]
    restated = "How long should I boil an egg for breakfast? Great question, happy to help!"
    quoting = "Boil an egg for nine minutes, then cool it in cold water."
    good, echo, quote, short, empty = EchoReward().score(
        question, [GOOD, restated, quoting, "Nine minutes.", ""]
    )
    assert good == 0.0 and short == 0.0 and empty == 0.0  # nothing copied, or too short
    assert -1.0 <= echo < quote < 0.0  # a restatement copies most of itself
    assert quote == pytest.approx(-2 / 10)  # 12 words, 10 trigrams: boil-an-egg, an-egg-for
    with pytest.raises(ValueError):
        EchoReward(n=0)


def test_substance_counts_new_content_words_and_saturates() -> None:
    restated = "How do I boil an egg? Great question, happy to help!"
    stub = "Put the egg in a pot of cold"
    good, echo, short, long_, empty = SubstanceReward(saturation=5).score(
        EGG, [GOOD, restated, stub, GOOD * 5, ""]
    )
    assert echo < good and short < good and empty == 0.0
    assert good == long_ == 1.0  # past the saturation, length earns nothing
    assert SubstanceReward().score(EGG, ["boil an egg, egg, EGG"]) == [0.0]  # all asked words
    cheer = SubstanceReward().score(EGG, ["Great, wonderful, happy, stupid idiot!"])
    assert cheer == [0.0]  # sentiment words are tone, not substance
    with pytest.raises(ValueError):
        SubstanceReward(saturation=0)


def test_fluency_reads_the_policy_log_likelihood(tiny_dirs) -> None:
    from langchain_darwin.inprocess.likelihood import answer_log_likelihoods
    from langchain_darwin.inprocess.models import load_policy

    fluency = FluencyReward(
        str(tiny_dirs[0]), floor=-50.0, max_answer_tokens=None, prefix_cache=False
    )
    scores = fluency.score(EGG, [GOOD, "", "Boil it."])
    assert scores[1] == -50.0 and all(math.isfinite(s) for s in scores)
    model, tokenizer = load_policy(str(tiny_dirs[0]))
    batched = answer_log_likelihoods(model, tokenizer, EGG, [GOOD, "", "Boil it."], batch_size=2)
    single = answer_log_likelihoods(model, tokenizer, EGG, ["Boil it."])[0]
    assert batched[1].tokens == 0 and batched[1].mean is None
    assert batched[2].total == pytest.approx(single.total, abs=1e-3)  # padding changes nothing
    assert scores[2] == pytest.approx(single.mean, abs=1e-4)
    assert batched[0].tokens == len(tokenizer(GOOD, add_special_tokens=False)["input_ids"])
    capped = answer_log_likelihoods(model, tokenizer, EGG, [GOOD], max_answer_tokens=5)[0]
    assert capped.tokens == 5
    # a search is charged what the term read: the rendered conversation, then each answer
    from langchain_darwin.inprocess.engine import TransformersPolicy

    prompt = len(TransformersPolicy(model, tokenizer).render(EGG))
    used = fluency.score_with_usage(EGG, [GOOD, "", "Boil it."])
    assert used.scores == scores
    assert used.positions == 2 * prompt + batched[0].tokens + batched[2].tokens


def test_fluency_cache_matches_a_full_reading_and_reads_only_new_tokens(tiny_dirs) -> None:
    cached = FluencyReward(str(tiny_dirs[0]), floor=-50.0, max_answer_tokens=None)
    plain = FluencyReward(
        str(tiny_dirs[0]), floor=-50.0, max_answer_tokens=None, prefix_cache=False
    )
    words = GOOD.split()
    for period in range(1, 4):
        grown = " ".join(words[: 5 * period])
        beams = [
            grown,  # a beam one period longer each time
            grown + " Then serve it.",  # a replaced beam: its donor's text, then its own
            GOOD[: 23 * period],  # cut mid-word: re-tokenized, the last tokens differ
            "",
        ]
        full = plain.score_with_usage(EGG, beams)
        read = cached.score_with_usage(EGG, beams)
        assert read.scores == pytest.approx(full.scores, abs=1e-4)
        if period > 1:  # the prompt and the earlier periods are not read again
            assert 0 < read.positions < full.positions / 2
        again = cached.score_with_usage(EGG, beams)  # the same answers: nothing new to read
        assert again.positions == 0 and again.scores == pytest.approx(read.scores, abs=1e-6)
    shorter = [" ".join(words[:5]), GOOD[:30]]  # inside answers read before: no reading
    read = cached.score_with_usage(EGG, shorter)
    assert read.scores == pytest.approx(plain.score(EGG, shorter), abs=1e-4)
    # the oldest rows go once the cache is full: a tiny cache reads an answer again
    big = FluencyReward(str(tiny_dirs[0]), max_answer_tokens=None)
    tiny = FluencyReward(str(tiny_dirs[0]), max_answer_tokens=None, cache_mb=1e-6)
    for scorer in (big, tiny):
        scorer.score(EGG, ["Boil it."])
        scorer.score(EGG, ["Fry it in a pan with butter."])
    assert big.score_with_usage(EGG, ["Boil it."]).positions == 0
    assert tiny.score_with_usage(EGG, ["Boil it."]).positions > 0
    with pytest.raises(ValueError, match="cache_mb"):
        FluencyReward(cache_mb=0)


def test_prefix_cached_scoring_matches_full_scoring_and_reads_only_new_tokens(tiny_dirs) -> None:
    cached = HFSequenceClassifierReward(str(tiny_dirs[1]))
    plain = HFSequenceClassifierReward(str(tiny_dirs[1]), prefix_cache=False)
    conversation = [{"role": "user", "content": "How do I boil an egg?"}]
    answers = ["Put it", "Put it in water", "Be rude"]
    for period in range(3):
        answers = [a + " and boil it" for a in answers]
        before = cached.positions_scored
        assert cached.score(conversation, answers) == pytest.approx(
            plain.score(conversation, answers), abs=1e-4
        )
        if period:
            # a period costs the new text plus the template tail, not the whole answer again
            assert cached.positions_scored - before < (plain.positions_scored // (period + 1)) / 2
    before = cached.positions_scored
    cached.score(conversation, [answers[1]])  # a copied (donor) answer: one position
    assert cached.positions_scored - before == 1


def test_replaced_beams_rows_leave_even_when_the_survivors_share_answer_text(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(str(tiny_dirs[1]))
    conversation = [{"role": "user", "content": "How do I boil an egg?"}]
    rm.score(conversation, ["Put it in a pot", "Be rude", "Use a kettle"])
    # beams 2 and 3 were replaced by copies of beam 1: every new row shares its answer text
    rm.score(conversation, ["Put it in a pot of water", "Put it in a pot and", "Put it in a pot."])
    assert len(rm._store.rows) == 3
    assert all(b"rude" not in rm.tokenizer.decode(list(k)).encode() for k in rm._store.rows)


def test_rows_of_one_call_split_into_batches_all_stay_cached(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(str(tiny_dirs[1]), batch_size=2)
    conversation = [{"role": "user", "content": "How do I boil an egg?"}]
    answers = ["Put it in a pot", "Be rude", "Use a kettle"]
    rm.score(conversation, answers)
    assert len(rm._store.rows) == 3
    before = rm.positions_scored
    rm.score(conversation, answers)  # all cached: one position each
    assert rm.positions_scored - before == 3


def test_prefix_cache_keeps_only_rows_a_later_period_can_extend(tiny_dirs) -> None:
    rm = HFSequenceClassifierReward(str(tiny_dirs[1]))
    conversation = [{"role": "user", "content": "How do I boil an egg?"}]
    answers = ["Put it", "Put it in water", "Be rude"]
    for _ in range(3):
        answers = [a + " and boil it" for a in answers]
        rm.score(conversation, answers)
        # the previous period's rows were continued from: only this period's are kept
        assert len(rm._store.rows) == len(answers)
    # a beam that was replaced (its lineage gone) is dropped at once
    rm.score(conversation, [answers[0] + " now", answers[2] + " now"])
    assert len(rm._store.rows) == 2
    # a lone row may be another search's: it survives one call, then goes
    other = [{"role": "user", "content": "Name a colour."}]
    rm.score(other, ["Blue."])
    assert len(rm._store.rows) == 3
    rm.score(other, ["Blue, like the sky."])
    assert len(rm._store.rows) == 1
