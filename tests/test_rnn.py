"""Tests for llmfs.rnn: encoder, additive attention, the two decoders, training and evaluation helpers."""

import pytest
import torch

import llmfs
from llmfs.rnn import (
    AdditiveAttention,
    AttentionDecoder,
    Decoder,
    Encoder,
    accuracy_by_length,
    build_seq2seq,
    padding_mask,
    sequence_bits,
    train_seq2seq,
)
from llmfs.tasks import RecallTask

SMALL_TASK = RecallTask(n_symbols=6, min_len=1, max_len=7)


pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(task=SMALL_TASK, n=5, seed=0):
    return task.batch(n, generator=torch.Generator().manual_seed(seed))


def test_padding_mask():
    mask = padding_mask(torch.tensor([1, 3, 2]), 3)
    assert mask.tolist() == [[True, False, False], [True, True, True], [True, True, False]]


def test_encoder_shapes_and_final_state_ignores_padding():
    torch.manual_seed(0)
    encoder = Encoder(vocab_size=9, d_embed=4, d_hidden=6)
    batch = _batch()
    states, final = encoder(batch.src, batch.src_lengths)
    B, T = batch.src.shape
    assert states.shape == (B, T, 6) and final.shape == (B, 6)
    for b, n in enumerate(batch.src_lengths.tolist()):
        assert (states[b, n:] == 0).all()
        torch.testing.assert_close(final[b], states[b, n - 1])
        # The same sequence alone, without padding, gives the same final state.
        _, alone = encoder(batch.src[b : b + 1, :n], batch.src_lengths[b : b + 1])
        torch.testing.assert_close(alone[0], final[b])


