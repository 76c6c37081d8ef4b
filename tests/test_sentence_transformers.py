"""``--similarity st:PATH``: any local sentence-transformers directory, here a tiny random BERT
with a made-up character vocabulary, saved and loaded the way a user's download would be."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "sentence_transformers", reason="sentence-transformers comes with the [hf] extra"
)

from app.scoring.registry import load_similarity
from app.scoring.scorers import ScoringError, SentenceTransformerSimilarity

TEXT = "可以选择快递吗发什么默认中通您好亲有的红色衣服这件"


@pytest.fixture(scope="module")
def tiny_st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("st")
    hf, out = root / "hf", root / "tiny-st"
    hf.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(TEXT)]
    (hf / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(hf / "vocab.txt")).save_pretrained(hf)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(hf)
    SentenceTransformer(
        modules=[st_models.Transformer(str(hf)), st_models.Pooling(config.hidden_size)],
        device="cpu",
    ).save(str(out))
    return out


def test_a_sentence_transformers_directory_scores_similarity(tiny_st_dir: Path) -> None:
    model = load_similarity(f"st:{tiny_st_dir}")
    assert isinstance(model, SentenceTransformerSimilarity)
    assert model.version == "sentence-transformers:tiny-st"
    vectors = model.encode(["您好", "发什么快递"])
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    scores = model.similarity(
        ["可以选择快递吗", "您好", ""], ["可以选择快递吗", "红色衣服这件", "亲"]
    )
    assert scores.shape == (3,)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)  # the same text
    assert 0.0 <= scores[1] < scores[0]
    assert scores[2] == 0.0  # nothing to compare


def test_a_missing_directory_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ScoringError, match="No sentence-transformers model directory"):
        load_similarity(f"st:{tmp_path / 'absent'}")


def test_the_removed_paddle_backend_is_an_unknown_model() -> None:
    with pytest.raises(ScoringError, match="Unknown similarity model"):
        load_similarity("paddle:simbert-base-chinese")
