"""`in_thread` and `in_process`: step actions that run a sync function off the event loop.

A Trio program must not block its event loop, so a blocking call (a file, a C library, a
client without async support) runs in a thread, and CPU-bound Python (which holds the GIL)
in a worker process. Both functions turn `fn(*args, **kwargs)` into an async action whose
step `inputs` become more keyword arguments:

```python
Step("resize", exegraph.in_thread(resize, width=800), inputs={"image": "download"})
# resize(image=<value of download>, width=800), in a thread
```

`in_process` runs on `trio-parallel`, an optional dependency (the `process` extra),
imported only when an `in_process` action is made: the engine never imports it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import linecache
import pickle
import reprlib
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar, final

import trio

from ._step import is_async_callable

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["in_process", "in_thread"]

T = TypeVar("T")

_INSTALL: Final = (
    "pip install 'exegraph-trio[process]' (or, in a clone of the repository: "
    "pip install -e '.[process]')"
)
_PICKLING_ERRORS: Final = (pickle.PicklingError, TypeError, AttributeError, RecursionError)
"""What pickling an object that cannot be pickled raises (pickle's and cloudpickle's)."""


class _Short(reprlib.Repr):
    """`reprlib.Repr` that cuts `bytes` and `bytearray` before it writes them out.

    (`reprlib` has no case of its own for them: it made the whole repr, four times the
    size of 100 MB of bytes, and then cut it.)
    """

    def repr_bytes(self, value: bytes, level: int) -> str:
        return self._cut(value)

    def repr_bytearray(self, value: bytearray, level: int) -> str:
        return self._cut(value)

    def _cut(self, value: bytes | bytearray) -> str:
        shown = repr(value[: self.maxstring])
        if len(value) <= self.maxstring:
            return shown
        end = 1 if isinstance(value, bytes) else 2  # (the closing quote, and parenthesis)
        return f"{shown[:-end]}...{shown[-end:]}"


_short: Final = _Short()
_short.maxstring = 40
_short.maxother = 40


class _Offloaded(Generic[T]):
    """What `in_thread` and `in_process` return: `fn` bound to some arguments, awaitable.

    It stands in for `fn` as a decorator's wrapper does: `__name__`, `__qualname__`,
    `__module__` and `__doc__` are `fn`'s, so `GraphBuilder.step` names a step after the
    function. Its signature is `fn`'s without the bound arguments, so that `Step` refuses,
    when it is made, `inputs` that `fn` cannot take.
    """

    _kind: str

    def __init__(
        self, fn: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        if not callable(fn):
            raise TypeError(
                f"{self._kind} takes a sync function to run, not {type(fn).__name__}: {fn!r}"
            )
        if inspect.isasyncgenfunction(fn):
            raise TypeError(
                f"{self._kind} runs a sync function, but {fn!r} is an async generator "
                "function, and a step's action returns one value: collect what it yields in "
                "an async function, like `async def action(): return [x async for x in gen()]`"
            )
        if is_async_callable(fn):
            raise TypeError(
                f"{self._kind} runs a sync function, but {fn!r} is async: make it a step's "
                f"action as it is, without {self._kind}"
            )
        if inspect.isgeneratorfunction(fn):
            raise TypeError(
                f"{self._kind} runs a function and returns what it returns, but {fn!r} is a "
                "generator function: calling it only makes a generator, and none of its code "
                "runs. Give it a function that runs the generator, like "
                "`def collect(): return list(gen())`"
            )
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        # The callable handed to Trio without inputs: `fn` itself when nothing is bound
        # by keyword (Trio names the thread after it), else a partial made once here.
        self._target: Callable[..., T] = functools.partial(fn, **kwargs) if kwargs else fn
        inner: object = fn
        while isinstance(inner, functools.partial):  # named after the function it wraps
            inner = inner.func
        name = getattr(inner, "__name__", None)
        self._name = name if isinstance(name, str) else type(inner).__name__
        self.__name__ = self._name
        qualname = getattr(inner, "__qualname__", None)
        self.__qualname__ = qualname if isinstance(qualname, str) else self._name
        self.__module__ = getattr(inner, "__module__", None) or __name__
        self.__doc__ = getattr(inner, "__doc__", None)
        self.__signature__ = _remaining_signature(self, fn, args, kwargs)

    def _label(self) -> str:
        return f"{self._kind}({self._name})"

    def __repr__(self) -> str:
        bound = [_short.repr(arg) for arg in self._args]
        bound += [f"{key}={_short.repr(value)}" for key, value in self._kwargs.items()]
        return f"{self._kind}({', '.join([_fn_repr(self._fn), *bound, *self._options()])})"

    def _options(self) -> list[str]:
        return []

    def _call(self, inputs: Mapping[str, object]) -> Callable[..., T]:
        """`fn` with its bound keywords and the step's inputs, or `TypeError` on a clash."""
        if self._kwargs:
            clash = sorted(self._kwargs.keys() & inputs.keys())
            if clash:
                names = ", ".join(repr(name) for name in clash)
                raise TypeError(
                    f"step {trio.lowlevel.current_task().name!r}: {self._label()} binds the "
                    f"keyword argument(s) {names}, which the step's inputs pass too; rename "
                    "the input or drop the bound argument"
                )
        return functools.partial(self._fn, **self._kwargs, **inputs)

    def _stop_iteration(self) -> RuntimeError:
        """What replaces the `RuntimeError` that stands for a `StopIteration` of `fn`."""
        return RuntimeError(
            f"step {trio.lowlevel.current_task().name!r}: {self._label()} raised "
            "StopIteration (its __cause__), which cannot pass through an async action; "
            "catch it in the function and return or raise something else"
        )


