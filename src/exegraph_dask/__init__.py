"""exegraph_dask: run exegraph steps as tasks on a Dask distributed cluster.

```python
import exegraph_trio as exegraph
import exegraph_dask

def render(frame: int) -> bytes: ...  # a plain function, run by a Dask worker

graph = exegraph.Graph([
    exegraph.Step("dask", exegraph_dask.connect("tcp://scheduler:8786")),
    exegraph.Step(
        "render-1", exegraph_dask.on_cluster(render, 1), inputs={"client": "dask"}
    ),
])
```

[`on_cluster`][exegraph_dask.on_cluster] turns a sync function into a step action that
runs it on the cluster, awaited from Trio without a thread per pending step; its result
is the step's value, the step's deadline and fail-fast cancel the task on the cluster,
the step's `Retry` submits a fresh task per attempt, and the step's trace context goes
along. [`connect`][exegraph_dask.connect] holds a `distributed.Client` as a resource
step, closed once the steps that use it are done. See the guide "Scaling out".

The package needs `distributed` (`pip install "exegraph-trio[dask]"`), on the machine
that runs the graph and on the workers.

This module is the only public location of every name; the implementation lives in
private modules.
"""

try:
    import distributed  # noqa: F401 - fail here, with advice, not deep inside
except ModuleNotFoundError as _missing:
    if (_missing.name or "").partition(".")[0] not in {"distributed", "dask"}:
        raise
    raise ModuleNotFoundError(
        "exegraph_dask needs Dask's distributed scheduler (the package distributed), which is "
        f"not installed ({_missing}). Install exegraph with its dask extra: "
        'pip install "exegraph-trio[dask]" (or, in a clone of the repository: '
        'pip install -e ".[dask]").',
        name=_missing.name,
    ) from _missing

from exegraph_trio import __version__ as __version__

from ._connect import connect as connect
from ._on_cluster import on_cluster as on_cluster

__all__ = ["connect", "on_cluster"]

from exegraph_trio._public import rewrite_module_names as _rewrite_module_names

_rewrite_module_names(__name__, globals(), __all__)
del _rewrite_module_names
