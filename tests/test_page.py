"""The leaderboard's page (``index.html``): it shows the numbers of the tables it is built beside,
escapes every text from the records, shows only figures that exist, and (in a real browser) sorts
and filters its tables without an error."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from test_leaderboard import add_cell, score
from test_leaderboard_search import _searched

from robustbench_interp.leaderboard import records_store, write_leaderboard
from robustbench_interp.page import PAGE, parse_figure
from robustbench_interp.store import Store

HOSTILE = "<script>alert(1)</script>"
COMMITTED = Path(__file__).resolve().parents[1] / "leaderboard" / "tiny"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: (model, attack) -> FSR of the adaptive Grad-CAM row at seed 0 (seed 1: + 4).
ADAPTIVE = {("vgg", "location"): 80.0, ("vgg", "topk"): 30.0, ("resnet", "location"): 55.0}
VOID = {"meta", "link", "img", "input", "br", "hr", "source", "wbr", "col", "area", "base"}


def png(path: Path, width: int = 6, height: int = 4) -> Path:
    from PIL import Image

    Image.new("RGB", (width, height), (200, 30, 30)).save(path)
    return path


def make_store(root: Path) -> Store:
    """Grad-CAM attacks on vgg (Location, Top-k) and resnet (Location), two seeds with controls,
    each scored by Grad-CAM, LRP_T and an interpreter whose name is markup."""
    store = Store(root)
    for (model, attack), fsr in ADAPTIVE.items():
        for seed in (0, 1):
            scores = {"gradcam": score(fsr + 4 * seed, 1.0), "lrp_t": score(20.0 + seed, 2.0),
                      HOSTILE: score(5.0, 0.0)}
            control = {name: score(1.0 + seed, value["baseline_fsr"]) for name, value in scores.items()}
            add_cell(store, model, attack, "gradcam", seed, scores, drop=0.5, control=control)
    return store


@pytest.fixture
def board(tmp_path) -> Path:
    """A leaderboard folder with its page, built beside figures of both naming patterns and a file
    that only looks like a figure."""
    out = tmp_path / "board"
    out.mkdir()
    png(out / "fig_location.png")
    png(out / "fig_topk_vgg.png")
    (out / "fig_broken.png").write_bytes(b"not a png")
    written = write_leaderboard(make_store(tmp_path / "store"), "tiny", out)
    assert written[PAGE] == out / PAGE
    return out


class Page(HTMLParser):
    """The page's elements: every start tag with its attributes, the text of each table cell, and the
    nesting errors (an end tag that closes another element than the last one opened)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.errors: list[str] = []
        self.scripts: list[str] = []
        self._open: list[str] = []
        self._table: list[str | None] = []
        self._in_script = False
        self.rows: dict[str, list[list[str]]] = {}
        self.feed(text)
        self.close()
        if self._open:
            self.errors.append(f"left open: {self._open}")

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in VOID:
            return
        self._open.append(tag)
        if tag == "table":
            self._table.append(attributes.get("id"))
        elif tag == "tr" and self._table and self._table[-1]:
            self.rows.setdefault(self._table[-1], []).append([])
        elif tag in ("td", "th") and self._table and self._table[-1]:
            self.rows[self._table[-1]][-1].append("")
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self._open or self._open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self._open[-1] if self._open else 'nothing'}")
            return
        self._open.pop()
        if tag == "table":
            self._table.pop()
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)
        elif self._table and self._table[-1] and self._open[-1] in ("td", "th", "button", "small"):
            self.rows[self._table[-1]][-1][-1] += data

    def attrs(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]

    def table(self, table_id: str) -> pd.DataFrame:
        """A table's body as a frame named by its header."""
        head, *body = self.rows[table_id]
        return pd.DataFrame(body, columns=head)


def read(board: Path) -> Page:
    page = Page((board / PAGE).read_text(encoding="utf-8"))
    assert page.errors == []
    return page


# ------------------------------------------------------------------------------------ the page