def _fn_repr(fn: object) -> str:
    """How an action's repr shows `fn`: a function by name, a partial with its arguments."""
    if isinstance(fn, functools.partial):
        bound = [_short.repr(arg) for arg in fn.args]
        bound += [f"{key}={_short.repr(value)}" for key, value in fn.keywords.items()]
        return f"partial({', '.join([_fn_repr(fn.func), *bound])})"
    name = getattr(fn, "__name__", None)
    if isinstance(name, str) and (inspect.isroutine(fn) or inspect.isclass(fn)):
        return name
    if type(fn).__repr__ is object.__repr__:  # an instance, without its address
        return f"<{type(fn).__qualname__} object>"
    return _short.repr(fn)


class _RemainingSignature(inspect.Signature):
    """`fn`'s signature without the bound parameters, whose `bind` names a bound one.

    `Step` checks its `inputs` with `inspect.signature(action).bind(...)`: an input that
    repeats an argument bound by `in_thread(fn, ...)` is refused saying so, rather than as
    a missing or unexpected argument.
    """

    _bound: frozenset[str] = frozenset()
    _action: Callable[[], object] = staticmethod(lambda: None)

    def bind(self, /, *args: object, **kwargs: object) -> inspect.BoundArguments:
        clash = [name for name in kwargs if name in self._bound]
        if clash:
            names = ", ".join(repr(name) for name in clash)
            raise TypeError(
                f"{names} {'is' if len(clash) == 1 else 'are'} already bound by "
                f"{self._action()!r}: drop {'it' if len(clash) == 1 else 'them'} from the step's "
                "inputs or from the bound arguments"
            )
        return super().bind(*args, **kwargs)