def test_additive_attention_shapes_weights_and_mask():
    torch.manual_seed(0)
    attention = AdditiveAttention(d_query=5, d_key=7, d_attn=3)
    query, keys = torch.randn(4, 5), torch.randn(4, 6, 7)
    lengths = torch.tensor([6, 1, 3, 4])
    context, weights = attention(query, keys, padding_mask(lengths, 6))
    assert context.shape == (4, 7) and weights.shape == (4, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    assert (weights[~padding_mask(lengths, 6)] == 0).all()  # padding gets exactly zero weight
    assert torch.allclose(weights[1], torch.tensor([1.0, 0, 0, 0, 0, 0]))
    torch.testing.assert_close(context, torch.einsum("bt,btk->bk", weights, keys))
    # By hand: v^T tanh(W_q s + W_k h_j).
    features = torch.tanh((query @ attention.W_q.weight.T)[:, None, :] + keys @ attention.W_k.weight.T)
    scores = features @ attention.v.weight[0]
    torch.testing.assert_close(weights[0], torch.softmax(scores[0], -1))
    # Garbage at padding positions changes nothing.
    noisy = keys.clone()
    noisy[~padding_mask(lengths, 6)] = 100.0
    context2, weights2 = attention(query, noisy, padding_mask(lengths, 6))
    torch.testing.assert_close(context2, context)
    torch.testing.assert_close(weights2, weights)


def test_additive_attention_bad_shapes():
    attention = AdditiveAttention(4, 4, 2)
    with pytest.raises(ValueError):
        attention(torch.randn(2, 4), torch.randn(3, 5, 4))
    with pytest.raises(ValueError):
        attention(torch.randn(2, 1, 4), torch.randn(2, 5, 4))
    with pytest.raises(ValueError):
        attention(torch.randn(2, 4), torch.randn(2, 5, 4), torch.ones(2, 4, dtype=torch.bool))


@pytest.mark.parametrize("attention", [False, True])
def test_seq2seq_shapes(attention):
    torch.manual_seed(0)
    task = RecallTask(n_symbols=6, max_len=7)
    model = build_seq2seq(task.vocab_size, attention=attention, d_embed=4, d_hidden=8, d_attn=5)
    assert isinstance(model.decoder, AttentionDecoder if attention else Decoder)
    assert model.uses_attention is attention
    batch = _batch(task)
    B, T = batch.src.shape
    S = batch.tgt_in.shape[1]
    logits, weights = model(batch.src, batch.src_lengths, batch.tgt_in)
    assert logits.shape == (B, S, task.vocab_size)
    tokens, greedy_weights = model.greedy_decode(batch.src, batch.src_lengths, max_steps=4)
    assert tokens.shape == (B, 4) and tokens.dtype == torch.long
    if attention:
        assert weights.shape == (B, S, T) and greedy_weights.shape == (B, 4, T)
        torch.testing.assert_close(weights.sum(-1), torch.ones(B, S))
        pad = ~padding_mask(batch.src_lengths, T)
        assert (weights.masked_select(pad[:, None, :]) == 0).all()
    else:
        assert weights is None and greedy_weights is None


@pytest.mark.parametrize("attention", [False, True])
def test_greedy_decode_matches_teacher_forcing_on_its_own_output(attention):
    """Feeding the greedy output back with teacher forcing reproduces the same logits' argmax."""
    torch.manual_seed(1)
    task = RecallTask(n_symbols=6, max_len=7)
    model = build_seq2seq(task.vocab_size, attention=attention, d_embed=4, d_hidden=8, d_attn=5).eval()
    batch = _batch(task)
    tokens, greedy_weights = model.greedy_decode(batch.src, batch.src_lengths, max_steps=5)
    tgt_in = torch.cat([torch.full((tokens.shape[0], 1), llmfs.tasks.BOS), tokens[:, :-1]], dim=1)
    with torch.no_grad():
        logits, weights = model(batch.src, batch.src_lengths, tgt_in)
    assert torch.equal(logits.argmax(-1), tokens)
    if attention:
        torch.testing.assert_close(weights, greedy_weights)


def test_seq2seq_bad_inputs():
    model = build_seq2seq(9, attention=True, d_embed=4, d_hidden=8, d_attn=5)
    src = torch.randint(3, 9, (2, 4))
    with pytest.raises(ValueError):
        model(src, torch.tensor([4, 0]), src)
    with pytest.raises(ValueError):
        model(src, torch.tensor([4, 5]), src)
    with pytest.raises(ValueError):
        model(src, torch.tensor([4]), src)
    with pytest.raises(ValueError):
        model.greedy_decode(src, torch.tensor([4, 2]), max_steps=0)
    with pytest.raises(ValueError):
        train_seq2seq(model, RecallTask(), steps=0)


def _trained(attention, seed=0, steps=40):
    llmfs.set_seed(seed)
    task = RecallTask(n_symbols=4, max_len=5, mode="copy")
    model = build_seq2seq(task.vocab_size, attention=attention, d_embed=8, d_hidden=16, d_attn=16)
    history = train_seq2seq(model, task, steps=steps, batch_size=16, lr=1e-2, seed=seed, log_every=10, progress=False)
    return task, model, history


@pytest.mark.parametrize("attention", [False, True])
def test_training_reduces_loss_and_is_repeatable(attention):
    _, model, history = _trained(attention)
    assert history.steps == [10, 20, 30, 40] and len(history.step_loss) == 40
    assert history.train_loss[-1] < 0.8 * history.train_loss[0]
    assert history.tokens_seen[-1] > history.tokens_seen[0] > 0
    _, model2, history2 = _trained(attention)
    assert history2.step_loss == history.step_loss
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    _, _, history3 = _trained(attention, seed=1)
    assert history3.step_loss != history.step_loss


def test_accuracy_by_length():
    task, model, _ = _trained(True)
    acc = accuracy_by_length(model, task, [2, 4], n_per_length=32)
    assert set(acc) == {2, 4} and all(0.0 <= a <= 1.0 for a in acc.values())
    assert acc == accuracy_by_length(model, task, [2, 4], n_per_length=32)  # seeded: repeatable


def test_sequence_bits():
    assert sequence_bits(3, 8) == pytest.approx(9.0)
