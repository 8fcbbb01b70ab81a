"""Runs the demo's steps in order and decides the exit status.

Exit status: 0 when every step happened; 1 naming the first step that did not (with the
last lines of the logs that explain it); 130 when interrupted (Ctrl-C, SIGTERM, SIGHUP). Either
way everything started is stopped and the work directory removed before the summary is
printed; a second Ctrl-C during cleanup is ignored so cleanup finishes.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pagerbridge_devkit.demo.environment import Environment
from pagerbridge_devkit.demo.output import Printer, tail
from pagerbridge_devkit.demo.steps import Step, StepFailed, StepResult
from pagerbridge_devkit.demo.story import Story

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
# Ctrl-C, kill, and a closed terminal: each ends the demo through its cleanup.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP: stop the current step, clean up, exit 130."""


@dataclass(frozen=True)
class DemoOptions:
    kubeconfig: Path | None = None
    step_timeout: float = 60.0
    keep: bool = False


def steps(env: Environment, story: Story) -> list[Step]:
    cluster_logs = ("kube-apiserver",)
    product_logs = ("operator", "relay")
    return [
        Step(
            "Kubernetes API server and CRDs",
            env.start_cluster,
            cluster_logs,
            section="Setting up: Kubernetes, simulators, operator, integration",
        ),
        Step("PagerDuty and BigPanda simulators", env.start_simulators),
        Step("operator and harness kubelet running", env.start_operator, ("operator",)),
        Step("integration applied and Ready", story.apply_integration, product_logs),
        Step("BigPanda webhook pointed at the relay", story.wire_bigpanda_webhook, product_logs),
        Step(
            "BigPanda: incident opened",
            story.open_bigpanda_incident,
            section="The incident's life, BigPanda <-> PagerDuty",
        ),
        Step("PagerDuty: incident triggered", story.pagerduty_triggered, ("relay",)),
        Step("BigPanda: comment added", story.comment_in_bigpanda),
        Step("PagerDuty: note from the comment", story.note_arrives_in_pagerduty, ("relay",)),
        Step("PagerDuty: note added", story.note_in_pagerduty),
        Step("BigPanda: comment from the note", story.comment_arrives_in_bigpanda, ("relay",)),
        Step("PagerDuty: incident resolved", story.resolve_in_pagerduty),
        Step("BigPanda: incident resolved", story.resolved_in_bigpanda, ("relay",)),
    ]


def run_demo(options: DemoOptions, printer: Printer | None = None) -> int:
    out = printer or Printer()
    workdir = Path(tempfile.mkdtemp(prefix="pagerbridge-demo-"))
    env = Environment(workdir, options.step_timeout, options.kubeconfig, notify=out.detail)
    plan = steps(env, Story(env))
    results: list[StepResult] = []
    out.line("PagerBridge demo: one incident's life, BigPanda <-> PagerDuty, on this machine")
    out.line(f"work directory {workdir} (logs; removed at the end)")
    interrupted = False
    started = time.monotonic()
    try:
        with _signals_interrupt():
            for number, step in enumerate(plan, 1):
                started = time.monotonic()
                if step.section:
                    out.section(step.section)
                out.step_started(number, len(plan), step.title)
                result = _play(step)
                results.append(result)
                out.step_done(result)
                if not result.ok:
                    out.log_tails(_log_tails(env, result.logs))
                    break
            else:
                if options.keep:
                    _stay_up(env, out)
    except Interrupted:
        interrupted = True
        if len(results) < len(plan) and (not results or results[-1].ok):
            title = plan[len(results)].title
            results.append(StepResult(title, False, time.monotonic() - started, "interrupted"))
        out.line("\ninterrupted")
    finally:
        _cleanup(env, workdir, out)
    out.summary(results, len(plan))
    failed = next((r for r in results if not r.ok), None)
    if interrupted:
        where = f" during step {len(results)}: {failed.title}" if failed else ""
        out.line(f"\ndemo interrupted{where}")
        return EXIT_INTERRUPTED
    if failed is not None:
        out.line(f"\ndemo FAILED at step {len(results)}: {failed.title}: {failed.detail}")
        return EXIT_FAILED
    out.line("\ndemo passed: every step happened")
    return 0


def _play(step: Step) -> StepResult:
    """Run one step; any error (not an interrupt) is that step's failure."""
    started = time.monotonic()
    try:
        detail = step.action()
    except Exception as exc:
        return StepResult(step.title, False, time.monotonic() - started, _reason(exc), step.logs)
    return StepResult(step.title, True, time.monotonic() - started, detail)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, StepFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _log_tails(env: Environment, names: tuple[str, ...]) -> list[tuple[str, Path, list[str]]]:
    logs = dict(env.logs)
    if env.kubelet is not None:
        for pod in list(env.kubelet.pods.values()):
            if pod.log_path is not None:
                logs["relay"] = pod.log_path
    found = []
    for name in names:
        path = logs.get(name)
        if path is not None:
            lines = tail(path)
            if lines:
                found.append((name, path, lines))
    return found


def _stay_up(env: Environment, out: Printer) -> None:
    kubeconfig = env.kubectl.kubeconfig if env.kubectl else None
    out.line("\n--keep: everything keeps running until Ctrl-C")
    out.line(f"  export KUBECONFIG={kubeconfig}")
    out.line(f"  kubectl get pdi,pdko,pdtm,deploy,cm,secret -n {env.namespace}")
    if env.sandbox is not None:
        out.line(f"  PagerDuty simulator {env.sandbox.pagerduty_url}")
        out.line(f"  BigPanda simulator  {env.sandbox.bigpanda_url}")
    out.line(
        f"  relay {env.relay_url()} (public URL {env.sandbox.public_url if env.sandbox else '-'})"
    )
    try:
        threading.Event().wait()  # until Ctrl-C / SIGTERM
    except Interrupted:
        return  # the story passed: stopping it now is no failure


def _cleanup(env: Environment, workdir: Path, out: Printer) -> None:
    out.line("\ncleaning up: relay, operator, simulators, Kubernetes ...")
    with _signals_ignored():
        env.close()
        shutil.rmtree(workdir, ignore_errors=True)
    for error in env.cleanup_errors:
        out.line(f"  cleanup: {error}")
    gone = "removed" if not workdir.exists() else "NOT removed"
    out.line(f"  all stopped; work directory {gone}")


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    previous = {s: signal.signal(s, _raise_interrupted) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