def _remaining_signature(
    action: _Offloaded[Any],
    fn: Callable[..., object],
    args: tuple[object, ...],
    kwargs: dict[str, object],
) -> inspect.Signature:
    """`fn`'s signature without the parameters `args` and `kwargs` bind.

    When `fn`'s signature cannot be read, `(**inputs)`: any inputs, checked at run time.

    Raises:
        TypeError: `fn` cannot take `args` and `kwargs`.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or a C callable: found out at run time
        return inspect.Signature([inspect.Parameter("inputs", inspect.Parameter.VAR_KEYWORD)])
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError as exc:
        if action._kind == "in_process" and "abandon_on_cancel" in kwargs:
            raise TypeError(
                f"{action._label()} takes no abandon_on_cancel: that is an option of "
                "in_thread, whose threads cannot be stopped. A cancelled in_process step "
                "always kills its worker process and ends at once"
            ) from None
        raise TypeError(f"{action._label()} cannot bind the arguments given: {exc}") from None
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    left = [
        parameter
        for name, parameter in signature.parameters.items()
        if name not in bound.arguments or parameter.kind in variadic
    ]
    remaining = _RemainingSignature(left, return_annotation=signature.return_annotation)
    taken = {
        name
        for name, parameter in signature.parameters.items()
        if name in bound.arguments and parameter.kind not in variadic
    }
    remaining._bound = frozenset(taken | kwargs.keys())
    # (its repr, for a message, only when one is raised; a weak reference: the action
    # holds this signature, and a cycle would keep a big argument until the collector ran)
    remaining._action = weakref.ref(action)
    return remaining


@final
class _InThread(_Offloaded[T]):
    _kind = "in_thread"

    def __init__(
        self,
        fn: Callable[..., T],
        args: tuple[object, ...],
        kwargs: dict[str, object],
        *,
        abandon_on_cancel: bool,
    ) -> None:
        if not isinstance(abandon_on_cancel, bool):
            raise TypeError(
                f"abandon_on_cancel must be a bool, not {type(abandon_on_cancel).__name__}: "
                f"{abandon_on_cancel!r}"
            )
        self._abandon = abandon_on_cancel
        super().__init__(fn, args, kwargs)

    def _options(self) -> list[str]:
        return ["abandon_on_cancel=True"] if self._abandon else []

    async def __call__(self, /, **inputs: object) -> T:
        target = self._call(inputs) if inputs else self._target
        try:
            if target is self._fn:
                value = await trio.to_thread.run_sync(
                    target, *self._args, abandon_on_cancel=self._abandon
                )
            else:
                value = await trio.to_thread.run_sync(
                    target,
                    *self._args,
                    thread_name=f"{self._name} from {trio.lowlevel.current_task().name}",
                    abandon_on_cancel=self._abandon,
                )
        except RuntimeError as exc:
            if not is_stop_iteration(exc):
                raise
            raise self._stop_iteration() from exc.__cause__
        # A cancellation that came while the thread ran (a deadline, fail-fast) ends the
        # step as cancelled, its value discarded, as the action's next checkpoint would.
        await trio.lowlevel.checkpoint_if_cancelled()
        return value


@final
class _InProcess(_Offloaded[T]):
    _kind = "in_process"

    def __init__(
        self, fn: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]
    ) -> None:
        super().__init__(fn, args, kwargs)
        parallel = _trio_parallel()
        self._run_sync: Callable[..., Awaitable[T]] = parallel.run_sync
        self._dumps = _dumps()
        # Refuse what cannot reach a worker here, where the action is made, rather than
        # in the middle of a run.
        culprit = self._unpicklable({})
        if culprit is not None:
            what, error = culprit
            raise TypeError(
                f"{self._label()} cannot send {what} to a worker process: "
                f"{type(error).__name__}: {error}. {self._advice(what)}"
            ) from error

    def _advice(self, what: str) -> str:
        inner: object = self._fn
        while isinstance(inner, functools.partial):
            inner = inner.func
        module = getattr(inner, "__module__", None) or type(inner).__module__
        if what == "the function" and module == "__main__" and self._dumps is not pickle.dumps:
            return (
                "It is defined in the script being run (module __main__), so cloudpickle "
                "sends it by value, together with the module-level globals it uses, and one "
                "of them cannot be pickled: move the function (and what it uses) to a "
                "module the script imports, which a worker imports by name"
            )
        return _PICKLE_ADVICE

    async def __call__(self, /, **inputs: object) -> T:
        target = self._call(inputs) if inputs else self._target
        try:
            return await self._run_sync(target, *self._args, kill_on_cancel=True)
        except SystemExit as exc:
            if exc.code is None and len(exc.args) == 1:  # (trio-parallel remakes it
                exc.code = exc.args[0]  # without calling `__init__`, which sets `code`)
            raise
        except Exception as exc:
            if isinstance(exc, RuntimeError) and is_stop_iteration(exc):
                raise self._stop_iteration() from exc.__cause__
            where = _where_pickling_failed(exc)
            if where is None:  # the function's own, or trio-parallel's (a broken worker)
                raise
            step = trio.lowlevel.current_task().name
            if where == "rebuild":
                raise TypeError(
                    f"step {step!r}: {self._label()} did not run: the worker process could "
                    "not unpickle the function or its arguments, pickled here: "
                    f"{type(exc).__name__}: {exc}. {_PICKLE_ADVICE}"
                ) from exc
            if where == "back":
                raise TypeError(
                    f"step {step!r}: {self._label()} ran in the worker, but its return value "
                    "or the exception it raised cannot be passed back from the worker: "
                    f"{type(exc).__name__}: {exc}. trio-parallel sends back only this error "
                    "(not which of the two it was, nor the exception the function raised): "
                    "return plain data, and raise exceptions that can be pickled"
                ) from exc
            # Sending failed: find what cannot be pickled, in a thread, as pickling a large
            # argument again takes a while. Only now, so a call pickles its job just once.
            culprit = await trio.to_thread.run_sync(self._unpicklable, inputs)
            if culprit is None:
                raise
            what, error = culprit
            raise TypeError(
                f"step {step!r}: {self._label()} cannot send {what} to a worker process: "
                f"{type(error).__name__}: {error}. {self._advice(what)}"
            ) from exc

    def _unpicklable(self, inputs: Mapping[str, object]) -> tuple[str, BaseException] | None:
        """The first part of the call that cannot be pickled, and why; `None` if none."""
        parts: list[tuple[str, object]] = [("the function", self._fn)]
        parts += [
            (f"its argument {n} ({_described(arg)})", arg) for n, arg in enumerate(self._args)
        ]
        parts += [
            (f"its keyword argument {key!r} ({_described(value)})", value)
            for key, value in self._kwargs.items()
        ]
        parts += [
            (f"its input {key!r} ({_described(value)})", value) for key, value in inputs.items()
        ]
        for what, part in parts:
            try:
                self._dumps(part)
            except _PICKLING_ERRORS as exc:
                return what, exc
        return None


_PICKLE_ADVICE: Final = (
    "A worker process receives the function and its arguments pickled: the function must "
    "be importable (defined at the top level of a module) and the arguments plain data; "
    "run it with exegraph.in_thread if it needs this object"
)


def is_stop_iteration(error: RuntimeError) -> bool:
    """Whether `error` is how a coroutine passed on a `StopIteration` raised in it.

    A `StopIteration` cannot leave a coroutine (PEP 479): Trio's own coroutine turns the
    one `fn` raised into `RuntimeError("coroutine raised StopIteration")`, which names
    neither `fn` nor the step.
    """
    return isinstance(error.__cause__, StopIteration) and str(error).endswith(
        "raised StopIteration"
    )


def _described(value: object) -> str:
    name = type(value).__qualname__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _where_pickling_failed(exc: Exception) -> Literal["send", "rebuild", "back"] | None:
    """Where pickling failed, if `exc`, raised by trio-parallel's `run_sync`, says it did.

    Read from its traceback:

    - `None`: the function raised it in the worker (a frame of the worker's job runner),
      or nothing shows that pickling failed (trio-parallel's own errors);
    - `"rebuild"`: the worker could not unpickle the job pickled here (the job runner's
      `loads`): an argument whose `__reduce__` works here and fails there;
    - `"send"`: pickling the job here failed (trio-parallel's `dumps` of the call);
    - `"back"`: the value or exception could not be pickled in the worker (trio-parallel
      then sends the error alone, without a frame: it is raised by unwrapping its outcome
      here), or not unpickled here.

    Pickling raises what the object's `__reduce__` raises (a ctypes pointer a
    `ValueError`), so any exception type may say so; the usual ones (`TypeError`,
    `PicklingError`, …) count as `"back"` also without a sign, as before.
    """
    tb = exc.__traceback__
    where: Literal["send", "rebuild", "back"] | None = None
    innermost = None
    job_line: str | None = None  # (the job runner's innermost line: it re-raises too)
    while tb is not None:
        frame = tb.tb_frame
        module = frame.f_globals.get("__name__")
        if module == "_trio_parallel_workers" and frame.f_code.co_name == "handle_job":
            job_line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno)
        if module == "trio_parallel._proc":
            line = linecache.getline(frame.f_code.co_filename, tb.tb_lineno)
            where = "back" if "loads(" in line else "send"
        innermost = frame
        tb = tb.tb_next
    if job_line is not None:  # raised in the worker, unpickling the job or by the function
        return "rebuild" if "loads(" in job_line else None
    if where is None and innermost is not None:
        unwrapped = (
            innermost.f_globals.get("__name__") == "outcome._impl"
            and innermost.f_code.co_name == "unwrap"
        )
        if unwrapped or isinstance(exc, _PICKLING_ERRORS):
            where = "back"
    return where


def _trio_parallel() -> ModuleType:
    """The `trio_parallel` module, or an `ImportError` that says how to install it."""
    try:
        return importlib.import_module("trio_parallel")
    except ImportError as exc:
        raise ImportError(
            f"exegraph.in_process runs functions in worker processes with trio-parallel, "
            f"which is not installed: {_INSTALL}",
            name="trio_parallel",
        ) from exc


def _dumps() -> Callable[[object], bytes]:
    """How trio-parallel pickles a call: with cloudpickle when it is installed, else pickle."""
    try:
        cloudpickle = importlib.import_module("cloudpickle")
    except ImportError:
        return pickle.dumps
    dumps: Callable[[object], bytes] = cloudpickle.dumps
    return dumps


def in_thread(
    fn: Callable[..., T], /, *args: object, abandon_on_cancel: bool = False, **kwargs: object
) -> Callable[..., Awaitable[T]]:
    """Make a step action that runs the sync function `fn(*args, **kwargs)` in a thread.

    For blocking calls: file and network I/O without async support, C libraries that
    release the GIL, `time.sleep`. The step's `inputs` are passed as more keyword
    arguments, and what `fn` returns is the step's value:

    ```python
    def resize(image: bytes, width: int) -> bytes: ...

    Step("resize", exegraph.in_thread(resize, width=800), inputs={"image": "download"})
    ```

    It runs on `trio.to_thread.run_sync`, so at most 40 such threads run at once (Trio's
    default limiter, shared with every other `trio.to_thread` call of the program; a step
    waiting for a thread holds its exegraph slot), and context variables reach the
    thread: the step's OpenTelemetry span is current there, so spans made by `fn` nest
    under it.

    **Cancellation and deadlines.** A thread cannot be interrupted. When the step is
    cancelled (its timeout passes, fail-fast cancels the run, an enclosing scope is
    cancelled):

    - by default the step waits until `fn` returns, then ends as timed out
      ([`StepTimeoutError`][exegraph_trio.StepTimeoutError]) or cancelled, and `fn`'s
      value is discarded: a step with `timeout=5` whose `fn` takes 60 s fails after 60 s.
      If `fn` raises instead, its exception is the step's error (not
      `StepTimeoutError`), and under a cancelled scope around the run it comes out in a
      [`RunError`][exegraph_trio.RunError], as a Trio nursery keeps an error raised while
      it is cancelled. `Ctrl-C` waits too (a second one changes nothing). A long `fn` can
      stop early by calling `trio.from_thread.check_cancelled()` now and then: it raises
      `trio.Cancelled` in the thread once the step is cancelled;
    - with `abandon_on_cancel=True` the step ends at once and `fn` keeps running in the
      background until it returns; its value or exception is discarded. Use it only for
      a `fn` that is safe to leave running (nothing waits for its effects, and the
      process may exit while it runs). An abandoned thread keeps its token of Trio's
      limiter until `fn` returns: 40 calls that hang leave no thread for later steps
      (nor for other `trio.to_thread` users); raise the limit with
      `trio.to_thread.current_default_thread_limiter().total_tokens = 100`.

    CPU-bound Python holds the GIL and gains nothing from threads: use
    [`in_process`][exegraph_trio.in_process].

    Args:
        fn: a sync callable, not a generator function. Its name, qualified name and
            docstring become the action's, so `GraphBuilder.step` names a step after it.
        *args: positional arguments for `fn`.
        abandon_on_cancel: whether a cancelled step stops waiting for `fn` (`True`) or
            waits until it returns (`False`, the default), as described above. (To bind
            an argument of `fn` named so, use `functools.partial(fn, abandon_on_cancel=...)`.)
        **kwargs: keyword arguments for `fn`; the step's `inputs` must not repeat them.
            An input may be named like any parameter of `fn`, `self` included.

    Returns:
        An async action for [`Step`][exegraph_trio.Step]: called with the step's inputs as
        keyword arguments, it returns what `fn` returns and raises what `fn` raises. Its
        signature is `fn`'s without the bound arguments, so a `Step` whose `inputs` name
        a parameter `fn` does not have (or one bound here) is refused when it is made.

        A `StopIteration` of `fn` cannot leave an async action: the step fails with a
        `RuntimeError` saying so, the `StopIteration` as its `__cause__`.

    Raises:
        TypeError: `fn` is not callable, is async or a generator function,
            `abandon_on_cancel` is not a `bool`, or `fn` cannot take `args` and `kwargs`
            (when its signature can be read). When the action is called: an input
            repeats a keyword bound here (when `fn`'s signature cannot be read, so `Step`
            could not refuse it).
    """
    return _InThread(fn, args, kwargs, abandon_on_cancel=abandon_on_cancel)


def in_process(
    fn: Callable[..., T], /, *args: object, **kwargs: object
) -> Callable[..., Awaitable[T]]:
    """Make a step action that runs the sync function `fn(*args, **kwargs)` in a process.

    For CPU-bound Python, which holds the GIL: each call runs in a worker process of
    [`trio-parallel`](https://trio-parallel.readthedocs.io), an extra
    (`pip install 'exegraph-trio[process]'`). Workers are reused between calls; by
    default at most one runs per CPU (trio-parallel's limiter), and a step waiting for a
    worker holds its exegraph slot. The step's `inputs` are passed as more keyword
    arguments, and what `fn` returns is the step's value:

    ```python
    def checksum(path: str, algorithm: str) -> str: ...  # at the top level of a module

    Step("checksum", exegraph.in_process(checksum, algorithm="sha256"), inputs={"path": "fetch"})
    ```

    **Cancellation and deadlines kill the worker.** When the step is cancelled (its
    timeout passes, fail-fast cancels the run, an enclosing scope is cancelled), its
    worker process is killed (`SIGKILL`; `TerminateProcess` on Windows) and the step
    ends at once, so even `while True: pass` stops. Whatever `fn` was doing is cut short:
    no `finally` or `with` block of `fn` runs. `Ctrl-C` reaches the event loop, not the
    workers, and ends them the same way. A step's `timeout` counts from the call, so it
    also covers waiting for a free worker and starting one (0.1-0.5 s for the first
    calls).

    **Everything crosses a process boundary.** `fn`, its arguments and inputs are
    pickled to the worker and its value or exception pickled back (with `cloudpickle`
    when it is installed, as trio-parallel does, else `pickle`): `fn` should be defined
    at the top level of a module (with a `if __name__ == "__main__":` guard in a script:
    workers are spawned and import it), its arguments plain data. cloudpickle sends a
    function of the script being run (module `__main__`) *by value*, with the module
    globals it uses: a global lock or connection makes it unpicklable, and a large
    global is sent again with each call; put such a function in a module the script
    imports. Context variables do not reach the worker, and what `fn` changes in the
    worker's globals stays there.

    A return value or an exception that cannot be pickled back from the worker fails the
    step with a `TypeError` that says so: trio-parallel sends back only the pickling
    error (as its `__cause__`), so neither which of the two it was nor the exception `fn`
    raised can be told (a `Retry(on=...)` of that exception does not match).

    Args:
        fn: a sync callable that can be pickled, not a generator function. Its name,
            qualified name and docstring become the action's, so `GraphBuilder.step`
            names a step after it.
        *args: positional arguments for `fn`; they must be picklable.
        **kwargs: keyword arguments for `fn`; they must be picklable, and the step's
            `inputs` must not repeat them.

    Returns:
        An async action for [`Step`][exegraph_trio.Step]: called with the step's inputs as
        keyword arguments, it returns what `fn` returns and raises what `fn` raises (a
        worker that dies raises `trio_parallel.BrokenWorkerError`). Its signature is `fn`'s
        without the bound arguments, so a `Step` whose `inputs` name a parameter `fn` does
        not have (or one bound here) is refused when it is made. A `StopIteration` of
        `fn` fails the step with a `RuntimeError` saying so.

    Raises:
        ImportError: trio-parallel is not installed.
        TypeError: `fn` is not callable, is async or a generator function, `fn` cannot
            take `args` and `kwargs` (when its signature can be read; `abandon_on_cancel`
            is `in_thread`'s option), or `fn` or an argument cannot be pickled (the
            message names which). When the action is called: an input cannot be pickled
            (the message names the step and the input), repeats a keyword bound here, or
            what `fn` returned or raised cannot be pickled back.
    """
    return _InProcess(fn, args, kwargs)