def test_the_page_holds_one_row_per_entry_with_the_stored_numbers(board):
    page = read(board)
    detail = pd.read_csv(board / "detail.csv")
    fsr = page.table("fsr-table")
    assert len(fsr) == len(detail) == len(ADAPTIVE) * 3  # one row per (model, attack, attacker, scored)
    for (model, attack), value in ADAPTIVE.items():
        (row,) = [r for _, r in fsr.iterrows() if (r.model, r.attack, r.scored) == (model, attack, "gradcam")]
        assert float(row["FSR"]) == pytest.approx(value + 2)  # the mean of the two seeds
        assert (row["baseline"], row["control"], row["kept"], row["counts"]) == ("1.0", "1.5", "yes", "yes")
        assert (float(row["95 % low"]), float(row["95 % high"])) == (value - 5, value + 4 + 5)
    accuracy = page.table("accuracy-table")
    assert set(accuracy["model"]) == {"vgg", "resnet"}
    assert set(accuracy["interpreter"]) == {"-", "control", "gradcam"}
    assert len(page.rows["ranking-0"]) > 1 and "gradcam" in {r[1] for r in page.rows["ranking-0"][1:]}
    transfer = page.table("transfer-table").set_index("attacker \\ scored")
    stored = pd.read_csv(board / "transfer.csv", header=[0, 1], index_col=0)
    for scored in ("gradcam", "lrp_t"):
        fooling, rows = stored.loc["gradcam", ("fooling", scored)], stored.loc["gradcam", ("rows", scored)]
        assert transfer.loc["gradcam", scored] == f"{fooling:.1f} ({rows})"
    assert stored.loc["gradcam", ("fooling", "gradcam")] == pytest.approx(55.5)  # mean of FSR + 0.5 per row


def test_the_tables_and_their_filter_bars(board):
    page = read(board)
    tables = {a["id"] for a in page.attrs("table")}
    assert {"fsr-table", "accuracy-table", "transfer-table", "ranking-0"} <= tables
    bars = [a for a in page.attrs("div") if a.get("data-for")]
    assert {a["data-for"] for a in bars} == {"fsr-table", "accuracy-table"}
    heads = [a for t, a in page.tags if t == "th" and a.get("scope") == "col"]
    assert any(a.get("class") == "num" for a in heads)


def test_text_from_the_records_is_escaped(board):
    text = (board / PAGE).read_text(encoding="utf-8")
    assert HOSTILE not in text and html.escape(HOSTILE) in text
    page = read(board)
    assert len(page.attrs("script")) == 1
    assert HOSTILE in set(page.table("fsr-table")["scored"])  # shown as text, as the records say


