"""Pass what one step makes to the steps that need it: an artifact through `inputs`.

Run it with `python examples/artifact_inputs.py`.

- What a step's action returns is its *value*, kept in the result as
  `StepTiming.value`.
- `Step(..., inputs={"image": "build"})` calls the action with `image=` set to the
  value of step `build`; every step named in `inputs` is a dependency, so `depends_on`
  need not repeat it.
- `RunOptions(keep_values=False)` drops a value as soon as every step that takes it has
  settled, so a large intermediate (here, a 4 MB tarball) does not live for the whole
  run; values nobody takes as an input are kept for the result.
"""

from __future__ import annotations

import hashlib

import attrs
import trio

import exegraph_trio as exegraph


# --8<-- [start:graph]
@attrs.frozen
class Image:
    """What `build` makes: a container image, by name and digest."""

    name: str
    digest: str


async def build() -> Image:
    await trio.sleep(0.03)  # stands in for `docker build`
    return Image("registry.example.com/shop", "sha256:" + hashlib.sha256(b"shop").hexdigest())


async def scan(image: Image) -> list[str]:
    await trio.sleep(0.02)  # a vulnerability scanner
    return [f"{image.name}: 0 critical, 2 low"]


async def smoke_test(image: Image) -> None:
    await trio.sleep(0.025)  # start the image, poke it
    print(f"smoke-tested {image.name}")


async def deploy(image: Image, findings: list[str]) -> str:
    await trio.sleep(0.01)
    print(f"deploying {image.name}@{image.digest[:15]}… ({findings[0]})")
    return "https://shop.staging.example.com"


def build_graph() -> exegraph.Graph:
    return exegraph.Graph(
        [
            exegraph.Step("build", build),
            exegraph.Step("scan", scan, inputs={"image": "build"}),
            exegraph.Step("smoke-test", smoke_test, inputs={"image": "build"}),
            # Takes two values and needs the smoke test to pass; `build` and `scan` are
            # dependencies without being listed in `depends_on`.
            exegraph.Step(
                "deploy",
                deploy,
                inputs={"image": "build", "findings": "scan"},
                depends_on=["smoke-test"],
            ),
        ]
    )


# --8<-- [end:graph]


# --8<-- [start:release]
async def package() -> bytes:
    await trio.sleep(0.01)
    return bytes(4_000_000)  # a tarball: big, needed only by the next step


async def upload(tarball: bytes) -> str:
    await trio.sleep(0.02)
    return f"s3://releases/shop.tar ({len(tarball) / 1e6:.0f} MB)"


async def release() -> None:
    graph = exegraph.Graph(
        [
            exegraph.Step("package", package),
            exegraph.Step("upload", upload, inputs={"tarball": "package"}),
        ]
    )
    result = await exegraph.run_with_result(graph, exegraph.RunOptions(keep_values=False))
    print(f"package value after the run: {result['package'].value!r} (released)")
    print(f"upload value after the run:  {result['upload'].value!r} (kept: nobody takes it)")


# --8<-- [end:release]


async def main() -> None:
    result = await exegraph.run_with_result(build_graph())
    print(result.table())
    print(f"deploy returned {result['deploy'].value}")
    print()
    await release()


if __name__ == "__main__":
    trio.run(main)
