"""GPT-2's byte-pair-encoding tokenizer, built offline from the ranks shipped in `llmfs/data/`, and a
character tokenizer of the course corpus (`get_tokenizer("char")`).

`get_tokenizer("gpt2")` gives the same `tiktoken.Encoding` as `tiktoken.get_encoding("gpt2")`,
without the download that tiktoken would otherwise make on first use.
"""

import difflib
import functools
from importlib import resources

import tiktoken
from tiktoken.load import load_tiktoken_bpe

# GPT-2's pre-tokenizer: split off contractions, runs of letters, runs of digits, runs of
# punctuation (each optionally led by one space) and whitespace, before any merge is applied.
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
ENDOFTEXT = "<|endoftext|>"

# name -> (file in llmfs/data, its sha256, special tokens, vocabulary size)
_TOKENIZERS = {
    "gpt2": (
        "gpt2.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        {ENDOFTEXT: 50256},
        50257,
    ),
}


class CharTokenizer:
    """One token per character of the Shakespeare corpus (about 65 of them): a vocabulary so small that a
    tiny model learns more than word frequencies in a minute on a CPU (chapters 2 and 3)."""

    name = "char"

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.ids = {c: i for i, c in enumerate(self.chars)}
        self.n_vocab = len(self.chars)

    def encode(self, text: str) -> list[int]:
        unknown = sorted(set(text) - self.ids.keys())
        if unknown:
            raise ValueError(f"characters {unknown!r} are not in the character vocabulary.")
        return [self.ids[c] for c in text]

    def decode(self, ids) -> str:
        ids = [int(i) for i in ids]
        if any(not 0 <= i < self.n_vocab for i in ids):
            raise ValueError(f"character ids must lie in [0, {self.n_vocab}).")
        return "".join(self.chars[i] for i in ids)


def tokenizer_names():
    """Names that `get_tokenizer` accepts."""
    return sorted([*_TOKENIZERS, "char"])


def get_tokenizer(name="gpt2"):
    """Return the named `tiktoken.Encoding`, built from the vendored rank file (cached per name)."""
    if not isinstance(name, str) or name not in tokenizer_names():
        close = difflib.get_close_matches(str(name), tokenizer_names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown tokenizer name {name!r}; known names: {tokenizer_names()}.{hint}")
    return _build_tokenizer(name)


@functools.lru_cache(maxsize=None)
def _build_tokenizer(name):
    """Read the rank file once per name; an Encoding is immutable, so sharing it is safe."""
    if name == "char":
        from .datasets import load_corpus

        return CharTokenizer(load_corpus("shakespeare"))
    filename, sha256, special_tokens, n_vocab = _TOKENIZERS[name]
    with resources.as_file(resources.files("llmfs") / "data" / filename) as path:
        # expected_hash makes tiktoken refuse a corrupted or altered rank file.
        mergeable_ranks = load_tiktoken_bpe(str(path), expected_hash=sha256)
    return tiktoken.Encoding(
        name=name,
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=mergeable_ranks,
        special_tokens=special_tokens,
        explicit_n_vocab=n_vocab,
    )
