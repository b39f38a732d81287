"""``/v1/rerank`` and ``/rerank`` (Jina/Cohere shape) on a tiny random-weight reranker: the order and
scores are llama.cpp's own rank output for the same pairs, laid out as llama-server lays them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gguf
import httpx
import pytest

from llamarun.engine import Batch, Context, Model
from llamarun.store import ModelStore
from llamarun.types import ContextOptions
from serve_helpers import Server, start_server
from tinymodel import write_tiny_gguf

pytestmark = pytest.mark.timeout(300)

QUERY = "where is paris"
DOCUMENTS = ["the cat sat on the mat", "paris is in france", "a", "the the the the", "in the heat of the night"]


@pytest.fixture(scope="module")
def ranker_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ranker")
    return write_tiny_gguf(home / "ranker.gguf", pooling=gguf.PoolingType.RANK, add_bos=True, add_eos=True,
                           sep_token=1, seed=3)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, ranker_path: Path, tiny_model_path: Path) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("rerank-store")
    store = ModelStore(home)
    store.create("ranker", ranker_path)
    store.create("tiny", tiny_model_path)
    server = start_server(home, "--ctx", "512", "--parallel", "1")
    try:
        yield server
    finally:
        server.stop()


def llama_cpp_scores(path: Path, query: str, documents: list[str]) -> list[float]:
    """llama.cpp's rank pooling on [BOS] query [EOS] [SEP] document [EOS] (llama-server's layout)."""
    options = ContextOptions(n_ctx=256, n_batch=256, n_ubatch=256, n_seq_max=1, n_threads=1, embeddings=True)
    scores = []
    with Model(path) as model, Context(model, options) as ctx, Batch(256, 1) as batch:
        vocab = model.vocab
        for doc in documents:
            tokens = [vocab.bos, *model.tokenize(query, add_special=False), vocab.eos, 1,
                      *model.tokenize(doc, add_special=False), vocab.eos]
            batch.clear()
            ctx.clear_memory()
            for pos, token in enumerate(tokens):
                batch.add(token, pos, 0, True)
            ctx.decode(batch)
            scores.append(float(ctx.embeddings(0)[0]))
    return scores


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_order_and_scores_are_llama_cpp_rank_output(server: Server, ranker_path: Path, path: str) -> None:
    expected = llama_cpp_scores(ranker_path, QUERY, DOCUMENTS)
    order = sorted(range(len(DOCUMENTS)), key=lambda i: -expected[i])
    documents = [DOCUMENTS[0], {"text": DOCUMENTS[1]}, *DOCUMENTS[2:]]  # Cohere's objects or plain strings
    r = httpx.post(f"{server.url}{path}", json={"model": "ranker", "query": QUERY, "documents": documents},
                   timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["index"] for x in body["results"]] == order
    assert [x["relevance_score"] for x in body["results"]] == pytest.approx([expected[i] for i in order], abs=1e-4)
    assert body["results"][0]["document"] == {"text": DOCUMENTS[order[0]]}
    assert body["usage"]["prompt_tokens"] > 0 and body["model"] == "ranker"


def test_top_n_and_return_documents(server: Server) -> None:
    r = httpx.post(f"{server.url}/v1/rerank", json={"model": "ranker", "query": QUERY, "documents": DOCUMENTS,
                                                    "top_n": 2, "return_documents": False}, timeout=120)
    results = r.json()["results"]
    assert len(results) == 2 and all("document" not in x for x in results)
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    r = httpx.post(f"{server.url}/v1/rerank", json={"model": "ranker", "query": QUERY, "documents": DOCUMENTS[:2],
                                                    "top_n": 10}, timeout=120)
    assert r.status_code == 200 and len(r.json()["results"]) == 2  # more than there are: all of them


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "tiny"}, "tiny"),
    ({"top_n": 10**12}, "top_n"),
    ({"top_n": 0}, "top_n"),
    ({"documents": []}, "documents"),
    ({"documents": ["x"] * 5000}, "documents"),
    ({"documents": ["ok", ""]}, "documents.1"),
    ({"documents": ["ok", {"title": "no text"}]}, "documents.1"),
    ({"documents": ["word " * 600]}, "documents.0"),
    ({"query": 3}, "query"),
])
def test_hostile_requests_are_400s_naming_the_field(server: Server, body: dict, field: str) -> None:
    full = {"model": "ranker", "query": QUERY, "documents": DOCUMENTS, **body}
    r = httpx.post(f"{server.url}/v1/rerank", json=full, timeout=120)
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]["message"], r.text
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
