"""The shop's knowledge base on a real SQLite store with the real USE encoder: every import format
from small fixtures written for these tests, incremental re-import, removal, search, bad input,
the exact and the ANN index, the ANN cache, and the schema migration."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from alembic import command
from sqlalchemy import create_engine, select

from app.knowledge import (
    DEMO_SOURCE,
    KnowledgeBase,
    KnowledgeError,
    format_of,
    import_demo_faq,
)
from app.knowledge.index import VectorIndex
from app.scoring.corpus import DialoguePair
from app.store import KnowledgeEntryRow, Store, SuggestionCandidate, migrate, open_store
from app.store.knowledge import NewCandidate

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'db' / 'xiaoer.db'}") as opened:
        yield opened


@pytest.fixture
def kb(store: Store) -> KnowledgeBase:
    return KnowledgeBase(store)


# --- formats ------------------------------------------------------------------------------------

FORMAT_CASES = [
    # file, format, kind, entries, skipped, (query, answer) of one entry
    ("shop_faq.md", "faq", "faq", 4, 1, ("可以开发票吗？", "可以开电子发票，确认收货后发到邮箱。")),
    ("faq.csv", "faq", "faq", 2, 1, ("满减能叠加吗？", "店铺券每单一张，可以和平台满减叠加")),
    ("faq.csv", "csv", "faq", 2, 1, ("有价格保护吗？", "15天内降价可退差价")),
    ("dialogues.csv", "csv", "dialogue", 3, 1, ("什么时候发货", "今天下午就发")),
    ("dialogues.jsonl", "jsonl", "dialogue", 3, 2, ("发什么快递", "默认中通，可以补差价发顺丰")),
    ("chat.txt", "jddc2019", "dialogue", 3, 1, ("那我拍了", "好的，今天发货")),
    ("jddc2018", "jddc2018", "dialogue", 2, 0, ("查一下物流", "亲，今天下午发货哦")),
    ("jddc2018/train.enc", "jddc2018", "dialogue", 2, 0, ("衣服能退吗", "可以的，七天无理由")),
]


@pytest.mark.parametrize(("name", "fmt", "kind", "count", "skipped", "pair"), FORMAT_CASES)
def test_each_format_imports_its_entries(
    kb: KnowledgeBase,
    name: str,
    fmt: str,
    kind: str,
    count: int,
    skipped: int,
    pair: tuple[str, str],
) -> None:
    report = kb.import_file(FIXTURES / name, fmt, name="src")  # type: ignore[arg-type]
    assert (report.kind, report.read, report.added, report.skipped) == (kind, count, count, skipped)
    assert len(report.problems) == skipped
    entries = list(kb.entries("src"))
    assert len(entries) == count == len(kb)
    assert {e.kind for e in entries} == {kind}
    assert pair in {(e.query, e.answer) for e in entries}
    for entry in entries:
        assert entry.context[-1] == entry.query
        if kind == "faq":
            assert entry.context == (entry.query,)
    [source] = kb.sources()
    assert (source.name, source.kind, source.format, source.entries) == ("src", kind, fmt, count)


def test_dialogue_contexts_keep_the_turns_before_the_reply(kb: KnowledgeBase) -> None:
    kb.import_file(FIXTURES / "dialogues.csv")
    by_answer = {e.answer: e for e in kb.entries()}
    # Rows of one conversation build up its context; another conversation starts afresh.
    assert by_answer["今天下午就发"].context == ("你好在吗", "亲在的呢", "什么时候发货")
    assert by_answer["今天下午就发"].conversation == "c1"
    assert by_answer["亲已经是活动价了哦"].context == ("能便宜点吗",)
    kb.import_file(FIXTURES / "chat.txt")
    turns = next(e for e in kb.entries("chat") if e.answer == "好的，今天发货").context
    assert turns == ("羽绒服有M码吗", "有的亲，M码现货", "那我拍了")


def test_the_format_is_told_by_the_path() -> None:
    assert format_of(FIXTURES / "jddc2018") == "jddc2018"
    assert format_of(FIXTURES / "jddc2018" / "train.enc") == "jddc2018"
    assert format_of(FIXTURES / "dialogues.jsonl") == "jsonl"
    assert format_of(FIXTURES / "shop_faq.md") == "faq"
    assert format_of(FIXTURES / "faq.csv") == "csv"
    assert format_of(FIXTURES / "chat.txt") == "jddc2019"
    with pytest.raises(KnowledgeError, match="--format"):
        format_of(Path("knowledge.xlsx"))


def test_pairs_in_memory_are_imported(kb: KnowledgeBase) -> None:
    pairs = [
        DialoguePair(("你好", "您好", "发货了吗"), "已经发出了", "conv-7"),
        (["能开发票吗"], "可以的"),
        (["   "], "没有问题的回复被跳过"),
    ]
    report = kb.import_pairs("split-a", pairs)
    assert (report.format, report.added, report.skipped) == ("pairs", 2, 1)
    entries = {e.query: e for e in kb.entries("split-a")}
    assert entries["发货了吗"].conversation == "conv-7"
    assert entries["能开发票吗"].context == ("能开发票吗",)
    faq = kb.import_pairs("faq-a", [(["退货运费谁出"], "买家承担")], kind="faq")
    assert faq.kind == "faq"
    assert [e.kind for e in kb.entries("faq-a")] == ["faq"]


# --- re-import and removal ---------------------------------------------------------------------


def embeddings(store: Store) -> dict[int, bytes]:
    with store.session() as session:
        rows = session.execute(select(KnowledgeEntryRow.id, KnowledgeEntryRow.embedding))
        return {i: e for i, e in rows}


def test_reimport_adds_the_new_removes_the_vanished_and_keeps_the_rest(
    kb: KnowledgeBase, store: Store, tmp_path: Path
) -> None:
    faq = tmp_path / "faq.md"
    faq.write_text(
        "## 什么时候发货\n当天发货\n\n## 包邮吗\n满99包邮\n\n## 能开发票吗\n可以\n", "utf-8"
    )
    first = kb.import_file(faq)
    assert (first.added, first.removed, first.unchanged) == (3, 0, 0)
    before = embeddings(store)

    again = kb.import_file(faq)
    assert (again.read, again.added, again.removed, again.unchanged) == (3, 0, 0, 3)
    assert embeddings(store) == before

    faq.write_text(
        "## 什么时候发货\n当天发货\n\n## 包邮吗\n满199包邮\n\n## 可以指定快递吗\n补差价发顺丰\n",
        "utf-8",
    )
    changed = kb.import_file(faq)
    assert (changed.added, changed.removed, changed.unchanged) == (2, 2, 1)
    after = embeddings(store)
    kept = set(before) & set(after)
    assert len(kept) == 1 and after[next(iter(kept))] == before[next(iter(kept))]
    answers = {e.query: e.answer for e in kb.entries()}
    assert answers == {
        "什么时候发货": "当天发货",
        "包邮吗": "满199包邮",
        "可以指定快递吗": "补差价发顺丰",
    }
    assert kb.sources()[0].entries == 3
    assert kb.search("能开发票吗", k=1)[0].entry.query != "能开发票吗"  # gone from the index too


def test_duplicates_in_a_file_are_imported_once(kb: KnowledgeBase, tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("question,answer\n发货吗,发\n发货吗,发\n包邮吗,包\n", "utf-8")
    report = kb.import_file(path)
    assert (report.added, report.duplicates) == (2, 1)


def test_remove_deletes_a_source_and_its_entries_from_the_index(kb: KnowledgeBase) -> None:
    kb.import_file(FIXTURES / "shop_faq.md", name="faq")
    kb.import_file(FIXTURES / "dialogues.jsonl", name="chats")
    assert kb.search("可以开发票吗", k=1)[0].entry.source == "faq"
    assert kb.remove("faq") == 4
    assert [s.name for s in kb.sources()] == ["chats"]
    assert len(kb) == 3
    assert {h.entry.source for h in kb.search("可以开发票吗", k=10)} == {"chats"}
    with pytest.raises(KnowledgeError, match="No knowledge source named 'faq'"):
        kb.remove("faq")


def test_a_default_name_taken_by_another_file_is_refused(kb: KnowledgeBase, tmp_path: Path) -> None:
    kb.import_file(FIXTURES / "faq.csv")
    other = tmp_path / "faq.csv"
    shutil.copy(FIXTURES / "faq.csv", other)
    with pytest.raises(KnowledgeError, match="already exists"):
        kb.import_file(other)
    assert kb.import_file(other, name="faq-2").added == 2
    # The same name given on purpose replaces that source's entries with the new file's.
    other.write_text("question,answer\n几天到,2到4天\n", "utf-8")
    report = kb.import_file(other, name="faq")
    assert (report.added, report.removed) == (1, 2)


def test_a_source_keeps_its_kind(kb: KnowledgeBase) -> None:
    kb.import_file(FIXTURES / "faq.csv", name="mixed")
    with pytest.raises(KnowledgeError, match="holds faq entries"):
        kb.import_file(FIXTURES / "dialogues.csv", name="mixed")


# --- search ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "question"),
    [
        ("今天付款今天能发货吗", "什么时候发货？"),
        ("你们发的什么快递", "发什么快递？可以指定快递吗？"),
        ("衣服尺码大了想换小一码", "尺码不合适可以换吗？"),
        ("钱什么时候退回来", "退款多久到账？"),
        ("拉链坏了保修吗", "羽绒服保修吗？"),
        ("洗衣机能洗吗", "羽绒服可以机洗吗？"),
    ],
)
def test_search_finds_the_entry_that_answers(kb: KnowledgeBase, query: str, question: str) -> None:
    report = import_demo_faq(kb)
    assert report.source == DEMO_SOURCE and report.added >= 20
    hits = kb.search(query, k=3)
    assert hits[0].entry.query == question
    assert hits == sorted(hits, key=lambda h: -h.similarity)
    assert all(-1.0 <= h.similarity <= 1.0001 for h in hits)


def test_search_by_kind_and_in_batches(kb: KnowledgeBase) -> None:
    kb.import_file(FIXTURES / "shop_faq.md")
    kb.import_file(FIXTURES / "dialogues.jsonl")
    assert {h.entry.kind for h in kb.search("开发票", k=10, kind="faq")} == {"faq"}
    assert {h.entry.kind for h in kb.search("开发票", k=10, kind="dialogue")} == {"dialogue"}
    assert len(kb.search("开发票", k=10)) == 7
    assert kb.search("   ") == []
    vectors = kb.encode(["能开发票吗", "什么时候发货"])
    batch = kb.search_vectors(vectors, k=2)
    assert batch[0][0].entry.query == "能开发票吗"
    assert [[h.entry.id for h in row] for row in batch] == [
        [h.entry.id for h in kb.search(q, k=2)] for q in ("能开发票吗", "什么时候发货")
    ]
    with pytest.raises(ValueError, match="kind"):
        kb.search("开发票", kind="policy")


def test_an_empty_knowledge_base_finds_nothing(kb: KnowledgeBase) -> None:
    assert len(kb) == 0
    assert kb.search("什么时候发货") == []


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fmt", "message"),
    [
        (b"", "faq", "empty"),
        (b"  \n\n ", "jsonl", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "csv", "binary"),
        ("question,answer\n发货吗,今天发\n包邮吗,满99包邮\n".encode("gb18030"), "csv", "GBK"),
        ("## 发货吗\n今天发\n".encode("utf-16"), "faq", "UTF-16"),
        (b"question;answer\nfoo;bar\n", "csv", "first row must name the columns"),
        (b'{"broken": \n[1, 2]\n', "jsonl", "nothing readable as jsonl"),
        (b"just a title\n\nno questions here\n", "faq", "nothing readable as faq"),
        (b"a\tb\tc\n", "jddc2019", "nothing readable as jddc2019"),
    ],
)
def test_bad_files_are_refused_with_a_clear_error_and_nothing_saved(
    kb: KnowledgeBase, tmp_path: Path, content: bytes, fmt: str, message: str
) -> None:
    path = tmp_path / f"bad.{ {'faq': 'md', 'jddc2019': 'txt'}.get(fmt, fmt) }"
    path.write_bytes(content)
    with pytest.raises(KnowledgeError, match=message):
        kb.import_file(path, fmt)  # type: ignore[arg-type]
    assert kb.sources() == [] and len(kb) == 0


def test_a_few_broken_lines_are_skipped_and_counted(kb: KnowledgeBase, tmp_path: Path) -> None:
    good = [f'{{"query": "问题{i}", "reply": "回答{i}"}}' for i in range(20)]
    lines = [*good[:10], "{not json", '{"query": "坏\xff"}', *good[10:]]
    path = tmp_path / "chats.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8").replace("\xff".encode(), b"\xff"))
    report = kb.import_file(path)
    assert (report.added, report.skipped) == (20, 2)
    assert report.problems[0].startswith("line 11")
    assert report.problems[1].startswith("line 12: not UTF-8")
    assert "2 unreadable lines skipped" in report.summary()


def test_missing_files_and_formats(kb: KnowledgeBase, tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="no such file"):
        kb.import_file(tmp_path / "nope.md")
    (tmp_path / "only.enc").write_text("你好\n", "utf-8")
    with pytest.raises(KnowledgeError, match=r"only\.dec: no such file"):
        kb.import_file(tmp_path / "only.enc")
    (tmp_path / "short.enc").write_text("你好\n在吗\n", "utf-8")
    (tmp_path / "short.dec").write_text("在的\n", "utf-8")
    with pytest.raises(KnowledgeError, match="has 2 lines"):
        kb.import_file(tmp_path / "short.enc")
    with pytest.raises(KnowledgeError, match="Unknown knowledge format"):
        kb.import_file(FIXTURES / "faq.csv", "xlsx")  # type: ignore[arg-type]


# --- the index -----------------------------------------------------------------------------------


def planted(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n random unit vectors, and 100 queries each a noisy copy of one of them (its answer)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    answers = rng.choice(n, 100, replace=False)
    queries = vectors[answers] + 0.02 * rng.standard_normal((100, dim)).astype(np.float32)
    return vectors, queries, answers


def test_the_ann_index_agrees_with_exact_search_on_the_top_hit() -> None:
    vectors, queries, answers = planted(20_000, 512)
    ids = np.arange(1000, 1000 + len(vectors))
    exact = VectorIndex.build(ids, vectors, 512, ann_threshold=10**9)
    ann = VectorIndex.build(ids, vectors, 512, ann_threshold=1000)
    assert (exact.kind, ann.kind) == ("exact", "ivf")
    exact_sims, exact_ids = exact.search(queries, 10)
    ann_sims, ann_ids = ann.search(queries, 10)
    assert (exact_ids[:, 0] == ids[answers]).all()
    agree = (ann_ids[:, 0] == exact_ids[:, 0]).mean()
    assert agree >= 0.95, agree
    both = ann_ids[:, 0] == exact_ids[:, 0]
    np.testing.assert_allclose(ann_sims[both, 0], exact_sims[both, 0], atol=1e-5)


def test_the_index_adds_and_removes_in_place() -> None:
    vectors, queries, answers = planted(3000, 64, seed=1)
    for threshold in (10**9, 500):
        index = VectorIndex(64, ann_threshold=threshold)
        index.add(np.arange(2000), vectors[:2000])
        index.add(np.arange(2000, 3000), vectors[2000:])
        assert len(index) == 3000
        assert index.kind == ("exact" if threshold > 3000 else "ivf")
        target = int(answers[0])
        assert index.search(queries[:1], 1)[1][0, 0] == target
        assert index.remove([target, 99_999]) == 1
        assert len(index) == 2999
        assert target not in index.search(queries[:1], 5)[1][0]


def test_the_knowledge_base_switches_to_ann_and_caches_it(store: Store, tmp_path: Path) -> None:
    pairs = [
        ([f"第{i}号问题：订单{i * 7919 % 1000}号什么时候发货"], f"回答{i}") for i in range(300)
    ]
    kb = KnowledgeBase(store, ann_threshold=200)
    kb.import_pairs("many", pairs)
    assert kb.index_kinds()["dialogue"] == "ivf"
    cache = kb.cache_dir / "knowledge-dialogue.faiss"
    assert cache.is_file()
    if os.name == "posix":  # the vectors encode customers' words: this user's only
        assert cache.stat().st_mode & 0o777 == 0o600
    probe = "第123号问题：订单"
    expected = [h.entry.id for h in KnowledgeBase(store, ann_threshold=10**9).search(probe, 3)]

    reopened = KnowledgeBase(store, ann_threshold=200)  # loads the cached index
    assert [h.entry.id for h in reopened.search(probe, 3)][:1] == expected[:1]

    cache.write_bytes(cache.read_bytes()[:1000])  # a damaged cache is rebuilt, not fatal
    rebuilt = KnowledgeBase(store, ann_threshold=200)
    assert [h.entry.id for h in rebuilt.search(probe, 3)][:1] == expected[:1]
    assert len(cache.read_bytes()) > 1000


# --- the store -----------------------------------------------------------------------------------


def test_the_migration_upgrades_a_database_at_0002(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(migrate.alembic_config(conn), "0002")
        conn.exec_driver_sql(
            "INSERT INTO customers (masked_id, created_at) VALUES ('c1', '2026-01-01 00:00:00')"
        )
    engine.dispose()
    with open_store(f"sqlite:///{path}") as store, store.session() as session:
        names = set(
            session.connection()
            .exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
            .scalars()
        )
        assert {"knowledge_sources", "knowledge_entries", "suggestion_candidates"} <= names
        assert (
            session.connection().exec_driver_sql("SELECT masked_id FROM customers").scalar() == "c1"
        )


def test_candidates_are_recorded_and_outlive_their_knowledge_entry(
    kb: KnowledgeBase, store: Store
) -> None:
    kb.import_file(FIXTURES / "shop_faq.md", name="faq")
    hit = kb.search("能开发票吗", k=1)[0]
    with store.session() as session:
        customer = store.get_or_create_customer(session, "tb_1")
        conversation = store.open_conversation(session, customer.id, "manual")
        message = store.add_message(session, conversation.id, "customer", "能开发票吗")
        rows = store.record_candidates(
            session,
            message.id,
            [
                NewCandidate(0, "faq", hit.entry.answer, 0.9, hit.entry.id, None, {"sim": 0.9}),
                NewCandidate(1, "model", "可以的亲", 0.4),
            ],
        )
        draft = store.add_draft(
            session,
            message.id,
            hit.entry.answer,
            model_profile="faq",
            latency_ms=1,
            prompt_tokens=0,
            completion_tokens=0,
        )
        store.choose_candidate(session, rows[1].id)
        store.choose_candidate(session, rows[0].id, draft.id)
        message_id = message.id
    with store.session() as session:
        got = store.candidates_for(session, message_id)
        assert [(c.rank, c.source, c.chosen) for c in got] == [
            (0, "faq", True),
            (1, "model", False),
        ]
        assert got[0].draft_id is not None and got[0].features == {"sim": 0.9}
    kb.remove("faq")
    with store.session() as session:
        kept = session.scalars(select(SuggestionCandidate).order_by(SuggestionCandidate.rank)).all()
        assert kept[0].knowledge_entry_id is None and kept[0].text == hit.entry.answer


# --- command line and bench -----------------------------------------------------------------------


def test_the_knowledge_commands(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from app.cli import main

    assert main(["knowledge", "import", "--demo"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["source"], report["kind"]) == (DEMO_SOURCE, "faq") and report["added"] >= 20
    assert main(["knowledge", "import", str(FIXTURES / "dialogues.jsonl"), "--name", "chats"]) == 0
    capsys.readouterr()
    assert main(["knowledge", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {s["name"]: s["entries"] for s in listed["sources"]} == {
        DEMO_SOURCE: report["added"],
        "chats": 3,
    }
    assert main(["knowledge", "search", "能开发票吗", "--k", "2", "--kind", "faq"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["query"] for h in hits] == ["可以开发票吗？", "发票抬头填错了怎么办？"]
    assert main(["knowledge", "remove", "chats"]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": "chats", "entries": 3}
    assert main(["knowledge", "remove", "chats"]) == 1
    assert "No knowledge source named 'chats'" in capsys.readouterr().err
    assert main(["knowledge", "import", str(FIXTURES / "faq.csv"), "--format", "jddc2019"]) == 1
    assert "nothing readable as jddc2019" in capsys.readouterr().err


def test_the_bench_measures_both_indexes() -> None:
    from benchmarks import knowledge as bench

    small = bench.bench_size(2000)
    assert (small["index"], small["recall_at_1"]) == ("exact", 1.0)
    assert small["p50_query_ms"] <= small["p95_query_ms"]
    large = bench.bench_size(bench.ANN_THRESHOLD)
    assert large["index"] == "ivf" and large["top1_agrees_with_exact"] >= 0.95


def test_an_import_racing_another_of_the_same_source_fails_cleanly(
    kb: KnowledgeBase, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb.import_file(FIXTURES / "faq.csv", name="faq")
    before = embeddings(store)
    # As if another import had added the same entries after this one read the source's hashes.
    monkeypatch.setattr(store, "knowledge_hashes", lambda session, source_id: {})
    with pytest.raises(KnowledgeError, match="another import of this source ran"):
        kb.import_file(FIXTURES / "faq.csv", name="faq")
    assert embeddings(store) == before
    assert kb.sources()[0].entries == 2
