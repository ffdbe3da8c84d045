"""Appendix A's scaffolding: the phrase text, the trained target/draft pair, and its exercises (which must fail
on wrong answers)."""

import math

import pytest
import torch

import llmfs
from llmfs import bench, course, exercises
from llmfs.drafts import PairSizes, PhraseText, phrase_model, trained_pair
from llmfs.exercises import appa


def test_phrase_text_shares_out_the_vocabulary_and_follows_its_rule():
    text = PhraseText(vocab_size=40, n_phrases=8, seed=3)
    tokens = torch.cat(text.phrases)
    assert sorted(tokens.tolist()) == list(range(40)) and min(len(p) for p in text.phrases) >= 2
    stream = text.stream(2000, seed=1)
    starts = {int(p[0]): i for i, p in enumerate(text.phrases)}
    position, i = 0, starts[int(stream[0])]
    while position + len(text.phrases[i]) < len(stream):  # walk the stream phrase by phrase
        assert torch.equal(stream[position:position + len(text.phrases[i])], text.phrases[i])
        position += len(text.phrases[i])
        following = starts[int(stream[position])]
        assert following in text.successors[i].tolist()
        i = following
    assert PhraseText(vocab_size=40, n_phrases=8, seed=3).successors.equal(text.successors)


def test_entropy_is_the_loss_of_the_true_rule():
    text = PhraseText(vocab_size=30, n_phrases=6, successor_probs=(0.5, 0.5))
    stream = text.stream(60000, seed=0)
    ends = {int(p[-1]) for p in text.phrases}
    share_of_ends = sum(int(t) in ends for t in stream[:-1]) / (len(stream) - 1)
    assert math.isclose(text.entropy(), share_of_ends * math.log(2), rel_tol=0.03)
    assert PhraseText(successor_probs=(1.0,)).entropy() == 0.0


@pytest.mark.parametrize("kwargs, field", [
    (dict(vocab_size=0), "vocab_size"), (dict(n_phrases=1), "n_phrases"), (dict(n_phrases=40), "n_phrases"),
    (dict(successor_probs=(0.5, 0.6)), "successor_probs"),
    (dict(successor_probs=(float("nan"), 1.0)), "successor_probs"),
    (dict(successor_probs=[1.0]), "successor_probs"), (dict(n_phrases=True), "n_phrases"),
])
def test_phrase_text_refuses_bad_settings(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PhraseText(**kwargs)


def test_trained_pair_learns_the_text_and_the_draft_agrees():
    sizes = PairSizes(target_d_model=32, target_layers=2, target_steps=60, target_lr=1e-2,
                      draft_d_model=32, draft_layers=1, draft_steps=60, draft_lr=1e-2)
    target, draft, text = trained_pair(sizes, PhraseText(vocab_size=32, n_phrases=8))
    assert not target.training and target.config.n_layers == 2 and draft.config.n_layers == 1
    val = text.batches(8, 32, 2, seed=9)
    assert llmfs.evaluate(target, val) < text.entropy() + 0.5 < math.log(32)
    prompt = text.stream(4, seed=2)[None]
    ids, stats = llmfs.speculative_generate(target, draft, prompt, 40, k=3, return_stats=True)
    assert torch.equal(ids, llmfs.generate(target, prompt, 40)) and stats.acceptance_rate > 0.5
    with pytest.raises(ValueError, match="sizes"):
        trained_pair("huge")


def test_phrase_model_is_llama_style():
    model = phrase_model(PhraseText(), d_model=64, n_layers=3)
    assert model.config.n_layers == 3 and model.config.vocab_size == 64 and model.config.n_heads == 2


def test_speculative_bench_is_registered():
    assert "speculative" in bench.BENCHMARKS


def test_the_appendix_has_prefix_appA():
    assert course.exercise_prefix("chapters/speculative_decoding") == "appA"


WRONG = {
    "appA.accept_token": lambda p, q, x, u: bool(u < float(q[x] / p[x])),  # ratio upside down
    "appA.residual": lambda p, q: (p - q).abs() / (p - q).abs().sum(),  # |p - q| instead of max(0, p - q)
    "appA.acceptance_rate": lambda p, q: float(torch.maximum(p, q).sum() - 1),  # the total variation, not 1 minus it
    "appA.tokens_per_round": lambda alpha, k: float(sum(alpha ** i for i in range(1, k + 1))),  # no bonus token
    "appA.break_even_draft_cost": lambda alpha, k: float(sum(alpha ** i for i in range(k + 1)) / k),  # no -1
    "appA.best_k": lambda alpha, cost, k_max: k_max,  # always draft the most
}


@pytest.mark.parametrize("exercise_id", sorted(WRONG))
def test_appendix_exercises_pass_their_reference_and_fail_a_wrong_answer(exercise_id):
    exercise = exercises.get(exercise_id)
    assert exercises.verdict(exercise_id, exercise.reference).passed
    assert exercises.verdict(exercise_id, exercise.reference, seed=exercises.GRADING_SEED).passed
    assert exercises.verdict(exercise_id, WRONG[exercise_id]).status == "failed"


def test_appendix_exercise_ids():
    assert {i for i in exercises.ids() if i.startswith("appA.")} == set(WRONG)
    assert appa.tokens_per_round(0.5, 2) == llmfs.expected_tokens_per_round(0.5, 2)


def test_mtp_heads_leave_the_target_unchanged_and_draft_for_it():
    text = PhraseText(vocab_size=32, n_phrases=8)
    llmfs.set_seed(0)
    target = phrase_model(text, d_model=32, n_layers=2)
    llmfs.train(target, text.batches(16, 32, 60), steps=60, lr=1e-2, weight_decay=0.0, progress=False)
    before = {name: p.detach().clone() for name, p in target.named_parameters()}
    from llmfs.drafts import train_mtp_heads

    model = train_mtp_heads(target.eval(), text, depths=2, steps=60)
    assert all(torch.equal(p, before[name]) for name, p in target.named_parameters())
    prompt = text.stream(4, seed=2)[None]
    ids, stats = llmfs.mtp_speculative_generate(model, prompt, 40, return_stats=True)
    assert torch.equal(ids, llmfs.generate(target, prompt, 40)) and stats.acceptance_rate > 0.5
