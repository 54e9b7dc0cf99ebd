"""The HTML report: counts from the Parquet, a deterministic gallery, escaping, self-containment,
and (in headless Chromium) images that decode and paint."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from echocaptions.cli import app
from echocaptions.publish.report_html import ReportError, reason_group, render_report, write_report
from echocaptions.schema import LABEL_NAMES, ORGANS

PER_CLASS = 3
EVIL_CAPTION = '<script>alert("caption")</script> & <b>bold</b>'
EVIL_REPORT = "</pre><img src=x onerror=alert(1)>"


class Page(HTMLParser):
    """The parts of the report the tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.items: dict[str, dict] = {}
        self.thumbs = 0
        self.tags: Counter = Counter()
        self.refs: list[tuple[str, str, str]] = []
        self.section_attrs: dict[str, dict[str, str]] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._item: str | None = None
        self._cand: dict | None = None
        self._text = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        cls = a.get("class", "").split()
        self.tags[tag] += 1
        for name in ("src", "href", "action", "poster", "srcset", "data"):
            if name in a:
                self.refs.append((tag, name, a[name]))
        if tag == "section" and "id" in a:
            self.section_attrs[a["id"]] = a
        if tag == "table" and "id" in a:
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
        elif tag == "figure" and "item" in cls:
            self._item = a["data-id"]
            self.items[self._item] = {"organ": a["data-organ"], "label": a["data-label"], "thumbs": 0,
                                      "cands": []}
        elif tag == "img" and "thumb" in cls:
            self.thumbs += 1
            assert self._item, "a thumbnail outside a gallery item"
            self.items[self._item]["thumbs"] += 1
        elif tag == "li" and "cand" in cls:
            self._cand = {"source": a["data-source"], "chosen": "chosen" in cls, "text": ""}
            self.items[self._item]["cands"].append(self._cand)
        elif tag == "span" and "text" in cls and self._cand is not None:
            self._text = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._item = None
        elif tag == "li":
            self._cand = None
        elif tag == "span":
            self._text = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._text:
            self._cand["text"] += data

    def counts(self, table: str) -> dict[str, int]:
        """name -> count of a count table, without its header and total rows."""
        rows = self.tables[table]
        assert rows[-1][0] == "total"
        return {r[0]: int(r[1]) for r in rows[1:-1]}


def read_rows(out: Path) -> list[dict]:
    rows = []
    for shard in sorted((out / "data").glob("*.parquet")):
        for r in pq.read_table(shard).drop(["image"]).to_pylist():
            r["organ"] = ORGANS[r["organ"]]
            r["label"] = "unlabelled" if r["label"] < 0 else LABEL_NAMES[r["label"]]
            rows.append(r)
    return rows


def expected_sample(rows: list[dict], per_class: int) -> dict[str, tuple[str, str]]:
    """id -> (organ, label) of the rows the gallery must show: lowest BLAKE2b-64 of the id per class."""
    by_class = defaultdict(list)
    for r in rows:
        key = int.from_bytes(hashlib.blake2b(r["id"].encode(), digest_size=8).digest(), "big")
        by_class[(r["organ"], r["label"])].append((key, r["id"]))
    return {i: cls for cls, keys in by_class.items() for _, i in sorted(keys)[:per_class]}


@pytest.fixture(scope="module")
def report(built: Path) -> tuple[Path, str, Page]:
    path = write_report(built, per_class=PER_CLASS)
    html = path.read_text(encoding="utf-8")
    return path, html, Page(html)


