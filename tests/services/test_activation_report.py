"""The HTML report shows where the model looks: each crop with its activation map beneath;
a model without a feature map is refused in one sentence."""

from __future__ import annotations

import re

from idstudio import cli


def test_html_report_with_activation_maps(copy_project, tmp_path, capsys):
    root = copy_project()
    counts = {}
    for flag in ([], ["--activation"]):
        out = tmp_path / f"report{len(flag)}.html"
        assert cli.main(["export", str(root), "--checkpoint", "init", "--format", "html", "--out", str(out), "-k", "4",
                         "--worst", "3", "--quiet"] + flag) == 0
        text = out.read_text(encoding="utf-8")
        counts[bool(flag)] = len(re.findall(r"<img ", text))
        if flag:
            assert "where the model looks" in text.lower() and text.count("class='pair'") == counts[True] // 2
    assert counts[False] == 3 * 5 and counts[True] == 2 * counts[False]  # query + 4 results per query, each doubled
    capsys.readouterr()
    code = cli.main(["export", str(root), "--checkpoint", "colorhist", "--format", "html", "--out",
                     str(tmp_path / "c.html"), "--activation", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no feature map" in err and len(err.strip().splitlines()) == 1
