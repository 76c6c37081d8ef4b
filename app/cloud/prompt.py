"""The teacher prompt (ECC paper, Table II): an instruction, example customer/agent pairs, then the
conversation. The paper used 500 fixed examples; the default here retrieves the k pairs of the
shop's corpus most similar to the customer's message, which fits small teachers' context windows
and is more on point.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from app.cloud.teacher import ChatRole, TeacherRequest
from app.engine.conversation import Turn
from app.fsio import atomic_save_npy
from app.scoring.scorers import USESimilarity

ExampleMode = Literal["retrieved", "fixed"]


def teacher_instruction(lang: str = "zh") -> str:
    name = "teacher_zh.txt" if lang.startswith("zh") else "teacher_en.txt"
    return resources.files("app.resources.prompts").joinpath(name).read_text("utf-8").strip()


@dataclass(frozen=True)
class PromptExample:
    query: str
    reply: str


class ExampleBank:
    """The shop's example pairs, with USE embeddings of their queries for retrieval.

    Embeddings are cached in ``cache_dir`` keyed by the examples' content hash, so a corpus is
    encoded once (about 600 queries a second).
    """

    def __init__(
        self,
        examples: Sequence[PromptExample],
        encoder: USESimilarity | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        if not examples:
            raise ValueError("The example bank is empty: give it some customer/agent pairs")
        self.examples = list(examples)
        self._encoder = encoder or USESimilarity()
        self._cache_dir = cache_dir
        self._vectors: npt.NDArray[np.float32] | None = None

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for ex in self.examples:
            h.update(ex.query.encode("utf-8") + b"\0" + ex.reply.encode("utf-8") + b"\0")
        return h.hexdigest()[:16]

    def _matrix(self) -> npt.NDArray[np.float32]:
        if self._vectors is None:
            path = self._cache_dir / f"examples-{self.digest}.npy" if self._cache_dir else None
            self._vectors = _read_cache(path, len(self.examples))
            if self._vectors is None:  # none yet, or damaged (a crash mid-write): rebuilt
                queries = [ex.query[:500] for ex in self.examples]
                self._vectors = np.asarray(self._encoder.encode(queries), dtype=np.float32)
                if path is not None:
                    atomic_save_npy(path, self._vectors)
        return self._vectors

    def retrieve(self, query: str, k: int, leave_out_same: bool = False) -> list[PromptExample]:
        """The k examples whose queries are most similar to ``query``, best first;
        ``leave_out_same``: none whose query is ``query`` itself."""
        vector = np.asarray(self._encoder.encode([query[:500]]), dtype=np.float32)[0]
        sims = self._matrix() @ vector
        if leave_out_same:
            sims[[i for i, ex in enumerate(self.examples) if ex.query == query]] = -np.inf
        top = np.argsort(-sims, kind="stable")[:k]
        return [self.examples[int(i)] for i in top if sims[i] > -np.inf]

    def fixed(self, n: int, seed: int = 0) -> list[PromptExample]:
        """The paper's mode: the same n examples for every query."""
        if n >= len(self.examples):
            return list(self.examples)
        return random.Random(seed).sample(self.examples, n)


def _read_cache(path: Path | None, rows: int) -> npt.NDArray[np.float32] | None:
    """The cached embeddings, or None when there are none or they are not whole."""
    if path is None or not path.is_file():
        return None
    try:
        vectors: npt.NDArray[np.float32] = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if vectors.ndim != 2 or vectors.shape[0] != rows or vectors.dtype != np.float32:
        return None
    return vectors


def build_request(
    conversation: Sequence[Turn],
    examples: Sequence[PromptExample],
    lang: str = "zh",
    max_tokens: int = 256,
    temperature: float = 0.3,
) -> TeacherRequest:
    """Instruction, examples as user/assistant turns, then the conversation (already redacted)."""
    messages: list[tuple[ChatRole, str]] = [("system", teacher_instruction(lang))]
    for ex in examples:
        messages += [("user", ex.query), ("assistant", ex.reply)]
    for turn in conversation:
        messages.append(("user" if turn.role == "customer" else "assistant", turn.text))
    return TeacherRequest(tuple(messages), max_tokens=max_tokens, temperature=temperature)


def prompt_hash(request: TeacherRequest, provider: str, model: str) -> str:
    """Identifies a request for the response cache and the record of what was sent."""
    canonical = json.dumps(
        {
            "provider": provider,
            "model": model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
