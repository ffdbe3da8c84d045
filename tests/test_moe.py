"""Mixture of experts: routers, the two dispatches, balancing, capacity, active counts, and bad settings."""

import pytest
import torch

from llmfs import Attention, LayerSpec, MLP, ModelConfig, Transformer, count_parameters, train, zoo
from llmfs.moe import MoE, MixtureOfExperts
from llmfs.settings import ConfigError
from llmfs.training import auxiliary_loss

D = 32
VARIANTS = {
    "softmax renormalised": MoE(8, 2, 24),
    "softmax plain + shared": MoE(8, 2, 24, n_shared=2, norm_topk=False),
    "deepseek": MoE(16, 4, 24, router="sigmoid", n_group=4, topk_group=2, routed_scaling=2.5, n_shared=1),
    "capacity": MoE(8, 2, 24, capacity_factor=0.75),
    "plain gelu top-1": MoE(4, 1, 24, gated=False, activation="gelu"),
}


def layer(settings, seed=0):
    torch.manual_seed(seed)
    moe = MixtureOfExperts(D, settings.resolved(D))
    with torch.no_grad():
        moe.router.weight.normal_(0, 0.5)
        moe.selection_bias.normal_(0, 0.02)
    return moe


@pytest.mark.parametrize("name", VARIANTS)
def test_sorted_dispatch_equals_the_loop(name):
    moe = layer(VARIANTS[name])
    x = torch.randn(3, 40, D)
    sorted_out = moe(x)
    moe.dispatch = "loop"
    assert torch.allclose(sorted_out, moe(x), atol=1e-6)


@pytest.mark.parametrize("name", [*VARIANTS, "gpt-oss"])
def test_padded_one_bmm_dispatch_equals_the_loop(name):
    settings = VARIANTS.get(name) or MoE(8, 2, 24, router_bias=True, expert_bias=True, swiglu_limit=1.0)
    moe = layer(settings)
    with torch.no_grad():
        for p in moe.experts.parameters():
            p.normal_(0, 0.3)  # nonzero expert biases, gates past the clamp
    moe.experts.batched = True  # the GPU's path, here on the CPU
    x = torch.randn(3, 40, D)
    batched = moe(x)
    moe.dispatch = "loop"
    assert torch.allclose(batched, moe(x), atol=1e-5)
    moe.experts.batched, moe.dispatch = False, "sorted"
    assert torch.allclose(batched, moe(x), atol=1e-5)


def test_sorted_dispatch_equals_the_loop_when_one_expert_takes_most_tokens():
    moe = layer(MoE(8, 2, 24))
    with torch.no_grad():
        moe.selection_bias[3] = 10.0  # every token picks expert 3
    x = torch.randn(2, 50, D)
    out = moe(x)
    assert moe.load[3] == 100
    moe.dispatch = "loop"
    assert torch.allclose(out, moe(x), atol=1e-6)


def test_layer_equals_a_sum_over_chosen_experts_written_out():
    moe = layer(MoE(8, 2, 24, norm_topk=False))
    x = torch.randn(5, D)
    probs = torch.softmax(x @ moe.router.weight.T, -1)
    top = probs.topk(2, -1)
    expected = torch.stack([sum(top.values[n, j] * moe.experts.one(int(top.indices[n, j]), x[n:n + 1])[0]
                                for j in range(2)) for n in range(5)])
    assert torch.allclose(moe(x), expected, atol=1e-6)


def test_renormalised_weights_sum_to_one_and_scaling_multiplies_them():
    x = torch.randn(20, D)
    weights = layer(MoE(8, 3, 24))(x) is not None and layer(MoE(8, 3, 24)).route(x)[0]
    assert torch.allclose(weights.sum(-1), torch.ones(20))
    scaled = layer(MoE(8, 3, 24, router="sigmoid", routed_scaling=2.5)).route(x)[0]
    assert torch.allclose(scaled.sum(-1), torch.full((20,), 2.5))


