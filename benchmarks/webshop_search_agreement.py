"""How closely hero-gym's in-process WebShop search reproduces upstream's Lucene ranking.

Needs Java (11+) and an Anserini fat jar, e.g. the one inside the ``pyserini==0.22.1`` wheel
(``pip install --no-deps --target /tmp/ps pyserini==0.22.1``; jar under ``pyserini/resources/jars/``). Not a test:
CI has no JVM. Builds the Lucene index from upstream's document format over the 1k catalogue, runs the first N
synthetic goal instructions and the first N human instruction strings with BM25 (k1=0.9, b=0.4, k=50), and prints
top-50/top-10 overlap, top-1 agreement and identical-list counts against :class:`SearchEngine`.

    python benchmarks/webshop_search_agreement.py --jar /tmp/ps/pyserini/resources/jars/anserini-0.22.1-fatjar.jar
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from hero_gym import data as hg_data
from hero_gym.envs.webshop.catalogue import load_catalogue
from hero_gym.envs.webshop.goals import build_goals
from hero_gym.envs.webshop.search import SearchEngine, document_text


def lucene_runs(jar: str, docs: dict[str, str], queries: dict[str, str], work: Path) -> dict[str, list[str]]:
    (work / "docs").mkdir()
    with open(work / "docs" / "docs.jsonl", "w") as f:
        for asin, text in docs.items():
            f.write(json.dumps({"id": asin, "contents": text}) + "\n")
    with open(work / "q.tsv", "w") as f:
        for qid, q in queries.items():
            f.write(f"{qid}\t{' '.join(q.split())}\n")
    subprocess.run(["java", "-cp", jar, "io.anserini.index.IndexCollection", "-collection", "JsonCollection",
                    "-generator", "DefaultLuceneDocumentGenerator", "-threads", "1", "-input", str(work / "docs"),
                    "-index", str(work / "idx"), "-storePositions", "-storeDocvectors", "-storeRaw"],
                   check=True, capture_output=True)
    subprocess.run(["java", "-cp", jar, "io.anserini.search.SearchCollection", "-index", str(work / "idx"),
                    "-topicreader", "TsvString", "-topics", str(work / "q.tsv"), "-output", str(work / "run.txt"),
                    "-bm25", "-bm25.k1", "0.9", "-bm25.b", "0.4", "-hits", "50"], check=True, capture_output=True)
    runs: dict[str, list[str]] = defaultdict(list)
    for line in open(work / "run.txt"):
        qid, _, asin, *_ = line.split()
        runs[qid].append(asin)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jar", required=True, help="Anserini fat jar")
    ap.add_argument("-n", type=int, default=500, help="queries per kind")
    args = ap.parse_args()
    cat = load_catalogue("1k")
    engine = SearchEngine(cat, use_cache=False)
    queries = {f"syn{i}": g["instruction_text"] for i, g in enumerate(build_goals(cat, "synthetic")[:args.n])}
    human = json.loads(hg_data.path("webshop-1k", "webshop/human_goals.json").read_text())
    queries.update({f"hum{i}": q for i, q in enumerate(human[:args.n])})
    with tempfile.TemporaryDirectory() as tmp:
        runs = lucene_runs(args.jar, {p["asin"]: document_text(p) for p in cat.products}, queries, Path(tmp))
    for kind in ("syn", "hum"):
        ids = [q for q in queries if q.startswith(kind)]
        o50 = o10 = top1 = same = 0.0
        for q in ids:
            ours, ref = engine.search(queries[q], 50), runs[q]
            o50 += len(set(ours) & set(ref)) / max(len(ref), 1)
            o10 += len(set(ours[:10]) & set(ref[:10])) / max(len(ref[:10]), 1)
            top1 += ours[:1] == ref[:1]
            same += ours == ref
        n = len(ids)
        print(f"{kind}: {n} queries  top-50 overlap {o50 / n:.4f}  top-10 overlap {o10 / n:.4f}  "
              f"top-1 {int(top1)}/{n}  identical top-50 lists {int(same)}/{n}")


if __name__ == "__main__":
    main()
