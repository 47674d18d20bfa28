"""Benchmark of the knowledge base: publish-to-searchable latency across processes, search latency and recall
of the index at 1k/10k/100k vectors, and full re-index throughput.

    python -m bench.kb --json [--out FILE] [--rasa] [--edits 20] [--sizes 1000,10000,100000]

1. Publish latency: the default FAQ (training_data/faq.yml) in a scratch SQLite database; a second process
   searches in a loop (default refresh interval, 0.2 s) while this one adds a paraphrase to an entry and
   publishes it; measured from the start of the publish call to the moment the other process finds the
   new text as its top hit. With --rasa, the same run also times retraining a Rasa NLU model that holds
   the project's NLU data plus the FAQ as ResponseSelector retrieval intents (`faq/<slug>`), which is what
   a single FAQ edit would cost if the answers lived in Rasa.
2. Search: the real FAQ vectors (MiniLM) plus random unit vectors up to each size (random vectors stand
   in for a large FAQ; they are near-orthogonal to real text, so they make the haystack, not the
   needles). Queries are real tweets from training_data/nlu*/ (never in the index). Recall@1 is the share
   of queries whose approximate top-1 is the exact (flat) top-1, or a vector exactly as near (ties);
   it is also given for random queries, a harsher test where all neighbours are nearly equidistant.
3. Re-index: `carebot kb reindex` on the FAQ (embed every live text, write the vectors) and a rebuild of
   the index from stored vectors (what a new process does without a saved index).

The embedder runs as carebot configures it: one torch thread per process unless CAREBOT_KB_EMBEDDING_THREADS
says otherwise (on 2 cores, 2 threads embed bulk text ~1.7x faster but make a single publish 3-10x slower
while another process is busy).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sqlalchemy.orm import sessionmaker

from bench.common import emit, intent_examples, machine, percentile
from bot.db import make_engine, upgrade
from bot.kb import kb_config, make_embedder
from bot.settings import PROJECT_ROOT, load_settings
from knowledge_base.index import FaqIndex, IndexedText
from knowledge_base.io import read_file
from knowledge_base.search import FaqSearcher
from knowledge_base.service import KnowledgeBaseService

FAQ = PROJECT_ROOT / "training_data" / "faq.yml"


def _ms(values: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values, 50), 2), "p95": round(percentile(values, 95), 2)}


# ------------------------------------------------------------------ 1. publish latency
def watch(url: str, index_dir: Path) -> None:
    """The second process: for each query on stdin, search until it is the top hit, then print the time."""
    embedder = make_embedder(kb_config(load_settings()))
    searcher = FaqSearcher(sessionmaker(make_engine(url)), embedder, index_dir=index_dir)
    searcher.search("warm up")
    print("ready", flush=True)
    for line in sys.stdin:
        query = line.rstrip("\n")
        vector = searcher.embedder.embed([query])[0]  # embedded once: the loop measures freshness, not MiniLM
        print("watching", flush=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            top = searcher.search_vector(vector, 1).top
            if top is not None and top.text == query:
                print(f"seen {time.time()!r}", flush=True)
                break
            time.sleep(0.002)
        else:
            print("timeout", flush=True)


def publish_latency(service: KnowledgeBaseService, url: str, work: Path, edits: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.kb", "--watch", url, str(work / "watcher-index")]
    totals, calls, after_commit = [], [], []
    slugs = [e.slug for e in service.list_entries(status="published")]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT) as child:
        assert child.stdin is not None and child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        for n in range(edits):
            slug = slugs[n * 7 % len(slugs)]
            query = f"benchmark probe {n}: does the pigeon post reach flat {n * 13 % 97}"
            child.stdin.write(query + "\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "watching"
            time.sleep(0.3)
            entry = service.get(slug)
            started = time.time()
            service.edit(slug, author="bench", paraphrases=[*entry.content.paraphrases, query])
            service.publish(slug, author="bench")
            committed = time.time()
            seen = child.stdout.readline().split()
            if seen[0] != "seen":
                raise RuntimeError(f"the second process never saw edit {n}")
            totals.append((float(seen[1]) - started) * 1000)
            calls.append((committed - started) * 1000)
            after_commit.append((float(seen[1]) - committed) * 1000)
        child.stdin.close()
        child.wait(timeout=30)
    return {
        "edits": edits,
        "refresh_interval_s": 0.2,
        "publish_to_searchable_ms": _ms(totals),
        "publish_call_ms": _ms(calls),
        "commit_to_searchable_ms": _ms(after_commit),
        "max_ms": round(max(totals), 1),
        "goal_ms": 1000,
    }


def rasa_retrain(work: Path) -> dict[str, Any]:
    """Train a Rasa NLU model with the FAQ as retrieval intents, as a single FAQ edit would require."""
    from bot.nlu.training import TrainingInputs, train

    settings = load_settings()
    settings = settings.model_copy(update={"data_dir": work / "rasa"})
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    base = TrainingInputs.from_dir(settings.training_data_dir)
    faq_dir = work / "rasa-faq"
    faq_dir.mkdir()
    records = read_file(FAQ)
    nlu = [
        {"intent": f"faq/{r.content.slug}", "examples": "".join(f"- {t}\n" for t in r.content.texts)} for r in records
    ]
    responses = {f"utter_faq/{r.content.slug}": [{"text": r.content.answer}] for r in records}
    faq_file = faq_dir / "faq_retrieval.yml"
    faq_file.write_text(yaml.safe_dump({"version": "3.1", "nlu": nlu, "responses": responses}, allow_unicode=True))
    config = yaml.safe_load(base.config.read_text())
    config["pipeline"].insert(
        len(config["pipeline"]) - 1, {"name": "ResponseSelector", "retrieval_intent": "faq", "epochs": 100}
    )
    config_file = faq_dir / "config.yml"
    config_file.write_text(yaml.safe_dump(config))
    inputs = TrainingInputs(config=config_file, nlu_files=(*base.nlu_files, faq_file), domain=None)
    started = time.perf_counter()
    train(settings, inputs, force=True)
    return {
        "retrain_s": round(time.perf_counter() - started, 1),
        "retrieval_intents": len(records),
        "examples": sum(len(r.content.texts) for r in records),
        "pipeline": [step["name"] for step in config["pipeline"]],
        "note": "project NLU data + the FAQ as faq/<slug> retrieval intents; ResponseSelector 100 epochs",
    }


# ------------------------------------------------------------------ 2. search at scale
def random_units(count: int, dimension: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def search_at_scale(faq_vectors: np.ndarray, queries: np.ndarray, sizes: list[int]) -> list[dict[str, Any]]:
    dimension = faq_vectors.shape[1]
    random_queries = random_units(200, dimension, seed=2)
    results = []
    for size in sizes:
        filler = random_units(max(size - len(faq_vectors), 0), dimension, seed=size)
        vectors = np.concatenate([faq_vectors, filler])[:size]
        ids = list(range(1, size + 1))
        texts = [IndexedText(i // 6, f"e{i // 6}", "") for i in ids]
        started = time.perf_counter()
        index = FaqIndex(dimension, "bench")
        index.add(ids, vectors, texts)
        build_s = time.perf_counter() - started
        exact = FaqIndex(dimension, "bench", exact_limit=10**9)
        exact.add(ids, vectors, texts)
        latencies = []
        for query in queries:
            began = time.perf_counter()
            index.search(query, 10)
            latencies.append((time.perf_counter() - began) * 1000)

        def recall(query_set: np.ndarray, index: FaqIndex = index, exact: FaqIndex = exact) -> float:
            # A hit: the approximate top-1 is the exact top-1, or a vector exactly as near (the FAQ has ties).
            hits = [index.search(q, 1)[0][0][1] >= exact.search(q, 1)[0][0][1] - 1e-6 for q in query_set]
            return round(float(np.mean(hits)), 4)

        results.append({
            "vectors": size, "index": index.kind, "build_s": round(build_s, 2),
            "search_k10_ms": _ms(latencies), "recall_at_1_real_queries": recall(queries),
            "recall_at_1_random_queries": recall(random_queries),
        })  # fmt: skip
    return results


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--rasa", action="store_true", help="also time a Rasa retrain with the FAQ in it (minutes)")
    parser.add_argument("--edits", type=int, default=20, help="single edits to publish for the latency figures")
    parser.add_argument("--sizes", default="1000,10000,100000", help="index sizes, comma-separated")
    parser.add_argument("--watch", nargs=2, metavar=("URL", "INDEX_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watch:
        watch(args.watch[0], Path(args.watch[1]))
        return 0

    config = kb_config(load_settings())
    embedder = make_embedder(config)
    report: dict[str, Any] = {
        "benchmark": "kb",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": embedder.name,
        "embedding_threads": config.embedding_threads or "torch default",
    }
    with tempfile.TemporaryDirectory(prefix="carebot-bench-kb-") as work_name:
        work = Path(work_name)
        url = f"sqlite:///{work / 'carebot.db'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = sessionmaker(engine)
        service = KnowledgeBaseService(sessions, embedder)
        started = time.perf_counter()
        service.import_entries(read_file(FAQ), author="bench")
        report["faq_import_s"] = round(time.perf_counter() - started, 2)

        report["publish"] = publish_latency(service, url, work, args.edits)
        if args.rasa:
            report["rasa"] = rasa_retrain(work)

        searcher = FaqSearcher(sessions, embedder)
        faq_vectors = np.stack([_stored(searcher.index, i) for i in sorted(searcher.index._texts)])
        texts = [e.text for path in sorted((PROJECT_ROOT / "training_data").glob("nlu*/*.yml"))
                 for e in intent_examples(path)]  # fmt: skip
        queries = embedder.embed(texts[::3][:400])
        end_to_end = []
        for text in texts[1::3][:200]:
            began = time.perf_counter()
            searcher.search(text, 5)
            end_to_end.append((time.perf_counter() - began) * 1000)
        report["search_end_to_end_faq"] = {
            "vectors": len(searcher.index), "queries": len(end_to_end), "latency_ms": _ms(end_to_end),
            "note": "search(text, 5) on the FAQ: embedding the tweet with MiniLM plus the index",
        }  # fmt: skip
        report["search"] = search_at_scale(faq_vectors, queries, [int(s) for s in args.sizes.split(",")])
        report["search_queries"] = len(queries)

        started = time.perf_counter()
        count = service.reindex(author="bench")
        reindex_s = time.perf_counter() - started
        index = FaqIndex(embedder.dimension, embedder.name)
        started = time.perf_counter()
        with sessions() as session:
            index.rebuild(session)
        rebuild_s = time.perf_counter() - started
        report["reindex"] = {
            "texts": count, "reindex_s": round(reindex_s, 2), "texts_per_s": round(count / reindex_s, 1),
            "index_rebuild_from_stored_vectors_ms": round(rebuild_s * 1000, 1),
        }  # fmt: skip
        engine.dispose()

    emit(report, args.out)
    return 0


def _stored(index: FaqIndex, vector_id: int) -> np.ndarray:
    return np.asarray(index._index.reconstruct(vector_id), dtype=np.float32)


if __name__ == "__main__":
    raise SystemExit(main())
