"""The README and the pages in docs/: every relative link and image points at a file that exists, and at a
heading of it where the link names an anchor; the README stays short. Reads markdown only (no TensorFlow,
no musicgen), so it runs before the packages are installed."""

import re
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250

FENCE = re.compile(r"^\s{0,3}(```|~~~)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target); the text may hold one level of brackets, the target a title in quotes
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")


def documentation_files():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def lines_outside_code_blocks(text):
    """(line number, line) of every line not inside a fenced code block."""
    inside, fence = False, ""
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if match and (not inside or match.group(1) == fence):
            inside, fence = not inside, match.group(1)
            continue
        if not inside:
            yield number, line


def github_slug(heading):
    """The anchor GitHub gives a heading: its text without markup, lowercased, every character that is not a
    letter, digit, space, hyphen or underscore removed, spaces made hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading counts by its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(markdown_file):
    """The anchors of a markdown file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen, result = {}, set()
    for _, line in lines_outside_code_blocks(markdown_file.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(markdown_file):
    """(line number, target) of every link and image outside code blocks and code spans."""
    for number, line in lines_outside_code_blocks(markdown_file.read_text(encoding="utf-8")):
        # a code span is plain text: it may be a link's text, but what it holds is never a link
        line = CODE_SPAN.sub(lambda m: re.sub(r"[\[\]]", "", m.group(2)), line)
        for match in LINK.finditer(line):
            yield number, match.group(2)


def broken_links(markdown_files, root=ROOT):
    """'file:line: target (what is wrong)' for every relative link or image that does not resolve."""
    problems = []
    for markdown_file in markdown_files:
        markdown_file = Path(markdown_file)
        try:
            shown = markdown_file.relative_to(root)
        except ValueError:
            shown = markdown_file
        for number, target in links(markdown_file):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:, ...
                continue
            path, _, anchor = target.partition("#")
            linked = (markdown_file.parent / unquote(path)).resolve() if path else markdown_file
            where = f"{shown}:{number}: {target}"
            if not path and not anchor:
                problems.append(f"{where} (empty link)")
            elif not linked.exists():
                problems.append(f"{where} (no such file: {linked})")
            elif anchor:
                if linked.suffix != ".md" or linked.is_dir():
                    problems.append(f"{where} (an anchor in a file that is not markdown)")
                elif unquote(anchor) not in anchors(linked):
                    problems.append(f"{where} (no heading '#{anchor}' in {linked.name})")
    return problems


def test_every_relative_link_in_the_docs_resolves():
    problems = broken_links(documentation_files())
    assert not problems, "broken links in the README or docs/:\n" + "\n".join(problems)


def test_the_readme_is_at_most_250_lines():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / target.partition("#")[0]).resolve() for _, target in links(ROOT / "README.md")}
    missing = [page.name for page in sorted((ROOT / "docs").glob("*.md")) if page.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_link_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "page.md").write_text(
        "# A page\n\n## The sustain pedal\n\n"
        "Fine: [pedal](#the-sustain-pedal), [other](other.md#a-heading-here), [web](https://example.org/x.md).\n"
        "Broken: [gone](missing.md), [no anchor](other.md#no-such-heading), ![image](gone.png), [here](#nowhere).\n"
        "```\n[inside a code block](missing-too.md)\n```\n"
        "And `[in a code span](missing-three.md)`.\n",
        encoding="utf-8",
    )
    (tmp_path / "other.md").write_text("# Other\n\n## A heading, here!\n\n```\n## not-a-heading\n```\n", encoding="utf-8")
    problems = broken_links([tmp_path / "page.md", tmp_path / "other.md"], root=tmp_path)
    assert len(problems) == 4, problems
    assert "page.md:6: missing.md (no such file" in problems[0]
    assert "page.md:6: other.md#no-such-heading (no heading" in problems[1]
    assert "page.md:6: gone.png (no such file" in problems[2]
    assert "page.md:6: #nowhere (no heading" in problems[3]
    assert broken_links([tmp_path / "other.md"], root=tmp_path) == []


def test_headings_get_githubs_anchors():
    assert github_slug("Music as it is played: dynamics, timing, tempo maps and instruments") == (
        "music-as-it-is-played-dynamics-timing-tempo-maps-and-instruments")
    assert github_slug("crossval.py: k-fold cross-validation") == "crossvalpy-k-fold-cross-validation"
    assert github_slug("What happens when...") == "what-happens-when"
    assert github_slug("The performances on today's encoding") == "the-performances-on-todays-encoding"
    assert github_slug("Labels (`--condition`)") == "labels---condition"


def test_ci_runs_exactly_the_readme_test_command():
    command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"```bash\n{command}\n```" in (ROOT / "README.md").read_text(encoding="utf-8")
