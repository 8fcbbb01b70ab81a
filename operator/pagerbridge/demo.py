"""``pagerbridge demo``: an incident's life, BigPanda ⇄ PagerDuty, on a local control plane.

Everything runs on this machine and is cleaned up at the end: a local Kubernetes control
plane (etcd + kube-apiserver, ``pagerbridge.localcluster``), the PagerDuty and BigPanda
simulators, the operator (the real ``pagerbridge operator`` process), and the relay it
deploys (run by the harness kubelet, since there is no real kubelet). The demo applies
``examples/03-bidirectional.yaml`` with the key override and tag mapping of
``examples/02-override-and-mappings.yaml``, then plays one incident from opening to
resolution and prints a summary table. Exit status 0 means every step happened; otherwise
the failed step is named and the status is 1.

A small loopback forwarder stands in for the Ingress: it is the integration's
``relay.publicUrl``, so PagerDuty's webhook subscription and BigPanda's webhook reach the
relay the way they would in a cluster.

No secret value is printed: routing keys, tokens and signing secrets stay in Secrets and in
the relay's mounted files.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

NAMESPACE = "pagerbridge-demo"
INTEGRATION = "bidirectional"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# A second Events API integration key on the same PagerDuty service ("Database alerts"):
# the alert tag pd_routing_key carries it, so the key override is visible in PagerDuty.
OVERRIDE_KEY = "d8b1c0ffee5a4e77b1c2d3e4f5a6b7c8"
OVERRIDE_NAME = "Database alerts"
STEP_TIMEOUT = 60.0

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory (logs, kubeconfig) instead of deleting it",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=STEP_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each step may take (default {STEP_TIMEOUT:g})",
    )


def run(args: argparse.Namespace) -> int:
    demo = Demo(step_timeout=args.timeout, keep=args.keep)
    return demo.run()


class StepFailed(Exception):
    """A step did not happen in time; the message says what was expected."""


@dataclass
class StepResult:
    title: str
    ok: bool
    seconds: float
    detail: str


@dataclass
class Demo:
    step_timeout: float = STEP_TIMEOUT
    keep: bool = False
    results: list[StepResult] = field(default_factory=list)
    workdir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="pagerbridge-demo-"))
    )
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _state: dict[str, Any] = field(default_factory=dict)

    # -- the story ----------------------------------------------------------------------

    def run(self) -> int:
        print("PagerBridge demo: one incident's life, BigPanda ⇄ PagerDuty, all on this machine")
        print(f"(work directory: {self.workdir})\n", flush=True)
        steps: list[tuple[str, Callable[[], str]]] = [
            ("local control plane (etcd + kube-apiserver)", self.start_control_plane),
            ("PagerDuty and BigPanda simulators", self.start_simulators),
            ("operator running (pagerbridge operator)", self.start_operator),
            ("integration applied and Ready", self.apply_integration),
            ("BigPanda incident opened", self.open_bigpanda_incident),
            ("PagerDuty incident triggered", self.pagerduty_triggered),
            ("comment in BigPanda", self.comment_in_bigpanda),
            ("note in PagerDuty", self.note_in_pagerduty),
            ("note added in PagerDuty", self.note_added_in_pagerduty),
            ("comment in BigPanda", self.comment_back_in_bigpanda),
            ("resolve in PagerDuty", self.resolve_in_pagerduty),
            ("resolved in BigPanda", self.resolved_in_bigpanda),
        ]
        failed: StepResult | None = None
        try:
            for number, (title, action) in enumerate(steps, 1):
                label = f"[{number:2d}/{len(steps)}] {title}"
                print(f"{label} ...", flush=True)
                started = time.monotonic()
                try:
                    detail = action()
                except Exception as exc:  # reported as the failed step
                    failed = StepResult(title, False, time.monotonic() - started, str(exc))
                    self.results.append(failed)
                    print(f"        FAILED: {exc}", flush=True)
                    break
                result = StepResult(title, True, time.monotonic() - started, detail)
                self.results.append(result)
                for line in detail.splitlines():
                    print(f"        {line}", flush=True)
        finally:
            self.cleanup()
        self.print_summary()
        if failed is not None:
            print(f"\ndemo FAILED at step {len(self.results)}: {failed.title}", flush=True)
            return 1
        print("\ndemo passed: every step happened", flush=True)
        return 0

    def start_control_plane(self) -> str:
        from pagerbridge.api import crdgen
        from pagerbridge.localcluster import ControlPlane, find_binaries

        crds = self.workdir / "crds"
        crdgen.write_all(crds)
        binaries = find_binaries()
        plane = ControlPlane(self.workdir / "cluster", binaries, crds=[crds])
        self._stack.callback(plane.stop)
        plane.start()
        self._state["plane"] = plane
        self._state["kubectl"] = binaries.kubectl
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crds))
        self.kubectl("create", "namespace", NAMESPACE)
        return f"API server at {plane.url}, namespace {NAMESPACE}"

    def start_simulators(self) -> str:
        from pagerbridge.sandbox.bigpanda import BigPandaSimulator
        from pagerbridge.sandbox.pagerduty import DEFAULT_SERVICE_ID, PagerDutySimulator
        from pagerbridge.sandbox.server import BackgroundServer

        pagerduty = PagerDutySimulator()
        pagerduty.add_service(DEFAULT_SERVICE_ID, OVERRIDE_KEY, OVERRIDE_NAME)
        bigpanda = BigPandaSimulator()
        ingress = Ingress()
        servers = {}
        for name, app in (("pd", pagerduty.app), ("bp", bigpanda.app), ("ingress", ingress.app)):
            servers[name] = self._stack.enter_context(BackgroundServer(app))
        self._stack.callback(pagerduty.close)
        self._stack.callback(bigpanda.close)
        self._state.update(pagerduty=pagerduty, bigpanda=bigpanda, ingress=ingress)
        self._state["urls"] = {name: server.url for name, server in servers.items()}
        return (
            f"PagerDuty (Events v2, REST v2, Webhooks v3) at {servers['pd'].url}\n"
            f"BigPanda (webhooks, Incidents API v2) at {servers['bp'].url}\n"
            f"relay's public URL (a loopback stand-in for an Ingress) {servers['ingress'].url}"
        )

    def start_operator(self) -> str:
        from pagerbridge.localcluster.kubelet import HarnessKubelet
        from pagerbridge.sandbox.server import free_port

        kubelet = HarnessKubelet(self.kubeconfig, self.workdir / "kubelet", NAMESPACE)
        kubelet.start()
        self._stack.callback(kubelet.stop)
        liveness = free_port()
        log = (self.workdir / "operator.log").open("ab")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "pagerbridge", "operator", "--namespace", NAMESPACE,
                "--liveness", f"http://127.0.0.1:{liveness}/healthz",
                "--metrics-port", str(free_port()),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            start_new_session=True,
        )  # fmt: skip
        self._stack.callback(_stop_process, process)
        self._stack.callback(log.close)
        self._state["operator"] = process

        def alive() -> bool:
            if process.poll() is not None:
                raise StepFailed(f"the operator exited; see {self.workdir / 'operator.log'}")
            return _http_ok(f"http://127.0.0.1:{liveness}/healthz")

        self.wait(alive, "the operator's liveness endpoint")
        return f"watching namespace {NAMESPACE}; the harness kubelet runs relay Deployments"

    def apply_integration(self) -> str:
        from pagerbridge.localcluster.kubelet import ANNOTATION_URL

        documents = self.demo_manifests()
        self.kubectl("apply", "--server-side", "-n", NAMESPACE, "-f", "-", input=documents)
        kinds = ["pdi/" + INTEGRATION, "pdko/routed-by-tag", "pdtm/routed-fields"]
        for kind in kinds:
            self.wait(functools.partial(self.ready, kind), f"{kind} Ready")
        relay = self.get("deployment", f"{INTEGRATION}-relay")
        local_url = relay["metadata"]["annotations"][ANNOTATION_URL]
        self._state["ingress"].target = local_url
        status = self.get("pdi", INTEGRATION)["status"]
        webhook = status["bigPandaWebhook"]
        headers = self.webhook_headers(webhook)
        self._state["bigpanda"].add_webhook_target(webhook["url"], headers)
        shown = ", ".join(h["name"] for h in webhook["headers"])
        return (
            "applied examples/03-bidirectional.yaml + the override and mapping of "
            "examples/02-override-and-mappings.yaml\n"
            f"kubectl wait --for=condition=Ready pdi/{INTEGRATION}: "
            f"{self.condition('pdi/' + INTEGRATION)['message']}\n"
            f"BigPanda webhook (from status.bigPandaWebhook): {webhook['url']} "
            f"with headers {shown}\n"
            f"PagerDuty webhook subscription: {status.get('pagerDutySubscription', {}).get('id')}"
        )

    def open_bigpanda_incident(self) -> str:
        incident = self._state["bigpanda"].open_incident(
            [
                {
                    "status": "critical",
                    "host": "db-1",
                    "service": "payments",
                    "team": "core",
                    "description": "disk full on db-1",
                    "pd_routing_key": OVERRIDE_KEY,
                }
            ]
        )
        self._state["bp_incident"] = incident.id
        return (
            f"incident {incident.id}: critical, host=db-1 service=payments team=core, "
            "tag pd_routing_key=<the 'Database alerts' integration key>"
        )

    def pagerduty_triggered(self) -> str:
        pagerduty = self._state["pagerduty"]
        bp_id = self._state["bp_incident"]
        incident = self.wait(lambda: pagerduty.incident_by_key(bp_id), "a PagerDuty incident")
        self._state["pd_incident"] = incident.id
        if incident.routing_key != OVERRIDE_KEY:
            raise StepFailed("the incident was not routed with the key from pd_routing_key")
        payload = incident.events[-1]["payload"]
        details = payload.get("custom_details") or {}
        return (
            f"incident #{incident.number} {incident.id} ({incident.status}), dedup key {bp_id}\n"
            f"routing key override: tag pd_routing_key → '{OVERRIDE_NAME}' integration "
            "(not the default key)\n"
            f"mapped fields: source={payload.get('source')} "
            f"component={payload.get('component')} custom_details.team={details.get('team')}\n"
            f"summary: {payload.get('summary')!r}, severity {payload.get('severity')}"
        )

    def comment_in_bigpanda(self) -> str:
        text = "Looking at it: the WAL archive filled the disk."
        self._state["bigpanda"].add_comment(
            self._state["bp_incident"], text, by="alice@example.com"
        )
        self._state["bp_comment"] = text
        return f"alice@example.com: {text!r}"

    def note_in_pagerduty(self) -> str:
        pagerduty = self._state["pagerduty"]
        text = self._state["bp_comment"]

        def noted() -> Any:
            incident = pagerduty.incident(self._state["pd_incident"])
            return next((n for n in incident.notes if text in n.content), None)

        note = self.wait(noted, "the comment as a PagerDuty note")
        return f"note {note.id}: {note.content!r}"

    def note_added_in_pagerduty(self) -> str:
        text = "Freed 40 GB; archiving moved to object storage."
        self._state["pagerduty"].add_note(self._state["pd_incident"], text)
        self._state["pd_note"] = text
        return f"oncall@example.com: {text!r}"

    def comment_back_in_bigpanda(self) -> str:
        bigpanda = self._state["bigpanda"]
        text = self._state["pd_note"]
        bp_id = self._state["bp_incident"]

        def commented() -> Any:
            return next((w for w in bigpanda.api_comments(bp_id) if text in w.text), None)

        self.wait(commented, "the PagerDuty note as a BigPanda comment")
        echoes = [w for w in bigpanda.api_comments(bp_id) if self._state["bp_comment"] in w.text]
        if echoes:
            raise StepFailed("the BigPanda comment came back to BigPanda (echo loop)")
        return f"comment on {bp_id} written through the Incidents API: {text!r} (no echo)"

    def resolve_in_pagerduty(self) -> str:
        self._state["pagerduty"].resolve(self._state["pd_incident"])
        return f"incident {self._state['pd_incident']} resolved by oncall@example.com"

    def resolved_in_bigpanda(self) -> str:
        bigpanda = self._state["bigpanda"]
        bp_id = self._state["bp_incident"]
        self.wait(lambda: not bigpanda.incident(bp_id).active, "the BigPanda incident resolved")
        resolves = bigpanda.api_resolves(bp_id)
        return f"incident {bp_id}: {bigpanda.incident(bp_id).status}, {len(resolves)} resolve call"

    # -- manifests ----------------------------------------------------------------------

    def demo_manifests(self) -> str:
        """The examples, with sandbox credentials and URLs in place of the placeholders."""
        import yaml

        from pagerbridge.sandbox import bigpanda as bp
        from pagerbridge.sandbox import pagerduty as pd

        urls = self._state["urls"]
        docs = [
            d for d in yaml.safe_load_all((EXAMPLES / "03-bidirectional.yaml").read_text()) if d
        ]
        docs += [
            d
            for d in yaml.safe_load_all((EXAMPLES / "02-override-and-mappings.yaml").read_text())
            if d and d["kind"] in {"PagerDutyKeyOverride", "PagerDutyTagMapping"}
        ]
        for doc in docs:
            if doc["kind"] == "Secret":
                for key in doc["stringData"]:
                    if key == "routing-key":
                        doc["stringData"][key] = pd.DEFAULT_ROUTING_KEY
                    elif doc["metadata"]["name"].startswith("bigpanda"):
                        doc["stringData"][key] = bp.DEFAULT_API_TOKEN
                    else:
                        doc["stringData"][key] = pd.DEFAULT_API_TOKEN
            elif doc["kind"] == "PagerDutyIntegration":
                spec = doc["spec"]
                spec["pagerDuty"].update(
                    eventsUrl=urls["pd"], apiUrl=urls["pd"], serviceId=pd.DEFAULT_SERVICE_ID
                )
                spec["bigPanda"].update(apiUrl=urls["bp"], environmentId=bp.DEFAULT_ENVIRONMENT_ID)
                spec["relay"] = {"publicUrl": urls["ingress"]}
            else:
                doc["spec"]["integrationRef"]["name"] = INTEGRATION
        return yaml.safe_dump_all(docs)

    def webhook_headers(self, webhook: dict[str, Any]) -> dict[str, str]:
        """The headers a person would enter in BigPanda (the token read from its Secret)."""
        import base64

        headers: dict[str, str] = {}
        for header in webhook["headers"]:
            ref = header.get("valueFrom")
            if ref is None:
                headers[header["name"]] = header["value"]
                continue
            secret = self.get("secret", ref["name"])
            token = base64.b64decode(secret["data"][ref["key"]]).decode()
            headers[header["name"]] = header["value"].replace("<token>", token)
        return headers

    # -- helpers --------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        path: Path = self._state["plane"].kubeconfig
        return path

    def kubectl(self, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [str(self._state["kubectl"]), *args],
            input=input,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if result.returncode != 0:
            raise StepFailed(f"kubectl {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def get(self, kind: str, name: str) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(
            self.kubectl("get", "-n", NAMESPACE, kind, name, "-o", "json")
        )
        return body

    def condition(self, what: str, type_: str = "Ready") -> dict[str, Any]:
        kind, name = what.split("/")
        for cond in (self.get(kind, name).get("status") or {}).get("conditions", []):
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def ready(self, what: str) -> bool:
        return self.condition(what).get("status") == "True"

    def wait(self, predicate: Callable[[], T | None], what: str) -> T:
        deadline = time.monotonic() + self.step_timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise StepFailed(f"timed out after {self.step_timeout:g} s waiting for {what}")

    def cleanup(self) -> None:
        print("\ncleaning up (relay, operator, simulators, control plane) ...", flush=True)
        with contextlib.suppress(Exception):
            self._stack.close()
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def print_summary(self) -> None:
        print("\nsummary")
        width = max((len(r.title) for r in self.results), default=10)
        print(f"  {'#':>2}  {'step':<{width}}  {'result':<6}  {'seconds':>7}")
        for number, result in enumerate(self.results, 1):
            mark = "ok" if result.ok else "FAILED"
            print(f"  {number:>2}  {result.title:<{width}}  {mark:<6}  {result.seconds:>7.1f}")
        print(flush=True)


class Ingress:
    """A loopback reverse proxy to the relay, set once the relay's local address is known."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.target: str | None = None
        self.app = Starlette(
            routes=[Route("/{path:path}", self._forward, methods=["GET", "POST", "PUT", "DELETE"])]
        )

    async def _forward(self, request: Any) -> Any:
        import httpx
        from starlette.responses import JSONResponse, Response

        if self.target is None:
            return JSONResponse({"error": "relay not started yet"}, status_code=503)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with httpx.AsyncClient(timeout=10.0) as client:
            upstream = await client.request(
                request.method,
                self.target.rstrip("/") + request.url.path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )
        reply = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=reply)


_HOP_HEADERS = {
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "upgrade",
}


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
