"""generate(): greedy and sampled decoding, with and without the KV cache."""

import pytest
import torch

import llmfs

from llmfs import zoo
from llmfs.generate import generate
from llmfs.model import Transformer


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Transformer(zoo.tiny("qwen3-0.6b"))


def test_appends_new_tokens(model):
    idx = torch.randint(0, 512, (2, 5))
    out = generate(model, idx, max_new_tokens=7)
    assert out.shape == (2, 12) and torch.equal(out[:, :5], idx)


def test_greedy_is_the_argmax_of_a_full_forward(model):
    idx = torch.randint(0, 512, (1, 5))
    out = generate(model, idx, max_new_tokens=1)
    assert out[0, -1] == model(idx)[0, -1].argmax()


def test_cache_and_no_cache_give_the_same_tokens(model):
    idx = torch.randint(0, 512, (3, 4))
    assert torch.equal(generate(model, idx, 30, use_cache=True), generate(model, idx, 30, use_cache=False))
    sampled = [generate(model, idx, 30, temperature=0.8, top_k=20, use_cache=flag,
                        generator=torch.Generator().manual_seed(1)) for flag in (True, False)]
    assert torch.equal(*sampled)


def test_top_k_one_is_greedy(model):
    idx = torch.randint(0, 512, (1, 4))
    sampled = generate(model, idx, 10, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, generate(model, idx, 10))


def test_restores_training_mode(model):
    model.train()
    generate(model, torch.zeros(1, 2, dtype=torch.long), 2)
    assert model.training


def test_generating_past_the_context_is_an_error(model):
    with pytest.raises(ValueError, match="would exceed context_length=256; ask for at most 6 new tokens"):
        generate(model, torch.zeros(1, 250, dtype=torch.long), max_new_tokens=7)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_new_tokens=-1), "max_new_tokens must be a non-negative integer"),
    (dict(max_new_tokens=2, temperature=-0.1), "temperature must be a finite number >= 0"),
    (dict(max_new_tokens=2, top_k=0), "top_k must be None or a positive integer"),
    (dict(max_new_tokens=2, use_cache="no"), "use_cache must be True or False"),
    (dict(max_new_tokens=2, use_cache=1), "use_cache must be True or False"),
])
def test_bad_arguments(model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(model, torch.zeros(1, 2, dtype=torch.long), **kwargs)


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0, "0.5", True])
def test_bad_temperature_is_refused_and_the_mode_restored(temperature):
    model = Transformer(zoo.tiny("gpt2-124m")).train()
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        generate(model, torch.zeros(1, 3, dtype=torch.long), 2, temperature=temperature)
    assert model.training


def test_tiny_temperature_samples_the_most_likely_token():
    torch.manual_seed(0)
    model = Transformer(zoo.tiny("gpt2-124m"))
    idx = torch.randint(0, 512, (2, 5))
    greedy = generate(model, idx, 4)
    assert torch.equal(generate(model, idx, 4, temperature=1e-30), greedy)


def test_mode_is_restored_when_the_forward_pass_raises():
    model = Transformer(zoo.tiny("gpt2-124m", context_length=8)).train()
    with pytest.raises(ValueError, match="token ids must lie in"):
        generate(model, torch.full((1, 3), 10_000), 2)
    assert model.training


@pytest.mark.parametrize("shape", [(1, 0), (0, 3)])
def test_empty_prompt_or_batch_is_refused(shape):
    model = Transformer(zoo.tiny("gpt2-124m"))
    with pytest.raises(ValueError, match="at least one sequence of at least one token"):
        generate(model, torch.zeros(shape, dtype=torch.long), 2)


def test_decoding_builds_no_autograd_graph(model):
    """generate runs under no_grad: recording a graph for every decode step costs time and memory."""
    grad_enabled = []
    hook = model.register_forward_pre_hook(lambda module, args: grad_enabled.append(torch.is_grad_enabled()))
    try:
        generate(model, torch.randint(0, 512, (1, 4)), 3)
        generate(model, torch.randint(0, 512, (1, 4)), 3, use_cache=False)
    finally:
        hook.remove()
    assert grad_enabled and not any(grad_enabled) and torch.is_grad_enabled()


def test_decode_layout_keeps_values_shapes_ties_and_tokens():
    """Input-major weights: same shapes and values, tied weights still one Parameter, same greedy tokens."""
    torch.manual_seed(0)
    tied = llmfs.Transformer(llmfs.zoo.tiny("gpt2-124m"))
    untied = llmfs.Transformer(llmfs.zoo.tiny("llama3-8b"))
    for model in (tied, untied):
        model.eval()
        prompt = torch.randint(0, model.config.vocab_size, (2, 5))
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        logits, tokens = model(prompt), generate(model, prompt, 6)
        params = dict(model.named_parameters())
        assert llmfs.decode_layout(model) is model
        for name, p in model.named_parameters():
            assert p is params[name] and torch.equal(p, before[name])
        linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        assert linears and all(m.weight.t().is_contiguous() for m in linears)
        torch.testing.assert_close(model(prompt), logits, atol=1e-5, rtol=1e-5)
        assert torch.equal(generate(model, prompt, 6), tokens)
        llmfs.decode_layout(model)  # a second call changes nothing
        assert all(m.weight.t().is_contiguous() for m in linears)
    assert tied.lm_head.weight is tied.token_embedding.weight


def test_decode_layout_model_still_trains():
    torch.manual_seed(0)
    model = llmfs.decode_layout(llmfs.Transformer(llmfs.zoo.tiny("llama3-8b")))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(0, model.config.vocab_size, (2, 9))
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_decode_layout_rejects_what_is_not_a_module():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        llmfs.decode_layout("model")
