"""The user's pages link only to files and headings that exist: the README and docs/ are moved and split as the
project grows, and a link left pointing at a moved section is the first thing a reader follows."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "lab" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def anchors(page: pathlib.Path) -> set[str]:
  """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
  titles = [line.lstrip("#").strip() for line in page.read_text().splitlines() if line.startswith("#")]
  return {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in titles}


def broken_links(page: pathlib.Path) -> list[str]:
  """The page's relative links whose file or heading does not exist, each with what is missing."""
  broken = []
  for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
    if re.match(r"[a-z]+:", target):
      continue
    path, _, anchor = target.partition("#")
    linked = (page.parent / path) if path else page
    if not linked.exists():
      broken.append(f"{target}: no such file")
    elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
      broken.append(f"{target}: no such heading")
  return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_name_files_and_headings_that_exist(page):
  assert not broken_links(page), f"{page.name} links to what is not there: {broken_links(page)}"


def test_a_missing_file_or_heading_is_named_and_a_present_one_is_not(tmp_path):
  page = tmp_path / "p.md"
  page.write_text(
    "# The test run's time\n\n[a](#the-test-runs-time) [b](#gone) [c](p.md#the-test-runs-time) [d](q.md) [e](https://x.org/y)\n"
  )
  assert broken_links(page) == ["#gone: no such heading", "q.md: no such file"]
