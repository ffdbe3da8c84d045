"""The offline GPT-2 tokenizer: same ids as tiktoken's "gpt2", lossless, built from an intact file."""

import hashlib
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmfs.tokenizer import get_tokenizer, tokenizer_names

GPT2_RANKS_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


def test_known_gpt2_ids():
    tokenizer = get_tokenizer("gpt2")
    assert tokenizer.encode("Hello, world") == [15496, 11, 995]
    assert tokenizer.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50256]
    assert tokenizer.eot_token == 50256
    assert tokenizer.decode([15496, 11, 995]) == "Hello, world"


def test_special_token_is_refused_unless_allowed():
    # tiktoken's default: text that merely contains "<|endoftext|>" must not turn into the control token.
    with pytest.raises(ValueError):
        get_tokenizer().encode("<|endoftext|>")
    assert 50256 not in get_tokenizer().encode_ordinary("<|endoftext|>")


def test_vocab_size_and_default_name():
    tokenizer = get_tokenizer()
    assert tokenizer.name == "gpt2"
    assert tokenizer.n_vocab == 50257
    assert tokenizer.max_token_value == 50256


def test_cached():
    assert get_tokenizer("gpt2") is get_tokenizer("gpt2")


def test_vendored_rank_file_is_intact():
    data = (resources.files("llmfs") / "data" / "gpt2.tiktoken").read_bytes()
    assert hashlib.sha256(data).hexdigest() == GPT2_RANKS_SHA256
    assert len(data.splitlines()) == 50256


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n\n\t  \n", "  leading and trailing  ", "naïve café — “quotes” 東京 🙂👍🏽", "it's 1,234.5 ok?!\r\n"],
)
def test_round_trip_examples(text):
    tokenizer = get_tokenizer()
    assert tokenizer.decode(tokenizer.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_text(text):
    tokenizer = get_tokenizer()
    ids = tokenizer.encode_ordinary(text)
    assert all(0 <= i < tokenizer.n_vocab for i in ids)
    assert tokenizer.decode(ids) == text


def test_names():
    assert tokenizer_names() == ["char", "gpt2"]


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(ValueError, match=r"unknown tokenizer name 'gtp2'.*\['char', 'gpt2'\].*Did you mean 'gpt2'"):
        get_tokenizer("gtp2")
    with pytest.raises(ValueError, match="known names"):
        get_tokenizer(["gpt2"])
