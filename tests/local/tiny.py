"""A tiny randomly initialised Llama-architecture model and a character-level tokenizer, built
in the test: no downloads, a second to make."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_tokenizer() -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = ["<pad>", "<eos>", *(chr(c) for c in range(32, 127)), "\n"]
    vocab = {s: i for i, s in enumerate(symbols)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")


def tiny_model(layers: int = 2, hidden: int = 32, seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=100,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
    )
    return LlamaForCausalLM(config).eval()


def tiny(layers: int = 2) -> Any:
    from agora.engine.inference.local.model import LocalModel

    return LocalModel.wrap(tiny_model(layers), tiny_tokenizer(), "tiny", "0" * 64)


def saved_tiny(folder: Path) -> Any:
    """``tiny()`` saved as a Hugging Face folder, as a user's weights would be."""
    local = tiny()
    local.model.save_pretrained(folder)
    local.tokenizer.save_pretrained(folder)
    return local


def local_run(folder: Path, **more: Any) -> dict[str, Any]:
    """A run's settings for the local backend on a saved tiny model: short answers, no
    cache (each test's model is its own), no re-asks."""
    return {
        "inference.backend": "local",
        "inference.model": "tiny-llama",
        "inference.local.model_path": str(folder),
        "inference.max_tokens": 8,
        "inference.cache": False,
        "inference.max_reasks": 0,
        **more,
    }
