"""A local white-box causal language model: the user's own weights (a Hugging Face folder or a
GGUF file, which transformers dequantizes), on the CPU or a GPU, for the ``local`` backend.

- ``render``: a conversation in the model's own chat template, ready for its answer;
- ``encode``: prompts left-padded into one batch (the last token of every row is its own);
- ``score_integers``: the log-probability of each allowed whole number as the answer's one
  field (``{"amount": 42}``): how the backend constrains an integer answer — by scoring every
  allowed value, not by sampling free text and hoping;
- ``generate``: free text, greedy (batched) or sampled with each request's own seed (one at a
  time, so an answer never depends on which other requests shared its batch).
"""

from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agora.engine.inference.local.directions import file_sha256

# Candidate sequences per forward pass when scoring (bounds the memory of one pass).
SCORE_CHUNK = 16


@dataclass
class LocalModel:
    model: Any
    tokenizer: Any
    path: str
    sha256: str
    device: str
    load_s: float

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", dtype: str = "float32") -> LocalModel:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        where = Path(path)
        if not where.exists():
            raise FileNotFoundError(f"{where}: no such model file or folder")
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
        if where.suffix == ".gguf":
            folder, name = str(where.parent), where.name
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, **kwargs)
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(where))
            model = AutoModelForCausalLM.from_pretrained(str(where), **kwargs)
        return cls.wrap(model, tokenizer, str(where), file_sha256(where), device, started)

    @classmethod
    def wrap(
        cls,
        model: Any,
        tokenizer: Any,
        path: str = "",
        sha256: str = "",
        device: str = "cpu",
        started: float | None = None,
    ) -> LocalModel:
        """A model and tokenizer already built (a test's tiny one)."""
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.to(device)
        model.eval()
        load_s = time.perf_counter() - started if started is not None else 0.0
        return cls(model, tokenizer, path, sha256, device, load_s)

    @property
    def _cache_argument(self) -> str:
        # transformers 5 renamed ``past_key_values`` to ``cache``; older versions know only it.
        names = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in names else "past_key_values"

    @property
    def layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                list(messages), add_generation_prompt=True, tokenize=False
            )
            return str(text)
        # A tokenizer without a template (a test's): the turns one after another.
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "

    def encode(self, texts: Sequence[str]) -> dict[str, Any]:
        batch = self.tokenizer(
            list(texts), return_tensors="pt", padding=True, add_special_tokens=False
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def answer_prefix(self, prompt: str, field: str) -> str:
        """The prompt and the answer's opening, up to the number."""
        return f'{prompt}{{"{field}":'

    def _candidates(
        self, prompt: str, field: str, low: int, high: int
    ) -> tuple[list[list[int]], int]:
        head = self.answer_prefix(prompt, field)
        texts = [f"{head} {v}}}" for v in range(low, high + 1)]
        ids = [list(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        # Where the candidates start to differ from one another (a tokenizer may merge the
        # prefix's last characters with a number): every candidate is scored from there.
        return ids, _common_prefix(ids)

    def scored_prefix(self, prompt: str, field: str, low: int, high: int) -> list[int]:
        """The tokens ``score_integers`` runs once before the candidates (a patch's donor
        is captured on the same)."""
        ids, shared = self._candidates(prompt, field, low, high)
        return ids[0][:shared]

    def token_count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score_integers(
        self,
        prompt: str,
        field: str,
        low: int,
        high: int,
        prefix_context: Callable[[], AbstractContextManager[Any]] | None = None,
    ) -> tuple[npt.NDArray[np.float64], int]:
        """For v = low … high, the log-probability (up to one constant) of the answer
        ``{"field": v}`` written out whole, its closing brace included: the sum of the
        log-probabilities of its tokens after the longest prefix all candidates share. (Where
        the prompt also offers optional fields, the brace competes with a comma; the bias is
        the same at every steering strength.) And the prompt's token count.
        ``prefix_context``: a context (a patch) active while the shared prefix alone runs, not
        the candidates' tails."""
        import torch

        ids, shared = self._candidates(prompt, field, low, high)
        scores = np.zeros(len(ids))
        with torch.no_grad():
            # The shared prefix once; each candidate's tail on a copy of its key-value cache.
            prefix = torch.tensor([ids[0][:shared]], device=self.device)
            with prefix_context() if prefix_context is not None else nullcontext():
                head_out = self.model(input_ids=prefix, use_cache=True)
            cached = getattr(head_out, "cache", None) or head_out.past_key_values
            first = torch.log_softmax(head_out.logits[0, -1].float(), dim=-1)
            for start in range(0, len(ids), SCORE_CHUNK):
                chunk = [row[shared:] for row in ids[start : start + SCORE_CHUNK]]
                width = max(len(row) for row in chunk)
                pad = int(self.tokenizer.pad_token_id)
                tails = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), shared + width), dtype=torch.long)
                mask[:, :shared] = 1
                for k, row in enumerate(chunk):  # right-padded: a pad comes after its row
                    tails[k, : len(row)] = torch.tensor(row)
                    mask[k, shared : shared + len(row)] = 1
                cache = copy.deepcopy(cached)
                cache.batch_repeat_interleave(len(chunk))
                positions = torch.arange(shared, shared + width).expand(len(chunk), width)
                logits = self.model(
                    input_ids=tails.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    use_cache=True,
                    **{self._cache_argument: cache},
                ).logits.float()
                logp = torch.log_softmax(logits, dim=-1)
                for k, row in enumerate(chunk):
                    if not row:  # all of it in the shared prefix: nothing tells it apart
                        continue
                    total = float(first[row[0]])
                    for j in range(1, len(row)):
                        total += float(logp[k, j - 1, row[j]])
                    scores[start + k] = total
        return scores, self.token_count(prompt)

    def generate(
        self, prompts: Sequence[str], max_new_tokens: int, temperature: float, seeds: Sequence[int]
    ) -> list[tuple[str, int, int]]:
        """(text, prompt tokens, new tokens) per prompt."""
        import torch

        if temperature <= 0:
            groups = [list(range(len(prompts)))]
        else:
            groups = [[k] for k in range(len(prompts))]
        results: list[tuple[str, int, int]] = [("", 0, 0)] * len(prompts)
        for group in groups:
            batch = self.encode([prompts[k] for k in group])
            options: dict[str, Any] = {
                "max_new_tokens": max_new_tokens,
                "pad_token_id": self.tokenizer.pad_token_id,
                "do_sample": temperature > 0,
            }
            if temperature > 0:
                options["temperature"] = temperature
                torch.manual_seed(int(seeds[group[0]]) % (2**63))
            with torch.no_grad():
                out = self.model.generate(**batch, **options)
            width = batch["input_ids"].shape[1]
            for row, k in enumerate(group):
                new = out[row, width : width + max_new_tokens]
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                used = int(batch["attention_mask"][row].sum())
                results[k] = (str(text), used, int((new != self.tokenizer.pad_token_id).sum()))
        return results


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    length = min(len(row) for row in rows)
    for k in range(length):
        if any(row[k] != first[k] for row in rows):
            return k
    return length
