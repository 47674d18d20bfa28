"""MiniLM in onnxruntime, the default embedder: its vectors are torch's (the FAQ, real-shaped tweets, hostile
text), the export is made once and reused without torch, a damaged export is made again, and a model of another
shape runs in torch. The export is kept in the tests' shared cache, so the suite exports once per machine."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from knowledge_base.embedding import SentenceTransformerEmbedder, resolve_model_path
from knowledge_base.io import read_file
from knowledge_base.onnx_embedding import OnnxEmbedder, model_digest

ROOT = Path(__file__).resolve().parents[2]
REAL_THREADS = ROOT.parent / "shared" / "data" / "twcs-sample" / "tweets.csv"
EXPORTS = Path(os.environ["CAREBOT_KB_EMBEDDING_CACHE_DIR"]) / "onnx"


def faq_texts() -> list[str]:
    return [text for record in read_file(ROOT / "training_data" / "faq.yml")
            for text in (record.content.question, *record.content.paraphrases)]  # fmt: skip


def traffic_texts() -> list[str]:
    texts = []
    for line in (ROOT / "training_data" / "conversations" / "dev_conversations.jsonl").read_text().splitlines():
        texts += [turn["text"] for turn in json.loads(line)["turns"] if turn["author"] == "customer"]
    if REAL_THREADS.is_file():
        with REAL_THREADS.open(newline="", encoding="utf-8") as file:
            texts += [row["text"] for row in csv.DictReader(file) if row["inbound"] == "True"][:400]
    texts += (ROOT / "tests" / "data" / "hostile_tweets.txt").read_text(encoding="utf-8").splitlines()
    return texts + ["", "   ", "x" * 10_000, "🙂" * 300, "\u202eevil\u202c", "a\x00b"]


@pytest.fixture(scope="module")
def onnx_embedder() -> OnnxEmbedder:
    embedder = OnnxEmbedder(export_dir=EXPORTS, threads=1)
    assert embedder.runs_in_onnxruntime
    return embedder


@pytest.mark.parametrize("texts", [faq_texts, traffic_texts], ids=["faq", "traffic"])
def test_onnxruntime_gives_torchs_vectors(onnx_embedder: OnnxEmbedder, texts: object) -> None:
    sample = texts()  # type: ignore[operator]
    assert len(sample) > 300
    torch_vectors = SentenceTransformerEmbedder(threads=1).embed(sample)
    onnx_vectors = onnx_embedder.embed(sample)
    assert onnx_vectors.shape == torch_vectors.shape == (len(sample), 384) and onnx_vectors.dtype == np.float32
    cosines = (onnx_vectors * torch_vectors).sum(axis=1)
    assert float(cosines.min()) > 0.99, sorted(zip(cosines, sample, strict=True))[:3]  # the bar: within 0.01 of torch
    assert float(np.abs(onnx_vectors - torch_vectors).max()) < 1e-4  # and in fact equal to rounding


def test_the_order_of_a_batch_does_not_change_a_vector(onnx_embedder: OnnxEmbedder) -> None:
    texts = ["is my hub broken", "@KestrelCare thanks but still no signal in Leeds since Tuesday", "hi"]
    alone = np.vstack([onnx_embedder.embed([text]) for text in texts])
    assert np.abs(onnx_embedder.embed(texts[::-1])[::-1] - alone).max() < 1e-5
    assert onnx_embedder.embed([]).shape == (0, 384)


def test_the_export_is_reused_without_torch_and_a_damaged_one_is_made_again(
    onnx_embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    directory = Path(resolve_model_path("all-MiniLM-L6-v2"))
    export = EXPORTS / f"{directory.name}-{model_digest(directory)}.onnx"
    assert export.is_file()
    script = (
        "import json, sys\nfrom pathlib import Path\nfrom knowledge_base.onnx_embedding import OnnxEmbedder\n"
        "e = OnnxEmbedder(export_dir=Path(sys.argv[1]), threads=1)\nv = e.embed(['is my hub broken'])\n"
        "print(json.dumps({'onnx': e.runs_in_onnxruntime, 'torch': 'torch' in sys.modules, 'v': v[0].tolist()}))\n"
    )
    found = _run_in_fresh_python(script, EXPORTS)
    assert found["onnx"] and not found["torch"], found  # a worker with an export never loads torch
    expected = onnx_embedder.embed(["is my hub broken"])[0]
    assert np.abs(np.array(found["v"]) - expected).max() < 1e-6

    damaged_dir = tmp_path / "exports"
    damaged_dir.mkdir()
    (damaged_dir / export.name).write_bytes(b"not an onnx model")
    redone = subprocess.run(
        [sys.executable, "-c", script, str(damaged_dir)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert redone.returncode == 0, redone.stderr[-2000:]
    assert json.loads(redone.stdout.splitlines()[-1])["onnx"]
    assert "exporting it again" in redone.stderr
    assert (damaged_dir / export.name).stat().st_size > 1_000_000
    assert not list(damaged_dir.glob("*.part"))


def test_a_model_of_another_shape_runs_in_torch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A model pooled on its first token is not MiniLM's shape: it runs in torch, with its own vectors."""
    source = Path(resolve_model_path("all-MiniLM-L6-v2"))
    model = tmp_path / "cls-model"
    shutil.copytree(source, model, ignore=shutil.ignore_patterns("model.safetensors"))
    (model / "model.safetensors").symlink_to(source / "model.safetensors")
    pooling = model / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps(config | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    embedder = OnnxEmbedder(str(model), export_dir=tmp_path / "exports", threads=1)
    with caplog.at_level("WARNING"):
        vectors = embedder.embed(["is my hub broken", "how do I pay my bill"])
    assert not embedder.runs_in_onnxruntime and "runs in torch" in caplog.text and "pooling" in caplog.text
    assert not (tmp_path / "exports").exists()
    expected = SentenceTransformerEmbedder(str(model), threads=1).embed(["is my hub broken", "how do I pay my bill"])
    assert np.abs(vectors - expected).max() < 1e-6
    mean_pooled = SentenceTransformerEmbedder(threads=1).embed(["is my hub broken"])
    assert float(vectors[0] @ mean_pooled[0]) < 0.999  # the fallback really used the model's own pooling


def test_one_thread_holds_onnxruntime_faiss_and_blas_to_one(tmp_path: Path) -> None:
    script = (
        "import json, sys, faiss, threadpoolctl\nfrom pathlib import Path\n"
        "from knowledge_base.onnx_embedding import OnnxEmbedder\n"
        "OnnxEmbedder(export_dir=Path(sys.argv[1]), threads=1).embed(['is my hub broken'])\n"
        "info = {i['internal_api']: i['num_threads'] for i in threadpoolctl.threadpool_info()}\n"
        "print(json.dumps({'after': info, 'faiss': faiss.omp_get_max_threads()}))\n"
    )
    found = _run_in_fresh_python(script, EXPORTS)
    assert found["after"].get("openblas") == 1 and found["faiss"] == 1, found


def _run_in_fresh_python(script: str, export_dir: Path) -> Any:
    """Runs a script in a new interpreter (nothing imported yet) and returns the JSON of its last line."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(export_dir)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