def test_group_limited_routing_stays_inside_the_best_groups():
    moe = layer(MoE(16, 4, 24, router="sigmoid", n_group=4, topk_group=2))
    _, experts, _, _ = moe.route(torch.randn(200, D))
    groups_used = torch.tensor([len(set((row // 4).tolist())) for row in experts])
    assert groups_used.max() <= 2


def test_selection_bias_changes_the_choice_but_not_the_weights():
    moe = layer(MoE(8, 2, 24, router="sigmoid", norm_topk=False))
    x = torch.randn(30, D)
    with torch.no_grad():
        moe.selection_bias.zero_()
        moe.selection_bias[5] = 5.0
    weights, experts, scores, _ = moe.route(x)
    assert (experts == 5).any(-1).all()
    assert torch.allclose(weights, scores.gather(1, experts))  # the weight is the unbiased score


def test_capacity_drops_assignments_beyond_each_experts_capacity():
    moe = layer(MoE(8, 2, 24, capacity_factor=0.5))
    x = torch.randn(64, D)
    _, experts, _, _ = moe.route(x)
    keep = moe.kept(experts)
    capacity = 8  # ceil(0.5 * 64 * 2 / 8)
    kept_per_expert = torch.bincount(experts[keep], minlength=8)
    assert kept_per_expert.max() <= capacity and keep.sum() < keep.numel()


def test_balancing_losses_are_recorded_in_training_only():
    moe = layer(MoE(8, 2, 24, aux_loss_weight=0.01, z_loss_weight=0.001))
    moe(torch.randn(10, D))
    assert moe.auxiliary_loss is not None and moe.auxiliary_loss.requires_grad
    balanced = MoE(4, 1, 24, aux_loss_weight=1.0).resolved(D)
    uniform = MixtureOfExperts(D, balanced)
    with torch.no_grad():
        uniform.router.weight.zero_()  # equal probabilities; ties pick one expert: f = (1, 0, 0, 0)
    uniform(torch.randn(8, D))
    assert uniform.auxiliary_loss.item() == pytest.approx(1.0)  # E * sum f_i P_i = 4 * 1 * 1/4
    evaluation = layer(MoE(8, 2, 24, aux_loss_weight=0.01)).eval()
    evaluation(torch.randn(10, D))
    assert evaluation.auxiliary_loss is None


def test_bias_update_raises_underloaded_experts():
    moe = layer(MoE(4, 1, 24, router="sigmoid", bias_update_rate=0.1))
    with torch.no_grad():
        moe.selection_bias.zero_()
        moe.selection_bias[0] = 1.0  # expert 0 takes everything
    moe(torch.randn(16, D))
    moe.after_optimizer_step()
    assert torch.allclose(moe.selection_bias, torch.tensor([0.9, 0.1, 0.1, 0.1]))
    assert moe.load_since_step.sum() == 0


def tiny_moe_config(**moe):
    spec = LayerSpec(Attention(4), ffn=MoE(8, 2, 32, **moe), positions="rope")
    return ModelConfig(vocab_size=50, context_length=32, d_model=D, norm="rmsnorm", layers=(spec,) * 2)


def test_train_adds_the_auxiliary_loss_and_updates_the_bias():
    config = tiny_moe_config(router="sigmoid", aux_loss_weight=0.01, bias_update_rate=0.01)
    torch.manual_seed(0)
    model = Transformer(config)
    data = [(torch.randint(0, 50, (4, 16)), torch.randint(0, 50, (4, 16)))]
    train(model, data, steps=3, progress=False)
    biases = [block.ffn.sublayer.selection_bias for block in model.blocks]
    assert all(b.abs().sum() > 0 for b in biases)
    assert isinstance(auxiliary_loss(model), torch.Tensor)
    assert auxiliary_loss(torch.nn.Linear(2, 2)) == 0.0


def test_active_parameters_leave_out_unchosen_experts_exactly():
    config = tiny_moe_config(n_shared=1)
    count = count_parameters(config)
    model = Transformer(config)
    expert = 3 * 32 * D
    assert count.total == sum(p.numel() for p in model.parameters())
    assert count.total - count.active == 2 * (8 - 2) * expert
    dense = count_parameters(config.replace(layers=(LayerSpec(Attention(4), MLP(64), positions="rope"),) * 2))
    assert dense.active == dense.total


def test_config_prints_and_tiny_keeps_routing():
    assert "MoE(8 × 32, top-2, softmax)" in str(tiny_moe_config())
    assert str(MoE(256, 8, 2048, n_shared=1, router="sigmoid", n_group=8, topk_group=4)) == \
        "MoE(256 × 2048, top-8 + 1 shared, sigmoid, 4 of 8 groups)"
    small = MoE(256, 8, 2048, n_shared=1, router="sigmoid", n_group=8, topk_group=4).tiny()
    assert (small.n_experts, small.top_k, small.n_group, small.topk_group, small.router) == (8, 2, 4, 2, "sigmoid")
    small.resolved(64)


@pytest.mark.parametrize("settings, field", [
    (MoE(4, 5, 8), "top_k=5 must be at most n_experts=4"),
    (MoE(8, 2, 8, n_group=3), "n_group=3 must divide n_experts=8"),
    (MoE(8, 2, 8, n_group=2, topk_group=3), "topk_group=3 must be at most n_group=2"),
    (MoE(0, 1, 8), "n_experts must be a positive integer"),
    (MoE(8, 0, 8), "top_k must be a positive integer"),
    (MoE(8, 4, 8, n_group=4, topk_group=1), "top_k=4 is more than the 2 experts"),
    (MoE(8, 2, 8, router="softmax_topk"), "router='softmax_topk' is not allowed"),
    (MoE(8, 2, 8, routed_scaling=float("nan")), "routed_scaling must be a finite number"),
    (MoE(8, 2, 8, capacity_factor=0), "capacity_factor must be in"),
    (MoE(8, 2, 8, n_shared=-1), "n_shared must be an integer >= 0"),
    (MoE(8, 2, 8, norm_topk="yes"), "norm_topk must be True or False"),
    (MoE(8, 2.0, 8), "top_k must be a positive integer"),
])
def test_bad_settings_name_the_layer_and_field(settings, field):
    with pytest.raises(ConfigError, match=r"layer 0: ffn \(MoE\): " + field.replace("(", r"\(").replace("[", r"\[")):
        ModelConfig(vocab_size=10, context_length=8, d_model=D, n_heads=4, positions="rope",
                    layers=(LayerSpec(ffn=settings),))


@pytest.mark.parametrize("settings, field", [
    (MoE(4, 5, 8), "top_k=5 must be at most n_experts=4"),
    (MoE(8, 2, 8, n_group=3), "n_group=3 must divide n_experts=8"),
    (MoE(8, 2, 8, n_group=2, topk_group=3), "topk_group=3 must be at most n_group=2"),
    (MoE(0, 1, 8), "n_experts must be a positive integer"),
])
def test_a_layer_built_directly_checks_its_settings_too(settings, field):
    with pytest.raises(ConfigError, match=field):
        MixtureOfExperts(D, settings)


def test_a_layer_built_directly_derives_the_expert_width():
    assert MixtureOfExperts(D, MoE(8, 2)).experts.w_out.shape == (8, 4 * D // 2, D)


@pytest.mark.parametrize("name", ["qwen3-30b-a3b", "qwen3-235b-a22b", "llama4-maverick"])
def test_zoo_moe_totals_and_active_counts_match_published(name):
    count = count_parameters(zoo.get(name))
    assert abs(count.total / zoo.PUBLISHED_PARAMETERS[name] - 1) < 0.01
    # published active counts are rounded to two significant figures ("3.3B", "22B", "17B")
    assert abs(count.active / zoo.PUBLISHED_ACTIVE_PARAMETERS[name] - 1) < 0.02


def test_pair_lookup_task_pairs_batches_and_accuracy():
    from llmfs.tasks import PairLookupTask

    task = PairLookupTask(n=8, seed=1)
    inputs, targets = task.every_pair()
    assert inputs.shape == (64, 2) and task.vocab_size == 16
    assert torch.equal(targets[:, 1], task.table.flatten()) and torch.equal(inputs[:, 1] - 8, torch.arange(64) % 8)
    batches = task.batches(batch_size=5, n_batches=3, seed=0)
    assert len(batches) == 3 and batches[0][0].shape == (5, 2)

    def oracle(x):  # answers every pair from the table
        return torch.nn.functional.one_hot(task.table[x[:, 0], x[:, 1] - 8], 16).float().unsqueeze(1).repeat(1, 2, 1)
    assert task.accuracy(oracle) == 1.0


def test_shared_gate_scales_the_shared_expert_by_a_sigmoid():
    import torch

    from llmfs.moe import MixtureOfExperts, MoE
    from llmfs.settings import ConfigError

    torch.manual_seed(0)
    layer = MixtureOfExperts(16, MoE(n_experts=4, top_k=2, d_expert=8, n_shared=1, shared_gate=True))
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        layer.shared_gate.weight.zero_()  # sigmoid(0) = 1/2
        gated = layer(x)
        ungated = layer.shared(x.reshape(-1, 16)).view_as(x)
        layer.shared_gate = None
        plain = layer(x)
    torch.testing.assert_close(plain - gated, 0.5 * ungated)
    with pytest.raises(ConfigError, match="shared_gate"):
        MoE(n_experts=4, top_k=2, d_expert=8, n_shared=0, shared_gate=True).check(16)
    with pytest.raises(ConfigError, match="shared_gate"):
        MoE(n_experts=4, top_k=2, d_expert=8, n_shared=1, shared_gate="yes").check(16)


def moe_zoo_models():
    return [name for name in zoo.names() if any(isinstance(spec.ffn, MoE) for spec in zoo.get(name).layers)]


def test_every_moe_zoo_model_has_published_counts_that_its_count_matches():
    names = moe_zoo_models()
    assert {"qwen3-30b-a3b", "deepseek-v3", "kimi-k2", "llama4-maverick", "gpt-oss-20b", "gpt-oss-120b",
            "mixtral-8x7b"} <= set(names)
    for name in names:
        total, active = zoo.PUBLISHED_PARAMETERS[name], zoo.PUBLISHED_ACTIVE_PARAMETERS[name]
        digits = str(active).rstrip("0")  # "3" for 3B: +-0.5B is still "3B"
        rounding = 0.5 * 10 ** (len(str(active)) - len(digits)) / active
        assert abs(count_parameters(zoo.get(name)).total / total - 1) < 0.03, name
        assert abs(zoo.active_as_published(name) / active - 1) <= max(0.03, rounding), name


def test_gpt_oss_published_active_counts_leave_out_the_embedding_table():
    for name in ("gpt-oss-20b", "gpt-oss-120b"):
        count = count_parameters(zoo.get(name))
        assert zoo.active_as_published(name) == zoo.active_as_published(name, count) == count.active - count.embedding
        assert abs(zoo.active_as_published(name) / zoo.PUBLISHED_ACTIVE_PARAMETERS[name] - 1) < 0.005
        assert count.active / zoo.PUBLISHED_ACTIVE_PARAMETERS[name] > 1.1  # with the table it would not match
    assert zoo.active_as_published("qwen3-30b-a3b") == count_parameters(zoo.get("qwen3-30b-a3b")).active
