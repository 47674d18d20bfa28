"""The same sentence-transformers model run through onnxruntime: the Embedder carebot uses by default.

A worker embeds every tweet it triages, and MiniLM in torch was its largest cost. The model's own weights are
exported once to an ONNX file (kept in a cache directory, named by a digest of the model's files, so a changed
model is exported again), then run by onnxruntime with the model's own tokenizer (the `tokenizers` library)
and the model's pooling: mean over the tokens, then unit length. torch is imported only to export.

Vectors are those of the torch model to rounding (cosine above 0.99999 on the FAQ and the traffic; checked
after every export, and in the tests). Only models of MiniLM's shape are run this way: a transformer, mean
pooling and an optional normalisation, as sentence-transformers' modules.json declares them. Any other model,
or a failed export, runs in torch as before (`SentenceTransformerEmbedder`), with a warning in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.embedding import (
    DEFAULT_MODEL,
    SentenceTransformerEmbedder,
    limit_native_threads,
    normalize_rows,
    resolve_model_path,
)
from knowledge_base.errors import EmbedderUnavailable

_log = logging.getLogger(__name__)

OPSET = 17
EXPORT_MIN_COSINE = 0.9999  # an export whose vectors differ more from torch's is not used
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_DIGESTED_FILES = ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json", *_WEIGHT_FILES)
_PROBE_TEXTS = (
    "is my broadband down in Leeds?",
    "@KestrelCare I did.",
    "thanks but still no signal since Tuesday, third time I've asked",
    "",
)


@dataclass(frozen=True)
class ModelLayout:
    """What onnxruntime needs to know of a sentence-transformers model directory."""

    directory: Path
    dimension: int
    max_seq_length: int
    normalize: bool
    lowercase: bool  # sentence-transformers lowercases before the tokenizer


def model_layout(directory: Path) -> ModelLayout:
    """The layout of a model of MiniLM's shape (transformer, mean pooling, optional normalisation), or
    EmbedderUnavailable saying why this model cannot run in onnxruntime."""
    try:
        modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
        kinds = [str(module["type"]).rsplit(".", 1)[-1] for module in modules]
        if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]) or modules[0]["path"]:
            raise EmbedderUnavailable(f"modules {kinds} are not transformer, mean pooling, normalise")
        pooling = json.loads((directory / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        other_modes = [key for key, on in pooling.items() if key.startswith("pooling_mode_") and on]
        if other_modes != ["pooling_mode_mean_tokens"]:
            raise EmbedderUnavailable(f"pooling {other_modes} is not the mean of the tokens")
        settings = json.loads((directory / "sentence_bert_config.json").read_text(encoding="utf-8"))
        if not (directory / "tokenizer.json").is_file():
            raise EmbedderUnavailable("the model has no tokenizer.json (a fast tokenizer)")
        return ModelLayout(
            directory=directory, dimension=int(pooling["word_embedding_dimension"]),
            max_seq_length=int(settings["max_seq_length"]), normalize=kinds[-1] == "Normalize",
            lowercase=bool(settings.get("do_lower_case")),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise EmbedderUnavailable(f"{directory} is not a sentence-transformers model directory: {exc}") from exc


def model_digest(directory: Path) -> str:
    """A digest of the files that decide the model's vectors, with the exporter's version: the export's name."""
    digest = hashlib.sha256(f"opset {OPSET}; torch {package_version('torch')}".encode())  # torch not imported
    for name in _DIGESTED_FILES:
        path = directory / name
        if path.is_file():
            digest.update(name.encode() + b"\0")
            with path.open("rb") as file:
                for block in iter(lambda: file.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:20]