def test_the_script_is_the_one_the_policy_allows(board):
    page = read(board)
    (policy,) = [a["content"] for a in page.attrs("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    (script,) = page.scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy and "default-src 'none'" in policy


def test_every_image_and_link_resolves_to_a_file_beside_the_page(board):
    page = read(board)
    images = page.attrs("img")
    assert sorted(a["src"] for a in images) == ["fig_location.png", "fig_topk_vgg.png"]  # not fig_broken
    assert all(a["alt"] and (board / a["src"]).is_file() for a in images)
    links = [a["href"] for a in page.attrs("a") if not a["href"].startswith("#")]
    assert {"ranking.md", "fsr.md", "detail.csv", "scores.csv"} <= set(links)
    assert all((board / href).is_file() for href in links)
    assert not any(href.startswith(("http:", "https:", "//")) for href in links)
    assert "search.md" not in links  # no search: no link to its table
    models = {a.get("data-model") for a in page.attrs("figure")}
    assert models == {None, "vgg"}  # fig_location.png: every model; fig_topk_vgg.png: vgg


def test_a_board_without_search_or_figures_says_so(tmp_path):
    write_leaderboard(make_store(tmp_path / "store"), "tiny", tmp_path / "board")
    text = (tmp_path / "board" / PAGE).read_text(encoding="utf-8")
    assert "No search:" in text and "No heatmap figures in this folder" in text and "<img" not in text


def test_an_empty_store_gives_a_page_of_notes(tmp_path):
    write_leaderboard(Store(tmp_path / "empty"), "tiny", tmp_path / "board")
    page = read(tmp_path / "board")
    assert page.attrs("table") == [] and page.attrs("img") == []
    text = (tmp_path / "board" / PAGE).read_text(encoding="utf-8")
    assert "No ranking yet" in text and "No FSR yet" in text and "No transfer matrix" in text


def test_the_search_table_and_the_budget_figure(tmp_path):
    store = Store(tmp_path / "store")
    _searched(store, "resnet", "gradcam", 0, half=60.0, full=80.0, preset_fsr=70.0)
    write_leaderboard(store, "tiny", tmp_path / "board")
    page = read(tmp_path / "board")
    search = page.table("search-table")
    assert list(search["model"]) == ["resnet"] and float(search["test fsr"].iloc[0]) == 80.0
    assert [a["src"] for a in page.attrs("img")] == ["fig_budget.png"]
    assert "search.md" in {a["href"] for a in page.attrs("a")}


@pytest.mark.parametrize(("stem", "expected"), [
    ("location", ("location", None)),
    ("center_mass", ("center_mass", None)),
    ("center_mass_vgg-adv", ("center_mass", "vgg-adv")),
    ("topk_resnet", ("topk", "resnet")),
    ("pkg.mod-corner_vgg", ("pkg.mod:corner", "vgg")),  # a plug-in attack, by its file-name form
    ("newattack_vgg", ("newattack", "vgg")),  # an attack the board does not know, a model it does
    ("something_else", ("something_else", None)),
])
def test_figure_names_give_their_attack_and_model(stem, expected):
    attacks = ["location", "topk", "center_mass", "active", "pkg.mod:corner"]
    assert parse_figure(stem, attacks, ["vgg", "vgg-adv", "resnet"]) == expected


# ------------------------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[browser]')")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, path: Path):
    """The page opened from disk, and the list its console errors, page errors and dialogs go to."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(10_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


_COLUMN = """([id, label]) => {
  const table = document.getElementById(id);
  const i = Array.from(table.tHead.rows[0].cells).map(c => c.textContent.trim()).indexOf(label);
  return Array.from(table.tBodies[0].rows).filter(r => !r.hidden).map(r => {
    const cell = r.cells[i];
    return cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
  });
}"""


def visible(page, table_id: str, label: str) -> list[str]:
    return page.evaluate(_COLUMN, [table_id, label])


def numbers(values: list[str]) -> list[float]:
    """The numbers of a sorted numeric column, after checking that its missing values come last."""
    present = [v for v in values if v != ""]
    assert values == present + [""] * (len(values) - len(present))
    return [float(v) for v in present]


def header(page, table_id: str, label: str):
    """The header cell of column ``label`` (its text, without the sort indicator)."""
    labels = page.evaluate(f"Array.from(document.querySelectorAll('#{table_id} thead th'))"
                           ".map(c => c.textContent.trim())")
    return page.locator(f"#{table_id} thead th").nth(labels.index(label))


def check_sorting(page, table_id: str, label: str) -> None:
    before = visible(page, table_id, label)
    header(page, table_id, label).locator("button").click()
    rising = numbers(visible(page, table_id, label))
    assert rising == sorted(rising) and header(page, table_id, label).get_attribute("aria-sort") == "ascending"
    header(page, table_id, label).locator("button").click()
    falling = numbers(visible(page, table_id, label))
    assert falling == sorted(rising, reverse=True)
    assert header(page, table_id, label).get_attribute("aria-sort") == "descending"
    assert sorted(before) == sorted(visible(page, table_id, label))  # the same rows, reordered


def check_images(page) -> None:
    images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert images and all(width > 0 for _, width in images), images


@pytest.mark.browser
def test_the_page_sorts_filters_and_shows_its_figures_in_a_browser(chromium, board):
    page, problems = open_page(chromium, board / PAGE)
    total = len(visible(page, "fsr-table", "FSR"))
    check_sorting(page, "fsr-table", "FSR")
    bar = page.locator('.filters[data-for="fsr-table"]')
    bar.locator("input.q").fill("lrp_t")
    scored = visible(page, "fsr-table", "scored")
    assert scored == ["lrp_t"] * len(ADAPTIVE)
    assert bar.locator(".count").inner_text() == f"{len(ADAPTIVE)} of {total} rows"
    bar.locator("input.q").fill("")
    bar.get_by_label("model").select_option("resnet")
    assert set(visible(page, "fsr-table", "model")) == {"resnet"} and len(visible(page, "fsr-table", "model")) == 3
    check_sorting(page, "accuracy-table", "top-1")
    check_images(page)
    assert page.locator("#fsr-table").get_by_text(HOSTILE, exact=True).count() == len(ADAPTIVE)  # text, never run
    assert problems == []
    page.close()


@pytest.mark.browser
def test_the_committed_leaderboard_page_in_a_browser(chromium, tmp_path):
    board = tmp_path / "tiny"
    shutil.copytree(COMMITTED, board)
    write_leaderboard(records_store(board), "tiny", board)
    page, problems = open_page(chromium, board / PAGE)
    check_sorting(page, "fsr-table", "fooling")
    check_sorting(page, "accuracy-table", "top-1 drop (max)")
    bar = page.locator('.filters[data-for="fsr-table"]')
    bar.get_by_label("attack", exact=True).select_option("topk")
    bar.locator("input.q").fill("lrp_t")
    rows = page.evaluate("Array.from(document.querySelectorAll('#fsr-table tbody tr:not([hidden])'))"
                         ".map(r => r.cells[1].textContent + ' ' + r.cells[3].textContent)")
    assert rows and all(re.fullmatch(r"topk lrp_t", r) for r in rows)
    check_images(page)
    assert problems == []
    page.close()
