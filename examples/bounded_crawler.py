"""Mirror a small web site politely: at most three requests at once, no network needed.

Run it with `python examples/bounded_crawler.py`.

The "site" is an in-memory dict with a latency per page. Every page of the sitemap is a
step; each section's index is built once all of that section's pages are downloaded, and
the search index once every section is indexed. `max_concurrency=3` bounds the requests
in flight (the fake server measures the peak), and the scheduler starts a section index
the moment its own pages are in, without waiting for the slow section. One page answers
404: under `CONTINUE_ON_ERROR` only what depends on it is skipped.
"""

from __future__ import annotations

from functools import partial

import attrs
import trio

import exegraph_trio as exegraph

SITEMAP = {
    "docs": ["/docs/install", "/docs/tutorial", "/docs/api", "/docs/faq"],
    "blog": ["/blog/trio-at-scale", "/blog/release-1.0", "/blog/old-post"],
    "shop": ["/shop/mugs", "/shop/shirts"],
}
LATENCY = {"docs": 0.02, "blog": 0.03, "shop": 0.05}
BROKEN = {"/blog/old-post"}


class NotFoundError(Exception):
    """The fake server's 404."""


@attrs.define
class FakeSite:
    """An in-memory web server that counts the requests in flight."""

    in_flight: int = 0
    peak: int = 0
    requests: int = 0

    async def get(self, path: str) -> str:
        """Answer a request for `path` after the section's latency."""
        self.requests += 1
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await trio.sleep(LATENCY[path.split("/")[1]])
            if path in BROKEN:
                raise NotFoundError(f"404 Not Found: {path}")
            return f"<html><title>{path}</title></html>"
        finally:
            self.in_flight -= 1


@attrs.define
class Mirror:
    """What the crawl collects: the pages, and the indexes built from them."""

    site: FakeSite
    pages: dict[str, str] = attrs.Factory(dict)
    indexes: dict[str, list[str]] = attrs.Factory(dict)

    async def download(self, path: str) -> None:
        """Fetch one page and keep it."""
        self.pages[path] = await self.site.get(path)

    async def index_section(self, section: str) -> None:
        """Index the pages of one section (all downloaded by now)."""
        self.indexes[section] = sorted(p for p in self.pages if p.startswith(f"/{section}/"))

    async def index_site(self) -> None:
        """Index every page of the site."""
        self.indexes["search"] = sorted(self.pages)


def build_graph(mirror: Mirror) -> exegraph.Graph:
    steps = []
    for section, paths in SITEMAP.items():
        steps += [exegraph.Step(f"GET {path}", partial(mirror.download, path)) for path in paths]
        steps.append(
            exegraph.Step(
                f"index {section}",
                partial(mirror.index_section, section),
                depends_on=[f"GET {path}" for path in paths],
            )
        )
    steps.append(
        exegraph.Step("search index", mirror.index_site, depends_on=[f"index {s}" for s in SITEMAP])
    )
    return exegraph.Graph(steps)


async def main() -> None:
    mirror = Mirror(FakeSite())
    options = exegraph.RunOptions(
        max_concurrency=3, error_policy=exegraph.ErrorPolicy.CONTINUE_ON_ERROR
    )
    result = await exegraph.run_with_result(build_graph(mirror), options)
    print(
        f"fetched {len(mirror.pages)} of {mirror.site.requests} pages, at most "
        f"{mirror.site.peak} requests at once, in {result.total_duration:.2f} s"
    )
    print(f"indexed sections: {', '.join(sorted(mirror.indexes))}")
    for skipped in result.with_status(exegraph.StepStatus.SKIPPED):
        print(f"skipped: {skipped.error}")
    for failed in result.with_status(exegraph.StepStatus.FAILED):
        print(f"failed:  {failed.error}")


if __name__ == "__main__":
    trio.run(main)
