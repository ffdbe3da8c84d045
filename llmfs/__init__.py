"""llmfs: the package behind the course "LLMs from scratch, mechanism by mechanism".

Every chapter notebook imports what it builds from here, so the book and the package never disagree.
"""

__version__ = "0.1.0"

# --- core model: config, attention, Transformer, cache, generation, zoo ---
from . import hf, zoo
from .attention import Attention, MultiHeadAttention, causal_mask, scaled_dot_product_attention
from .cache import KVCache
from .config import ConfigError, LayerSpec, ModelConfig, RopeScaling, layer_pattern
from .ffn import MLP
from .linear_attention import LinearAttention
from .positions import Rope
from .mla import DSA, MLA, MultiHeadLatentAttention, SparseLatentAttention
from .counting import ParameterCount, count_parameters, kv_cache_bytes
from .generate import decode_layout, generate
from .speculative import SpeculativeStats, expected_speedup, expected_tokens_per_round, speculative_generate
from .model import Transformer

# --- data: tokenizer, corpus, windows, training loop, plotting ---
from .datasets import TokenWindows, corpus_names, load_corpus, make_loaders, train_val_split
from .plotting import plot_attention, plot_losses
from .tokenizer import get_tokenizer, tokenizer_names
from .training import History, evaluate, lm_loss, set_seed, train

# --- notebook helpers and exercises ---
from . import exercises
from .notebook import glue, pick_device, show

# --- looking inside a model (chapter 2) ---
from . import probes

# --- chapter 1: recurrent encoder-decoder ---
from . import rnn, tasks
from .rnn import AdditiveAttention, Seq2Seq, accuracy_by_length, build_seq2seq, train_seq2seq
from .tasks import RecallTask

# --- appendix: multi-token prediction (DeepSeek V3's MTP modules, parallel heads) and self-speculative decoding ---
from . import mtp
from .mtp import MTP, MTPModel, mtp_loss, mtp_speculative_generate
