"""Check every link inside the built site: the page it points to exists, and so does its anchor.

Sphinx's linkcheck builder fetches links to other sites (there is no network in CI) and leaves
the site's own anchors unchecked; this reads the built HTML instead. Usage::

    python docs/_tools/check_links.py docs/_build/html

Exits with status 1 and lists the broken links, if any.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    """The ids a page defines and the hrefs and srcs it links to."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        for attr in ("href", "src"):
            if values.get(attr) and tag in ("a", "img", "link", "script"):
                self.links.append(values[attr])


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def broken_links(site: Path) -> list[str]:
    """Every link between the site's own files whose target file or anchor is missing."""
    # _static holds the theme's templates, not pages of the site
    pages = {path: _parse(path) for path in site.rglob("*.html") if "_static" not in path.relative_to(site).parts}
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue  # another site: not fetched
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {link} (no such file)")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    return broken


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "docs/_build/html").resolve()
    if not (site / "index.html").exists():
        print(f"no built site at {site}", file=sys.stderr)
        return 1
    broken = broken_links(site)
    for line in broken:
        print(line)
    pages = sum(1 for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts)
    print(f"{len(broken)} broken links inside the site ({pages} pages checked)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
