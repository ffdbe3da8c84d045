"""Multi-token prediction: target shifts, the loss, drafts equal to the full forward, self-speculative decoding
equal to the main model's greedy decoding, trained heads that accept, and bad input."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import llmfs
from llmfs import mtp, speculative
from llmfs.mtp import (MTP, MTPModel, expected_acceptance, main_forward, mtp_loss, mtp_speculative_generate,
                       mtp_targets, train_run)

FORMS = ("sequential", "parallel")
SAMPLING_SHARPEN, SAMPLING_DRAWS = 10.0, 400


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(form="sequential", depths=3, vocab=16, seed=0, sharpen=1.0):
    """A tiny random Llama-style main model with `depths` MTP heads; the shared head scaled to peak the logits."""
    torch.manual_seed(seed)
    config = llmfs.zoo.tiny("llama3-8b", vocab_size=vocab, context_length=64)
    model = MTPModel(config, MTP(depths=depths, form=form))
    with torch.no_grad():
        model.main.lm_head.weight.mul_(sharpen)
    return model


def _cyclic_batch(batch, length, period, generator):
    """Sequences 0, 1, ..., period-1, 0, 1, ... from random starting points: (B, length + 1) ids."""
    start = torch.randint(0, period, (batch, 1), generator=generator)
    return (start + torch.arange(length + 1)) % period


def _train_on_cycles(form, depths=2, period=7, steps=60, seed=0):
    """A tiny MTP model trained with the MTP loss on cyclic sequences, where every future token is predictable."""
    model = _model(form, depths=depths, vocab=period, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        ids = _cyclic_batch(8, 16, period, generator)
        loss = model.loss(ids[:, :-1], ids[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_targets_shift_by_depth_by_hand():
    # window t0 .. t5 = 10 11 12 13 14 15: inputs t0..t4, next-token targets t1..t5
    ids = torch.tensor([[10, 11, 12, 13, 14, 15]])
    targets = ids[:, 1:]  # (1, 5)
    # depth 1 at position i predicts t_{i+2}: positions 0..3 -> t2..t5; depth 2: positions 0..2 -> t3..t5
    assert mtp_targets(targets, 1).tolist() == [[12, 13, 14, 15]]
    assert mtp_targets(targets, 2).tolist() == [[13, 14, 15]]


@pytest.mark.parametrize("form", FORMS)
def test_loss_equals_hand_computed_cross_entropies(form):
    model = _model(form, depths=2, vocab=16)
    ids = torch.randint(0, 16, (2, 9), generator=torch.Generator().manual_seed(1))
    inputs, targets = ids[:, :-1], ids[:, 1:]  # (2, 8) each: T = 8
    logits, depth_logits = model(inputs)
    T = 8
    next_token = F.cross_entropy(logits.reshape(-1, 16), targets.reshape(-1))
    by_hand = []
    for k in (1, 2):  # depth k at position i predicts t_{i+1+k} = ids[:, i+1+k], for i = 0 .. T-1-k
        scored = depth_logits[k - 1][:, : T - k]  # (2, T-k, V)
        wanted = torch.stack([ids[:, i + 1 + k] for i in range(T - k)], dim=1)  # (2, T-k)
        by_hand.append(F.cross_entropy(scored.reshape(-1, 16), wanted.reshape(-1)))
    total, nt, parts = mtp_loss(logits, depth_logits, targets, weight=0.3, return_parts=True)
    torch.testing.assert_close(nt, next_token)
    torch.testing.assert_close(torch.stack(parts), torch.stack(by_hand))
    torch.testing.assert_close(total, next_token + 0.3 * (by_hand[0] + by_hand[1]) / 2)
    torch.testing.assert_close(model.loss(inputs, targets), total)


def test_forward_shapes_and_main_logits_unchanged():
    for form, width in (("sequential", lambda T, k: T - k), ("parallel", lambda T, k: T)):
        model = _model(form, depths=3)
        idx = torch.randint(0, 16, (2, 10))
        logits, depth_logits = model(idx)
        torch.testing.assert_close(logits, model.main(idx), rtol=0, atol=0)
        assert [tuple(d.shape) for d in depth_logits] == [(2, width(10, k), 16) for k in (1, 2, 3)]


def test_main_hidden_state_is_before_the_final_norm():
    model = _model()
    idx = torch.randint(0, 16, (1, 7))
    logits, hidden = main_forward(model.main, idx)
    torch.testing.assert_close(model.main.lm_head(model.main.final_norm(hidden)), logits)


def test_sequential_depth_reads_previous_depth_and_next_token():
    """Depth 2 at position i from depth 1's state there and Emb(t_{i+2}), written out by hand."""
    model = _model("sequential", depths=2)
    idx = torch.randint(0, 16, (1, 9), generator=torch.Generator().manual_seed(3))
    T = idx.shape[1]
    _, hidden = main_forward(model.main, idx)
    positions = torch.arange(T)
    states, h = [], hidden
    for k, module in enumerate(model.heads, start=1):
        emb = model.main.token_embedding(idx[:, k:])  # Emb(t_{i+k}) for i = 0 .. T-1-k
        x = module.project(torch.cat((module.hidden_norm(h[:, : T - k]), module.token_norm(emb)), -1))
        h = module.block(x, positions[: T - k])
        states.append(model.main.lm_head(module.norm(h)))
    _, depth_logits = model(idx)
    for by_hand, got in zip(states, depth_logits):
        torch.testing.assert_close(got, by_hand)


