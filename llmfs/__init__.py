"""llmfs: the package behind the course "LLMs from scratch, mechanism by mechanism".

Every chapter notebook imports what it builds from here, so the book and the package never disagree.
"""

__version__ = "0.1.0"

# --- core model: config, attention, Transformer, cache, generation, zoo ---

# --- data: tokenizer, corpus, windows, training loop, plotting ---

# --- notebook helpers and exercises ---

# --- chapter 1: recurrent encoder-decoder ---
