"""Which models run in onnxruntime, and the name their export is kept under (no model is loaded here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.kb import kb_config, make_embedder
from bot.settings import Settings
from knowledge_base.embedding import SentenceTransformerEmbedder
from knowledge_base.errors import EmbedderUnavailable
from knowledge_base.onnx_embedding import OnnxEmbedder, model_digest, model_layout

MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]
MEAN = {"word_embedding_dimension": 384, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}


def make_model(directory: Path, modules: list[dict[str, object]] = MODULES, pooling: dict[str, object] = MEAN,
               lower: bool = False) -> Path:  # fmt: skip
    (directory / "1_Pooling").mkdir(parents=True)
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": lower}))
    (directory / "tokenizer.json").write_text("{}")
    (directory / "config.json").write_text("{}")
    (directory / "model.safetensors").write_bytes(b"weights v1")
    return directory


def test_minilms_shape_is_read_from_its_files(tmp_path: Path) -> None:
    layout = model_layout(make_model(tmp_path / "m", lower=True))
    assert (layout.dimension, layout.max_seq_length, layout.normalize, layout.lowercase) == (384, 256, True, True)
    assert not model_layout(make_model(tmp_path / "n", MODULES[:2])).normalize


@pytest.mark.parametrize(
    ("modules", "pooling", "reason"),
    [
        (MODULES, MEAN | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}, "pooling"),
        (MODULES, MEAN | {"pooling_mode_max_tokens": True}, "pooling"),
        ([*MODULES, {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}],
         MEAN, "modules"),
        (MODULES[1:], MEAN, "modules"),
    ],
)  # fmt: skip
def test_other_shapes_are_refused_with_the_reason(
    tmp_path: Path, modules: list[dict[str, object]], pooling: dict[str, object], reason: str
) -> None:
    with pytest.raises(EmbedderUnavailable, match=reason):
        model_layout(make_model(tmp_path / "m", modules, pooling))


def test_a_directory_that_is_no_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match="not a sentence-transformers model directory"):
        model_layout(tmp_path)
    (tmp_path / "modules.json").write_text("{not json")
    with pytest.raises(EmbedderUnavailable, match="not a sentence-transformers model directory"):
        model_layout(tmp_path)


def test_the_export_is_named_by_the_models_files(tmp_path: Path) -> None:
    model = make_model(tmp_path / "m")
    first = model_digest(model)
    assert model_digest(model) == first
    (model / "model.safetensors").write_bytes(b"weights v2")
    second = model_digest(model)
    (model / "tokenizer.json").write_text('{"changed": true}')
    assert len({first, second, model_digest(model)}) == 3


def test_the_backend_setting_chooses_the_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREBOT_KB_EMBEDDING_CACHE_DIR", raising=False)
    onnx = make_embedder(kb_config(Settings(data_dir=tmp_path)))
    assert isinstance(onnx, OnnxEmbedder) and onnx.name == "all-MiniLM-L6-v2"
    assert isinstance(make_embedder(kb_config(Settings(data_dir=tmp_path, kb_embedding_backend="torch"))),
                      SentenceTransformerEmbedder)  # fmt: skip
    assert kb_config(Settings(data_dir=tmp_path)).onnx_dir == tmp_path / "kb-index" / "onnx"
    assert kb_config(Settings(data_dir=tmp_path, kb_onnx_dir=tmp_path / "x")).onnx_dir == tmp_path / "x"