def test_baseline_heads_do_not_train_the_trunk():
    model = _model(depths=2)
    idx = torch.randint(0, 16, (2, 9))
    model.loss(idx[:, :-1], idx[:, 1:], trunk_gradient=False).backward()
    plain = _model(depths=2)
    llmfs.lm_loss(plain.main(idx[:, :-1]), idx[:, 1:]).backward()
    for (name, p), q in zip(model.main.named_parameters(), plain.main.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert all(p.grad is not None for p in model.heads.parameters())


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_equals_main_generate(form, seed):
    model = _model(form, depths=3, seed=seed, sharpen=8.0)
    prompt = torch.randint(0, 16, (1, 1 + 4 * seed), generator=torch.Generator().manual_seed(seed))
    expected = llmfs.generate(model.main, prompt, 30)
    for depths in (1, 2, 3):
        got, stats = mtp_speculative_generate(model, prompt, 30, depths=depths, return_stats=True)
        assert torch.equal(got, expected), (form, depths)
        assert stats.accepted == sum(stats.accepted_per_round) and len(stats.accepted_per_round) == stats.rounds
        emitted = 1 + sum(a + 1 for a in stats.accepted_per_round)  # prefill token + each round's tokens
        assert emitted >= 30 and emitted - 30 <= 1


def _rounds(prompt_length, stats):
    """The length of the output before each round's drafting: prompt + first token + earlier rounds' tokens."""
    lengths, length = [], prompt_length + 1
    for accepted in stats.accepted_per_round:
        lengths.append(length)
        length += accepted + 1
    return lengths


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("trained", [False, True])
def test_drafts_equal_full_forward_on_known_tokens_and_drafts(form, trained):
    """Each round's depth-k draft equals the argmax of depth k's logits in a full (uncached) forward over the
    accepted tokens followed by the earlier drafts: the cached drafter keeps the right states and positions."""
    model = _train_on_cycles(form, depths=3, steps=40) if trained else _model(form, depths=3, sharpen=8.0)
    vocab = model.config.vocab_size
    prompt = torch.randint(0, vocab, (1, 5), generator=torch.Generator().manual_seed(4))
    out, stats = mtp_speculative_generate(model, prompt, 40, return_stats=True)
    checked = 0
    for length, drafts in zip(_rounds(5, stats), stats.drafts):
        seq = torch.cat((out[:, :length], torch.tensor([drafts[:-1]], dtype=out.dtype)), dim=1)
        with torch.no_grad():
            _, depth_logits = model(seq)
        for k, token in enumerate(drafts, start=1):
            assert int(depth_logits[k - 1][0, length - 2].argmax()) == token, (length, k)
            checked += 1
    assert checked == stats.drafted


@pytest.mark.parametrize("form", FORMS)
def test_trained_heads_accept_predictable_tokens(form):
    """On cyclic sequences every future token is predictable; a wrong target shift would make the heads
    predict the wrong offset and be rejected every time."""
    model = _train_on_cycles(form, depths=2)
    prompt = torch.tensor([[3, 4, 5]])
    out, stats = mtp_speculative_generate(model, prompt, 40, return_stats=True)
    assert out[0].tolist() == [(3 + i) % 7 for i in range(43)]
    print(form, stats.acceptance_by_depth)
    assert stats.acceptance_rate > 0.9 and stats.tokens_per_round > 2.5


def _chi_square(sharpen, draws, seed=0):
    """Chi-square of the first three tokens sampled at temperature 1 against the main model's exact joint
    distribution (vocabulary 3: 27 outcomes; cells expecting fewer than 5 are pooled). Returns (chi2, dof)."""
    model = _model("sequential", depths=2, vocab=3, sharpen=sharpen)
    prompt = torch.tensor([[1, 2]])
    with torch.no_grad():
        p1 = torch.softmax(model.main(prompt)[0, -1], -1)  # (3,)
        seconds = torch.cat((prompt.expand(3, 2), torch.arange(3)[:, None]), dim=1)  # (3, 3)
        p2 = torch.softmax(model.main(seconds)[:, -1], -1)  # (3, 3): first, second
        thirds = torch.cat((seconds.repeat_interleave(3, 0), torch.arange(3).repeat(3)[:, None]), dim=1)  # (9, 4)
        p3 = torch.softmax(model.main(thirds)[:, -1], -1).view(3, 3, 3)  # first, second, third
    exact = (p1[:, None, None] * p2[:, :, None] * p3).flatten().double()  # (27,)
    generator = torch.Generator().manual_seed(seed)
    counts = torch.zeros(27, dtype=torch.float64)
    for _ in range(draws):
        out = mtp_speculative_generate(model, prompt, 3, temperature=1.0, generator=generator)
        counts[out[0, 2] * 9 + out[0, 3] * 3 + out[0, 4]] += 1
    keep = exact * draws >= 5
    expected = torch.cat(((exact * draws)[keep], (exact * draws)[~keep].sum().view(1)))
    observed = torch.cat((counts[keep], counts[~keep].sum().view(1)))
    chi2 = float(((observed - expected) ** 2 / expected.clamp(min=1e-9)).sum())
    return chi2, int(keep.sum())  # dof: cells kept + the pooled cell - 1


def _wrong_rule(p, q, drafted, generator=None):
    """A plausible mistake: on rejection sample from the main model's p, not from the residual max(0, p - q)."""
    n, _ = speculative.accept_or_correct(p, q, drafted, generator)
    row = p[n] if n < drafted.shape[0] else p[-1]
    return n, torch.multinomial(row, 1, generator=generator)


def test_sampling_follows_main_distribution(monkeypatch):
    """Temperature 1: the first three tokens follow the main model's joint distribution; a plausible wrong rule
    (on rejection, sample from p instead of the residual max(0, p - q)) is caught by the same test."""
    chi2, dof = _chi_square(SAMPLING_SHARPEN, SAMPLING_DRAWS)
    print(f"exact rule: chi2 = {chi2:.1f} on {dof} dof")
    threshold = dof + 4 * (2 * dof) ** 0.5  # about the 99.9% quantile for these dof
    assert chi2 < threshold
    monkeypatch.setattr(mtp, "accept_or_correct", _wrong_rule)
    wrong, _ = _chi_square(SAMPLING_SHARPEN, SAMPLING_DRAWS)
    print(f"wrong rule: chi2 = {wrong:.1f}")
    assert wrong > 2 * threshold


@pytest.mark.parametrize("form", FORMS)
def test_expected_acceptance_by_hand(form):
    model = _model(form, depths=2, sharpen=8.0)
    idx = torch.randint(0, 16, (2, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits, depth_logits = model(idx)
    T = 12
    for k in (1, 2):
        main_at, depth_at = logits[:, k:], depth_logits[k - 1][:, : T - k]  # position i + k vs position i
        greedy = (main_at.argmax(-1) == depth_at.argmax(-1)).float().mean()
        overlap = [float(torch.minimum(torch.softmax(main_at[b, i], -1), torch.softmax(depth_at[b, i], -1)).sum())
                   for b in range(2) for i in range(T - k)]
        assert expected_acceptance(model, idx, 0.0)[k - 1] == pytest.approx(float(greedy))
        assert expected_acceptance(model, idx, 1.0)[k - 1] == pytest.approx(sum(overlap) / len(overlap))
    with pytest.raises(llmfs.ConfigError, match="temperature"):
        expected_acceptance(model, idx, -1.0)


def test_train_run_smoke():
    """A few steps of the experiment: every field is filled and in range (the numbers are the notebook's job)."""
    run = train_run(seed=0, with_mtp_loss=True, steps=3, eval_batches=1, prompts=1, new_tokens=6)
    assert run.with_mtp_loss and 0 < run.val_loss < 6 and len(run.val_depth_loss) == len(run.agreement) == 2
    assert all(0 <= a <= 1 for a in run.agreement + run.expected_acceptance + [run.acceptance_rate])
    assert 1 <= run.tokens_per_round <= 3
    with pytest.raises(llmfs.ConfigError, match="with_mtp_loss"):
        train_run(with_mtp_loss="yes")


def test_restores_train_mode_and_zero_tokens():
    model = _model(depths=2)
    model.train()
    prompt = torch.tensor([[1, 2]])
    assert torch.equal(mtp_speculative_generate(model, prompt, 0), prompt)
    mtp_speculative_generate(model, prompt, 5)
    assert model.training and model.main.training


def test_settings_validation():
    with pytest.raises(llmfs.ConfigError, match="depths"):
        MTP(depths=0)
    with pytest.raises(llmfs.ConfigError, match="depths"):
        MTP(depths=True)
    with pytest.raises(llmfs.ConfigError, match="form.*sequential"):
        MTP(form="paralel")
    with pytest.raises(llmfs.ConfigError, match="loss_weight"):
        MTP(loss_weight=float("nan"))
    with pytest.raises(llmfs.ConfigError, match="loss_weight"):
        MTP(loss_weight=-0.1)
    with pytest.raises(llmfs.ConfigError, match="layer"):
        MTP(layer="block")
    config = llmfs.zoo.tiny("llama3-8b", vocab_size=16)
    bad_layer = dataclasses.replace(config.layers[0], attention=llmfs.Attention(n_heads=5))
    with pytest.raises(llmfs.ConfigError, match="layer: attention.*n_heads=5"):
        MTPModel(config, MTP(layer=bad_layer))
    with pytest.raises(TypeError, match="ModelConfig"):
        MTPModel("llama", MTP())
    with pytest.raises(TypeError, match="MTP"):
        MTPModel(config, {"depths": 2})


def test_decoding_bad_input():
    model = _model(depths=2)
    prompt = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="depths.*\\[1, 2\\]"):
        mtp_speculative_generate(model, prompt, 5, depths=3)
    with pytest.raises(ValueError, match="depths"):
        mtp_speculative_generate(model, prompt, 5, depths=0)
    with pytest.raises(ValueError, match="context_length"):
        mtp_speculative_generate(model, prompt, 63)
    with pytest.raises(ValueError, match="shape \\(1, T\\)"):
        mtp_speculative_generate(model, torch.tensor([[1], [2]]), 5)
    with pytest.raises(ValueError, match="temperature"):
        mtp_speculative_generate(model, prompt, 5, temperature=-1.0)
    with pytest.raises(TypeError, match="MTPModel"):
        mtp_speculative_generate(model.main, prompt, 5)
    with pytest.raises(ValueError, match="weight"):
        mtp_loss(*model(prompt), prompt, weight=float("inf"))
    with pytest.raises(ValueError, match="depth 2 needs windows of more than 2"):
        mtp_loss(*model(prompt), prompt)


def test_windowed_heads_are_refused_for_decoding():
    config = llmfs.zoo.tiny("llama3-8b", vocab_size=16)
    windowed = dataclasses.replace(config.layers[0],
                                   attention=dataclasses.replace(config.layers[0].attention, window=4))
    model = MTPModel(config, MTP(layer=windowed))
    with pytest.raises(ValueError, match="cannot roll back"):
        mtp_speculative_generate(model, torch.tensor([[1, 2]]), 5)


def test_depth_one_matches_transformers_mtp_layer():
    """Our sequential module with DeepSeek V3 weights equals transformers' MtpLayer (fp32, 1e-5) given the same h₀.

    transformers feeds the main model's post-final-norm state as h₀ and chains each depth's post-norm output;
    we follow the paper (the brief): h₀ before the final norm, depths chained before their norm. So depth 1 is
    compared on the same h₀; depth 2 differs by design.
    """
    pytest.importorskip("transformers")
    import copy

    from test_deepseek import VARIANTS, tiny_hf_deepseek_v3
    from transformers.modeling_layers import MtpModel

    from llmfs.hf import _family, from_transformers

    hf = tiny_hf_deepseek_v3(n_layers=2, **VARIANTS["moe"])
    hf.config.num_mtp_layers = 1
    theirs = MtpModel(hf, 1).eval()
    with torch.no_grad():  # ones would hide a norm loaded into the wrong place
        for name, p in theirs.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.5 * torch.randn(p.shape))
    family = _family(hf.config)
    one_layer = copy.deepcopy(hf.config)
    one_layer.num_hidden_layers, one_layer.first_k_dense_replace = 1, 0  # the MTP block is a MoE layer
    block_config = family.config(one_layer)
    ours = MTPModel(from_transformers(hf), MTP(depths=1, layer=block_config.layers[0])).eval()
    layer, state, d = theirs.layers[0], theirs.state_dict(), hf.config.hidden_size
    as_main_layer = {k: v for k, v in hf.state_dict().items() if not k.startswith("model.layers.")}
    as_main_layer.update({"model.layers.0." + k[len("layers.0.mtp_block."):]: v for k, v in state.items()
                          if k.startswith("layers.0.mtp_block.")})
    converted = family.weights(as_main_layer, block_config)
    module = ours.heads[0]
    with torch.no_grad():
        module.block.load_state_dict({k[len("blocks.0."):]: v for k, v in converted.items()
                                      if k.startswith("blocks.0.")})
        module.token_norm.weight.copy_(state["layers.0.enorm.weight"])
        module.hidden_norm.weight.copy_(state["layers.0.hnorm.weight"])
        W = state["layers.0.eh_proj.weight"]  # (d, 2d) on [Emb; h] (the checkpoints' order); ours reads [h; Emb]
        module.project.weight.copy_(torch.cat((W[:, d:], W[:, :d]), dim=1))
        module.norm.weight.copy_(state["layers.0.post_norm.weight"])
    for norm in (module.token_norm, module.hidden_norm, module.norm):
        norm.eps = layer.enorm.variance_epsilon
    idx = torch.randint(2, hf.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    T = idx.shape[1]
    with torch.no_grad():
        _, h0 = main_forward(ours.main, idx)  # (2, T, d)
        _, depth_logits = ours(idx)
        hidden = theirs.forward_layer(0, h0[:, : T - 1], torch.arange(T - 1).expand(2, -1), None,
                                      input_ids=idx[:, 1:])
        expected = theirs._project_to_logits(hidden)  # (2, T - 1, V)
    torch.testing.assert_close(depth_logits[0], expected, rtol=0, atol=1e-5)
