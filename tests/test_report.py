"""rewardlab.report, the one HTML writer: escaping, table cells, figures, the written page."""

from __future__ import annotations

import base64

import numpy as np

from rewardlab import report as rep


def test_text_is_escaped_everywhere():
    """Titles, headings, paragraphs, bullets, cards and cells are plain text: markup in them shows as text."""
    page = rep.page("A <b> & c", [
        rep.section("<h>", rep.paragraph("x < y"), rep.bullets(["<li>"]), rep.cards([("<k>", "<v>")]),
                    rep.table(["<th>"], [["<td>"]])),
    ], subtitle="s & t", footer="<f>")
    for raw in ("<b>", "<h>", "x < y", "<li><li>", "<k>", "<v>", "<th><th>", "<td><td>", "<f>"):
        assert raw not in page, raw
    for shown in ("A &lt;b&gt; &amp; c", "<h2>&lt;h&gt;</h2>", "<p>x &lt; y</p>", "<li>&lt;li&gt;</li>",
                  "<th>&lt;th&gt;</th>", "<td>&lt;td&gt;</td>", "<p>s &amp; t</p>", "<footer>&lt;f&gt;</footer>"):
        assert shown in page, shown


def test_table_formats_numbers_and_marks_the_best():
    """Numbers (numpy too) get 4 significant digits and the "num" class; None is '—'; bools are yes/no
    text; lists are bracketed; the (row, column) given in ``best`` gets the "best" class."""
    html = rep.table(["name", "a", "b", "c"], [["x", 0.123456, None, True], ["y", np.float32(2.5e-5), 7, [1, 2.0]]],
                     best=[(1, 2)])
    assert "<td>x</td>" in html and '<td class="num">0.1235</td>' in html and '<td class="num">—</td>' in html
    assert "<td>yes</td>" in html and '<td class="num">2.500e-05</td>' in html
    assert '<td class="num best">7</td>' in html and "<td>[1, 2]</td>" in html
    rows = rep.records_table([{"a": 1}, {"b": "t", "a": 2}])
    assert "<th>a</th><th>b</th>" in rows and '<td class="num">1</td><td class="num">—</td>' in rows


def test_figure_embeds_or_links_the_png(tmp_path):
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    embedded = rep.figure(png, "a <caption>")
    assert f'src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode("ascii")}"' in embedded
    assert "<figcaption>a &lt;caption&gt;</figcaption>" in embedded
    assert '<img src="plot.png" alt="plot">' in rep.figure(png, embed=False)


def test_write_makes_the_folder_and_one_whole_page(tmp_path):
    """The page keeps its parts in order, inline CSS and nothing fetched; write creates the folder."""
    parts = [rep.section("First", rep.paragraph("one")), rep.section("Second", rep.paragraph("two"), level=3)]
    path = rep.write(tmp_path / "sub" / "report.html", rep.page("T", parts))
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "sub" / "report.html"
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>") and "<style>" in text
    assert text.index("<h2>First</h2><p>one</p>") < text.index("<h3>Second</h3><p>two</p>")
    assert "http" not in text and "<script" not in text and "<link" not in text
