"""A page's start tags and their attributes, as a browser or a parser reads them."""

from __future__ import annotations

from html.parser import HTMLParser


class Dom(HTMLParser):
    """Every start tag with its (unescaped) attributes, in document order."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def having(self, attribute: str, tag: str | None = None) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if attribute in a and (tag is None or t == tag)]
