"""exegraph: run named async steps with explicit dependencies, on Trio.

```python
import trio
import exegraph_trio as exegraph

async def fetch() -> None: ...
async def build() -> None: ...

graph = exegraph.Graph([
    exegraph.Step("fetch", fetch),
    exegraph.Step("build", build, depends_on=["fetch"]),
])
trio.run(exegraph.run, graph)
```

This module is the only public location of every name; the implementation lives in
private modules.
"""

from ._durations import DurationLog as DurationLog
from ._errors import CycleError as CycleError
from ._errors import DuplicateStepError as DuplicateStepError
from ._errors import GraphError as GraphError
from ._errors import MissingDependencyError as MissingDependencyError
from ._errors import RunError as RunError
from ._errors import StepCancelledError as StepCancelledError
from ._errors import StepSkippedError as StepSkippedError
from ._errors import StepTimeoutError as StepTimeoutError
from ._errors import is_step_skipped as is_step_skipped
from ._graph import Graph as Graph
from ._graph import GraphBuilder as GraphBuilder
from ._instrument import Instrument as Instrument
from ._instrument import RunInfo as RunInfo
from ._lifecycle import Retry as Retry
from ._lifecycle import TriggerRule as TriggerRule
from ._offload import in_process as in_process
from ._offload import in_thread as in_thread
from ._options import ErrorPolicy as ErrorPolicy
from ._options import RunOptions as RunOptions
from ._plan import Plan as Plan
from ._plan import PlannedStep as PlannedStep
from ._plan import plan as plan
from ._pools import Pool as Pool
from ._progress import Progress as Progress
from ._result import RunResult as RunResult
from ._result import StepStatus as StepStatus
from ._result import StepTiming as StepTiming
from ._run import run as run
from ._run import run_with_result as run_with_result
from ._step import Action as Action
from ._step import Step as Step
from ._version import __version__ as __version__

__all__ = [
    "Action",
    "CycleError",
    "DuplicateStepError",
    "DurationLog",
    "ErrorPolicy",
    "Graph",
    "GraphBuilder",
    "GraphError",
    "Instrument",
    "MissingDependencyError",
    "Plan",
    "PlannedStep",
    "Pool",
    "Progress",
    "Retry",
    "RunError",
    "RunInfo",
    "RunOptions",
    "RunResult",
    "Step",
    "StepCancelledError",
    "StepSkippedError",
    "StepStatus",
    "StepTimeoutError",
    "StepTiming",
    "TriggerRule",
    "in_process",
    "in_thread",
    "is_step_skipped",
    "plan",
    "run",
    "run_with_result",
]


from ._public import rewrite_module_names as _rewrite_module_names

_rewrite_module_names(__name__, globals(), __all__)
del _rewrite_module_names