def export_model(layout: ModelLayout, target: Path) -> None:
    """Export the model's transformer (its last hidden state, any batch and length) to `target`, atomically:
    a process that finds the file finds a whole one."""
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Loading weights" bar on stderr

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    model = AutoModel.from_pretrained(str(layout.directory)).eval()
    sample = AutoTokenizer.from_pretrained(str(layout.directory))(["a sample tweet"], return_tensors="pt")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".onnx.part")
    os.close(handle)
    try:
        axes = {0: "batch", 1: "tokens"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constant shapes: the axes are declared
            torch.onnx.export(
                LastHiddenState(model),
                (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
                temporary, input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"], opset_version=OPSET, dynamo=False,
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                              "last_hidden_state": axes},
            )  # fmt: skip
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


class _OnnxModel:
    """A loaded export: tokenizer, onnxruntime session, pooling."""

    def __init__(self, layout: ModelLayout, onnx_file: Path, threads: int | None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.layout = layout
        self.tokenizer = Tokenizer.from_file(str(layout.directory / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=layout.max_seq_length)
        pad_token = self.tokenizer.padding["pad_token"] if self.tokenizer.padding else "[PAD]"
        pad_id = self.tokenizer.token_to_id(pad_token)
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)  # to the longest
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own errors (InvalidProtobuf, Fail, …) derive from Exception only
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise EmbedderUnavailable(f"onnxruntime cannot load {onnx_file}: {reason}") from exc

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        types = np.array([encoding.type_ids for encoding in encodings], dtype=np.int64)
        (hidden,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalize_rows(pooled) if self.layout.normalize else np.asarray(pooled, dtype=np.float32)


class OnnxEmbedder:
    """A sentence-transformers model run by onnxruntime, exported on first use into `export_dir`; models of
    another shape, and failed exports, run in torch instead."""

    def __init__(
        self, model: str = DEFAULT_MODEL, *, export_dir: Path, batch_size: int = 8, threads: int | None = None
    ) -> None:
        """`threads` as for SentenceTransformerEmbedder: onnxruntime's pool, and numpy's BLAS and faiss's
        OpenMP once loaded. Batches of 8 texts of similar length, as sentence-transformers forms them."""
        self._model_name = model
        self._export_dir = export_dir
        self._batch_size = batch_size
        self._threads = threads
        self._model: _OnnxModel | SentenceTransformerEmbedder | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._model_name  # the same vectors as the torch model: caches of either serve both

    @property
    def runs_in_onnxruntime(self) -> bool:
        return isinstance(self._loaded(), _OnnxModel)

    def _loaded(self) -> _OnnxModel | SentenceTransformerEmbedder:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> _OnnxModel | SentenceTransformerEmbedder:
        directory = Path(resolve_model_path(self._model_name))
        try:
            layout = model_layout(directory)
            onnx_file = self._export_dir / f"{directory.name}-{model_digest(directory)}.onnx"
            model = None
            if onnx_file.is_file():
                try:
                    model = _OnnxModel(layout, onnx_file, self._threads)
                except EmbedderUnavailable as exc:  # a damaged file: export again
                    _log.warning("%s; exporting it again", exc)
                    onnx_file.unlink(missing_ok=True)
            if model is None:
                _log.info("exporting %s to %s for onnxruntime", self._model_name, onnx_file)
                export_model(layout, onnx_file)
                model = _OnnxModel(layout, onnx_file, self._threads)
                self._check_export(model, onnx_file)
            limit_native_threads(self._threads)
            return model
        except (EmbedderUnavailable, ImportError, OSError, RuntimeError, ValueError) as exc:
            _log.warning("embedding model %s runs in torch, not onnxruntime: %s", self._model_name, exc)
            return SentenceTransformerEmbedder(self._model_name, batch_size=self._batch_size, threads=self._threads)

    def _check_export(self, model: _OnnxModel, onnx_file: Path) -> None:
        """A new export is compared with the torch model on a few texts; one that differs is removed."""
        reference = SentenceTransformerEmbedder(self._model_name, threads=self._threads).embed(list(_PROBE_TEXTS))
        cosines = (self._embed_with(model, list(_PROBE_TEXTS)) * reference).sum(axis=1)
        if float(cosines.min()) < EXPORT_MIN_COSINE:
            onnx_file.unlink(missing_ok=True)
            raise EmbedderUnavailable(f"the export's vectors differ from torch's (cosine {cosines.min():.5f})")

    @property
    def dimension(self) -> int:
        model = self._loaded()
        return model.layout.dimension if isinstance(model, _OnnxModel) else model.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._loaded()
        if isinstance(model, SentenceTransformerEmbedder):
            return model.embed(texts)
        return self._embed_with(model, list(texts))

    def _embed_with(self, model: _OnnxModel, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, model.layout.dimension), dtype=np.float32)
        stripped = [str(text).strip() for text in texts]  # as sentence-transformers tokenizes
        if model.layout.lowercase:
            stripped = [text.lower() for text in stripped]
        order = sorted(range(len(stripped)), key=lambda i: -len(stripped[i]))  # similar lengths pad little
        vectors = np.empty((len(stripped), model.layout.dimension), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            vectors[chunk] = model.embed_batch([stripped[i] for i in chunk])
        return vectors