@pytest.fixture(scope="module")
def tampered(built: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    """A copy of the build with untrusted text in one row, small row groups and varied rejects."""
    out = tmp_path_factory.mktemp("tampered")
    table = pa.concat_tables([pq.read_table(p) for p in sorted((built / "data").glob("*.parquet"))])
    rows = table.to_pylist()
    victim = min(rows, key=lambda r: r["id"])
    for c in victim["captions"]:
        if c["source"] == victim["caption_source"] and c["text"] == victim["caption"]:
            c["text"] = EVIL_CAPTION
    victim["caption"] = EVIL_CAPTION
    victim["report"] = EVIL_REPORT
    (out / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), out / "data" / "train-00000-of-00001.parquet",
                   row_group_size=16)
    rejects = [
        {"source": "busi", "path": "a.png", "reason": "duplicate_of:busi-0001 (near-duplicate of busi:b.png)",
         "stage": "curation"},
        {"source": "busi", "path": "c.png", "reason": "duplicate_of:busi-0002 (near-duplicate of busi:d.png)",
         "stage": "curation"},
        {"source": "pocus", "path": "v.mp4 frame 3", "reason": "duplicate_of:pocus-0003", "stage": "curation"},
        {"source": "ddti", "path": "x.xyz", "reason": "unknown extension '.xyz'", "stage": "enumerate"},
        {"source": "aul", "path": "y.abc", "reason": "unknown extension '.abc'", "stage": "enumerate"},
        {"source": "busi", "path": "e.png", "reason": "unreadable image: OSError: cannot identify image file",
         "stage": "decode"},
        {"source": "reports", "path": "r/1.png", "reason": "image listed in annotations.json is missing",
         "stage": "enumerate"},
        {"source": "reports", "path": "r/2.png", "reason": "image listed in other.json is missing",
         "stage": "enumerate"},
    ]
    (out / "rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects))
    stats = json.loads((built / "stats.json").read_text())
    stats["rejected"] = len(rejects)
    stats["splits"] = {"train": len(rows)}  # every row in the one shard above, so it opens as a finished build
    (out / "stats.json").write_text(json.dumps(stats))
    shutil.copy(built / "diversity.json", out / "diversity.json")
    html = write_report(out, per_class=1000, batch_size=7).read_text(encoding="utf-8")
    return out, html, victim


def test_counts_equal_the_parquet(built: Path, report) -> None:
    _, _, page = report
    rows = read_rows(built)
    for table, key in (("organ", "organ"), ("dataset", "dataset"), ("split", "split"),
                       ("caption_source", "caption_source")):
        assert page.counts(f"count-{table}") == Counter(r[key] for r in rows), table
    assert page.counts("count-label") == Counter(f"{r['organ']}/{r['label']}" for r in rows)
    assert page.counts("count-candidates") == Counter(c["source"] for r in rows for c in r["captions"])
    assert int(page.tables["count-organ"][-1][1]) == len(rows)
    head, *body, total = page.tables["count-split-organ"]
    organs = head[1:-1]
    for line in body:
        split = line[0]
        assert [int(v) for v in line[1:-1]] == [
            sum(1 for r in rows if r["split"] == split and r["organ"] == o) for o in organs
        ]
        assert int(line[-1]) == sum(1 for r in rows if r["split"] == split)
    assert {line[0] for line in body} == {r["split"] for r in rows}
    assert int(total[-1]) == len(rows)


def test_gallery_shows_the_hashed_sample_with_every_candidate(built: Path, report) -> None:
    _, _, page = report
    rows = {r["id"]: r for r in read_rows(built)}
    expected = expected_sample(list(rows.values()), PER_CLASS)
    assert page.thumbs == len(expected) == len(page.items)
    assert set(page.items) == set(expected)
    assert len({cls for cls in expected.values()}) > 8, "the sample spans the demo's classes"
    for row_id, item in page.items.items():
        row = rows[row_id]
        assert (item["organ"], item["label"]) == expected[row_id]
        assert item["thumbs"] == 1
        assert [(c["source"], c["text"]) for c in item["cands"]] == [
            (c["source"], c["text"]) for c in row["captions"]
        ]
        chosen = [c for c in item["cands"] if c["chosen"]]
        assert [(c["source"], c["text"]) for c in chosen] == [(row["caption_source"], row["caption"])]
    sources = {c["source"] for item in page.items.values() for c in item["cands"]}
    assert sources == {"report", "template"}


def test_report_is_self_contained(report) -> None:
    _, html, page = report
    assert page.refs, "the report has images"
    for tag, attr, value in page.refs:
        if attr == "href":
            assert value.startswith("#"), (tag, value)
        else:
            assert value.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")), (tag, value[:40])
    for needle in ("http://", "https://", "<link", "@import", "url("):
        assert needle not in html
    assert page.tags["script"] == 1 and "<script src" not in html
    assert page.tags["img"] == page.thumbs + 3, "thumbnails plus three plots"


def test_rejects_leakage_and_diversity_sections(built: Path, report) -> None:
    _, _, page = report
    stats = json.loads((built / "stats.json").read_text())
    assert stats["rejected"] > 0, "the phantom build has near-duplicate rejects"
    rejects = page.tables["rejects-table"]
    assert sum(int(r[3]) for r in rejects[1:-1]) == stats["rejected"] == int(rejects[-1][3])
    leakage = {r[0]: r[1:] for r in page.tables["leakage-table"][1:]}
    assert leakage["patients shared across splits"] == [str(stats["leakage"]["patients_across_splits"]), "pass"]
    assert stats["leakage"]["patients_across_splits"] == 0
    assert page.section_attrs["leakage"]["data-leakage"] == "pass"
    strategies = page.tables["diversity-strategy"]
    tables = json.loads((built / "diversity.json").read_text())
    assert sorted(r[0] for r in strategies[1:]) == sorted(tables["strategy"])
    assert {r[0]: int(r[1]) for r in page.tables["diversity-caption_source"][1:]} == {
        k: v["n_captions"] for k, v in tables["caption_source"].items()
    }


def test_leakage_failure_is_shown(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "leaky"
    shutil.copytree(built, out)
    stats = json.loads((out / "stats.json").read_text())
    stats["leakage"]["patients_across_splits"] = 2
    (out / "stats.json").write_text(json.dumps(stats))
    page = Page(render_report(out, per_class=0))
    assert page.section_attrs["leakage"]["data-leakage"] == "fail"
    leakage = {r[0]: r[1:] for r in page.tables["leakage-table"][1:]}
    assert leakage["patients shared across splits"] == ["2", "fail"]
    assert page.thumbs == 0


def test_untrusted_text_is_escaped(tampered) -> None:
    _, html, victim = tampered
    assert "<script>alert" not in html and "<b>bold</b>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;caption&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;/pre&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    page = Page(html)
    assert page.tags["script"] == 1
    assert all(value.startswith("data:image/") for _, attr, value in page.refs if attr == "src")
    texts = [c["text"] for c in page.items[victim["id"]]["cands"] if c["chosen"]]
    assert texts == [EVIL_CAPTION]


def test_small_row_groups_and_batches_show_every_row(built: Path, tampered) -> None:
    out, html, _ = tampered
    page = Page(html)
    rows = read_rows(built)
    assert pq.ParquetFile(out / "data" / "train-00000-of-00001.parquet").metadata.num_row_groups > 4
    assert page.thumbs == len(rows) == len(page.items)
    assert set(page.items) == {r["id"] for r in rows}


def test_rejects_are_grouped_by_reason(tampered) -> None:
    _, html, _ = tampered
    rows = Page(html).tables["rejects-table"]
    groups = {(r[0], r[1]): int(r[3]) for r in rows[1:-1]}
    assert groups == {
        ("curation", "duplicate_of"): 3,
        ("enumerate", "unknown extension …"): 2,
        ("enumerate", "image listed in … is missing"): 2,
        ("decode", "unreadable image"): 1,
    }
    assert rows[-1][3] == "8"


@pytest.mark.parametrize(
    ("reason", "group"),
    [
        ("duplicate_of:pocus-1ecd (near-duplicate of pocus:a/b.mp4 frame 5)", "duplicate_of"),
        ("unreadable image: ValueError: no frames could be decoded", "unreadable image"),
        ("unknown extension '.txt'", "unknown extension …"),
        ("its case XML 12.xml does not parse", "its case XML … does not parse"),
        ("volume of shape (1, 2, 3, 4, 5) has more than four axes", "volume of shape (…) has more than four axes"),
        ("XML does not parse: cases/3.xml", "XML does not parse"),
        ("a/b.png: broken", "… broken"),
        ("", "(no reason)"),
    ],
)
def test_reason_group(reason: str, group: str) -> None:
    assert reason_group(reason) == group


def test_report_is_deterministic_and_batch_size_free(built: Path, report) -> None:
    _, html, _ = report
    assert render_report(built, per_class=PER_CLASS, batch_size=5) == html


def test_not_a_build_is_a_clear_error(built: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportError, match=r"no data/\*\.parquet in .*empty; run `echocaptions build`"):
        write_report(empty)
    with pytest.raises(ReportError, match="is not a folder"):
        write_report(tmp_path / "missing")
    partial = tmp_path / "partial"
    shutil.copytree(built / "data", partial / "data")
    with pytest.raises(ReportError, match=r"no stats.json in .*partial"):
        write_report(partial)
    assert not (partial / "report.html").exists()
    result = CliRunner().invoke(app, ["report", str(empty)])
    assert result.exit_code == 2
    assert "no data/*.parquet in" in result.output and "empty" in result.output


def test_cli_writes_the_report_with_per_class(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    shutil.copytree(built, out)
    result = CliRunner().invoke(app, ["report", str(out), "--per-class", "1"])
    assert result.exit_code == 0, result.output
    assert str(out / "report.html") in result.output
    page = Page((out / "report.html").read_text(encoding="utf-8"))
    classes = {(r["organ"], r["label"]) for r in read_rows(out)}
    assert page.thumbs == len(classes)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium's path; a skip without it, a failure on CI (which installs it)."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("chromium is not installed; CI installs it (.ci/run)")
    pytest.skip("chromium is not installed (Debian package chromium); CI runs this test")


def _run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--hide-scrollbars", "--force-device-scale-factor=1", "--virtual-time-budget=5000", *args,
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)


class _Body(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.attrs: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.attrs = {k: v or "" for k, v in attrs}


def test_gallery_images_decode_and_paint_in_chromium(chromium: str, report, tmp_path: Path) -> None:
    path, _, page = report
    url = path.resolve().as_uri()
    dom = _run_chromium(chromium, tmp_path, "--dump-dom", "--window-size=1280,2000", url)
    body = _Body(dom.stdout).attrs
    assert body, f"no DOM from chromium: {dom.stderr[-2000:]}"
    assert body["data-images-total"] == str(page.thumbs)
    assert body["data-images-loaded"] == str(page.thumbs), "every thumbnail decoded"
    assert body["data-plots-loaded"] == "3"
    x, y, w, h = (int(v) for v in body["data-first-thumb"].split(","))
    assert w > 20 and h > 20

    shot = tmp_path / "report.png"
    result = _run_chromium(chromium, tmp_path, f"--screenshot={shot}", f"--window-size=1280,{y + h + 200}", url)
    assert shot.is_file(), f"no screenshot: {result.stderr[-2000:]}"
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[0] >= y + h and pixels.shape[1] >= x + w
    thumb = pixels[y:y + h, x:x + w]
    assert thumb.std() > 10, "the first thumbnail painted something, not a flat box"
    assert len(np.unique(thumb.reshape(-1, 3), axis=0)) > 16
    whole = pixels.reshape(-1, 3)
    assert len(np.unique(whole[:: max(1, len(whole) // 200_000)], axis=0)) > 64, "the page is not blank"
