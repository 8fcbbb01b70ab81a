"""``pagerbridge doctor``: what is wrong with PagerBridge in a cluster, and how to fix it.

Checks, in order: the CRDs (installed, and the same schema this version generates), the
operator (a live leader Lease, its pods), and each integration (reconciled, its
conditions, the Secrets and keys it references, its public URL settings). Each check is
a pure function from objects already read to :class:`Finding` s (tested without a
cluster); :func:`diagnose` reads the objects. Secret *values* are never read into a
finding: only whether a Secret and its keys exist.

Whether BigPanda and PagerDuty, on the internet, can reach the public URL is unknowable
from inside the cluster: doctor says what the user must check instead of guessing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from pagerbridge import __version__
from pagerbridge.api import ALL_KINDS, GROUP, INTEGRATION, VERSION, PagerDutyIntegrationSpec
from pagerbridge.api.contract import BIGPANDA_WEBHOOK_PATH, PAGERDUTY_WEBHOOK_PATH
from pagerbridge.api.crdgen import VERSION_LABEL, crd
from pagerbridge.api.resources import ResourceKind
from pagerbridge.clients.kubeconfig import Credentials
from pagerbridge.clients.kubernetes import KubernetesClient, KubernetesError, NotFound, Resource
from pagerbridge.controller.names import TOKEN_KEY, ChildNames
from pagerbridge.controller.render import conditions as c
from pagerbridge.controller.render.compile import secret_refs

CRD_RESOURCE = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", False)
ALL_NAMESPACES = "*"  # the client's word for a list across namespaces (None: its default)
LEASE_NAMES = ("pagerbridge-operator", "pagerbridge")  # the CLI's default, the chart's
OPERATOR_PODS = "app.kubernetes.io/name=pagerbridge,app.kubernetes.io/component=operator"
INFORMATIONAL = {c.READY, c.RECONCILING, c.OUTBOX_DURABLE, c.RELAY_PUBLIC}


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    section: str  # "CRDs", "Operator", "Integration ns/name"
    level: Level
    message: str
    fix: str = ""


def _ok(section: str, message: str) -> Finding:
    return Finding(section, Level.OK, message)


# -- CRDs -------------------------------------------------------------------------------


def _schemas(document: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(v.get("name")): (v.get("schema") or {}).get("openAPIV3Schema")
        for v in (document.get("spec") or {}).get("versions") or []
    }


def check_crd(kind: ResourceKind, installed: Mapping[str, Any] | None) -> Finding:
    apply = "kubectl apply --server-side -f crds/ (or the Helm chart with crds.enabled=true)"
    if installed is None:
        return Finding(
            "CRDs", Level.FAIL, f"{kind.crd_name} is not installed", f"install the CRDs: {apply}"
        )
    version = ((installed.get("metadata") or {}).get("labels") or {}).get(VERSION_LABEL, "?")
    if _schemas(installed) != _schemas(crd(kind)):
        return Finding(
            "CRDs",
            Level.FAIL,
            f"{kind.crd_name} is not the schema PagerBridge {__version__} expects "
            f"(installed from version {version})",
            f"update the CRDs: {apply}",
        )
    return _ok("CRDs", f"{kind.crd_name} installed and current ({version})")


# -- operator ---------------------------------------------------------------------------


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def check_operator(
    leases: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]], now: datetime
) -> list[Finding]:
    findings: list[Finding] = []
    live = []
    for lease in leases:
        meta, spec = lease.get("metadata") or {}, lease.get("spec") or {}
        where = f"Lease {meta.get('namespace')}/{meta.get('name')}"
        renewed = _parse_time(spec.get("renewTime"))
        duration = float(spec.get("leaseDurationSeconds") or 15)
        holder = spec.get("holderIdentity") or ""
        if holder and renewed is not None and (now - renewed).total_seconds() <= duration:
            live.append(lease)
            age = max(0, round((now - renewed).total_seconds()))
            findings.append(_ok("Operator", f"{where}: leader {holder}, renewed {age}s ago"))
        else:
            findings.append(
                Finding(
                    "Operator",
                    Level.WARN,
                    f"{where}: no live leader (holder {holder or 'none'}, last renewed "
                    f"{spec.get('renewTime') or 'never'})",
                )
            )
    ready = [p for p in pods if _pod_ready(p)]
    if pods:
        level = Level.OK if ready else Level.WARN
        findings.append(
            Finding("Operator", level, f"operator pods: {len(ready)} of {len(pods)} ready")
        )
    if not live:
        findings.append(
            Finding(
                "Operator",
                Level.FAIL,
                "no running operator found: no PagerBridge leader Lease is held"
                + ("" if leases else " (no Lease found)"),
                "start it (helm install pagerbridge charts/pagerbridge, or pagerbridge "
                "operator); if it runs, see its pods and logs: kubectl get pods -A -l "
                f"{OPERATOR_PODS}; kubectl logs -n NS deploy/pagerbridge. An operator run "
                "with --no-leader-election holds no Lease: pass --operator-namespace and "
                "--lease, or ignore this line",
            )
        )
    return findings


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


# -- integrations -----------------------------------------------------------------------


@dataclass(frozen=True)
class SecretPresence:
    """What doctor knows of a Secret: that it exists and its key *names*, never values."""

    keys: frozenset[str]


def check_integration(
    body: Mapping[str, Any], secrets: Mapping[str, SecretPresence | None]
) -> list[Finding]:
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    section = f"Integration {namespace}/{name}"
    describe = f"kubectl describe pdi -n {namespace} {name}"
    findings: list[Finding] = []
    try:
        spec = PagerDutyIntegrationSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        return [
            Finding(
                section,
                Level.FAIL,
                f"spec does not validate ({exc.error_count()} error(s))",
                "update the CRDs and re-apply the manifest",
            )
        ]
    findings.extend(_secret_findings(section, namespace, name, spec, secrets))
    status = body.get("status") or {}
    conditions = list(status.get("conditions") or [])
    if not conditions:
        findings.append(
            Finding(
                section,
                Level.FAIL,
                "never reconciled: no status conditions",
                f"check that an operator runs and watches namespace {namespace} "
                "(Helm values rbac.scope / watchNamespaces)",
            )
        )
    else:
        findings.extend(_condition_findings(section, describe, conditions))
        generation, observed = meta.get("generation"), c.observed_generation(status)
        if generation is not None and observed != generation:
            findings.append(
                Finding(
                    section,
                    Level.WARN,
                    f"status is for generation {observed}, the spec is at {generation}: "
                    "the operator has not caught up",
                    "wait a moment; if it stays, check the operator's logs",
                )
            )
    findings.extend(_public_url_findings(section, spec, status))
    return findings


def _secret_findings(
    section: str,
    namespace: str,
    name: str,
    spec: PagerDutyIntegrationSpec,
    secrets: Mapping[str, SecretPresence | None],
) -> list[Finding]:
    findings = []
    for field, ref in secret_refs(spec):
        secret = secrets.get(ref.name)
        if secret is None:
            findings.append(
                Finding(
                    section,
                    Level.FAIL,
                    f"{field}: Secret {ref.name} not found",
                    f"kubectl create secret generic {ref.name} -n {namespace} "
                    f"--from-literal={ref.key}=...",
                )
            )
        elif ref.key not in secret.keys:
            findings.append(
                Finding(
                    section,
                    Level.FAIL,
                    f"{field}: Secret {ref.name} has no key {ref.key} "
                    f"(it has: {', '.join(sorted(secret.keys)) or 'none'})",
                    f"add key {ref.key} to Secret {ref.name}, or point {field}.key at one it has",
                )
            )
        else:
            findings.append(_ok(section, f"{field}: Secret {ref.name} has key {ref.key}"))
    token = ChildNames(name).token_secret
    presence = secrets.get(token)
    if presence is None or TOKEN_KEY not in presence.keys:
        findings.append(
            Finding(
                section,
                Level.WARN,
                f"the generated webhook token Secret {token} is missing",
                "the operator recreates it (with a new token BigPanda must then send: "
                f"pagerbridge webhook-config {name} -n {namespace})",
            )
        )
    return findings


def _condition_findings(
    section: str, describe: str, conditions: list[dict[str, Any]]
) -> list[Finding]:
    ready = c.find(conditions, c.READY) or {}
    findings = []
    if ready.get("status") == c.TRUE:
        findings.append(_ok(section, "Ready"))
    else:
        level = Level.WARN if ready.get("status") == c.UNKNOWN else Level.FAIL
        findings.append(
            Finding(
                section,
                level,
                f"not Ready ({ready.get('status', 'no Ready condition')}, "
                f"{ready.get('reason', '?')}): {ready.get('message', '')}",
                f"{describe} (conditions and Events)",
            )
        )
    for condition in conditions:
        if condition.get("type") in INFORMATIONAL or condition.get("status") == c.TRUE:
            continue
        if condition.get("reason") == ready.get("reason"):
            continue  # already said by Ready
        findings.append(
            Finding(
                section,
                Level.WARN,
                f"{condition.get('type')}={condition.get('status')} "
                f"({condition.get('reason')}): {condition.get('message', '')}",
            )
        )
    durable = c.find(conditions, c.OUTBOX_DURABLE)
    if durable is not None and durable.get("status") == c.FALSE:
        findings.append(Finding(section, Level.WARN, str(durable.get("message", ""))))
    return findings


def _public_url_findings(
    section: str, spec: PagerDutyIntegrationSpec, status: Mapping[str, Any]
) -> list[Finding]:
    url = spec.relay.effective_public_url
    if url is None:
        return [
            Finding(
                section,
                Level.WARN,
                "no public URL: the relay is only reachable inside the cluster, so BigPanda "
                "and PagerDuty (on the internet) cannot send it webhooks",
                "set spec.relay.expose (an Ingress or HTTPRoute the operator creates) or "
                "spec.relay.publicUrl (your own load balancer or ingress)",
            )
        ]
    base = url.rstrip("/")
    findings = []
    if base.startswith("http://"):
        findings.append(
            Finding(
                section,
                Level.WARN,
                f"public URL {base} is plain http: the webhook bearer token crosses the "
                "internet unencrypted",
                "use TLS (spec.relay.expose.ingress.tls, or an https publicUrl)",
            )
        )
    reachable = c.find(list(status.get("conditions") or []), c.RELAY_PUBLIC)
    if reachable is not None and reachable.get("status") == c.FALSE:
        findings.append(
            Finding(
                section,
                Level.FAIL,
                f"{reachable.get('reason')}: {reachable.get('message', '')}",
            )
        )
    findings.append(
        Finding(
            section,
            Level.WARN,
            f"doctor cannot tell whether BigPanda and PagerDuty reach {base}",
            f"check from outside the cluster: DNS of the host, the TLS certificate, "
            f"firewalls; `curl -sS -o /dev/null -w '%{{http_code}}' -X POST "
            f"{base}{BIGPANDA_WEBHOOK_PATH}` should print 401 (the relay refusing a "
            f"missing token), and so should {base}{PAGERDUTY_WEBHOOK_PATH} (or 404 when "
            "PagerDuty webhooks are not configured)",
        )
    )
    return findings


# -- reading the cluster ----------------------------------------------------------------


@dataclass(frozen=True)
class DoctorOptions:
    namespace: str | None  # None: every namespace
    operator_namespace: str | None
    lease_names: tuple[str, ...] = LEASE_NAMES


async def diagnose(credentials: Credentials, options: DoctorOptions) -> list[Finding]:
    findings: list[Finding] = []
    async with KubernetesClient(credentials) as kube:
        try:
            await kube.server_version()
        except KubernetesError as exc:
            return [
                Finding(
                    "Cluster",
                    Level.FAIL,
                    f"cannot reach the API server {credentials.server}: {exc}",
                    "check --kubeconfig / --context",
                )
            ]
        installed = True
        for kind in ALL_KINDS:
            body = await _get_or_none(kube, CRD_RESOURCE, None, kind.crd_name, findings, "CRDs")
            if body is _FORBIDDEN:
                continue
            findings.append(check_crd(kind, body))
            installed = installed and body is not None
        findings.extend(await _operator(kube, options, findings))
        if installed:
            findings.extend(await _integrations(kube, options))
    return findings


_FORBIDDEN: Any = object()


async def _get_or_none(
    kube: KubernetesClient,
    resource: Resource,
    namespace: str | None,
    name: str,
    findings: list[Finding],
    section: str,
) -> Any:
    try:
        return await kube.get(resource, namespace, name)
    except NotFound:
        return None
    except KubernetesError as exc:
        findings.append(
            Finding(section, Level.WARN, f"cannot read {resource.plural}/{name}: {exc}")
        )
        return _FORBIDDEN


async def _operator(
    kube: KubernetesClient, options: DoctorOptions, findings: list[Finding]
) -> list[Finding]:
    lease = Resource.builtin("Lease")
    try:
        where = options.operator_namespace or ALL_NAMESPACES
        listing = await kube.list(lease, where)
        pods_listing = await kube.list(Resource("", "v1", "pods"), where, OPERATOR_PODS)
    except KubernetesError as exc:
        return [
            Finding(
                "Operator",
                Level.WARN,
                f"cannot list Leases or pods: {exc}",
                "pass --operator-namespace NS (the operator's namespace)",
            )
        ]
    leases = [item for item in listing["items"] if item["metadata"]["name"] in options.lease_names]
    return check_operator(leases, pods_listing["items"], datetime.now(UTC))


async def _integrations(kube: KubernetesClient, options: DoctorOptions) -> list[Finding]:
    resource = Resource.custom(GROUP, VERSION, INTEGRATION.plural)
    try:
        items = (await kube.list(resource, options.namespace or ALL_NAMESPACES))["items"]
    except KubernetesError as exc:
        return [Finding("Integrations", Level.FAIL, f"cannot list integrations: {exc}")]
    if not items:
        where = f"namespace {options.namespace}" if options.namespace else "any namespace"
        return [_ok("Integrations", f"no PagerDutyIntegration in {where}")]
    findings: list[Finding] = []
    for body in sorted(items, key=lambda b: (b["metadata"]["namespace"], b["metadata"]["name"])):
        namespace = body["metadata"]["namespace"]
        secrets: dict[str, SecretPresence | None] = {}
        names = {ref.name for _, ref in _refs(body)} | {
            ChildNames(body["metadata"]["name"]).token_secret
        }
        for secret_name in sorted(names):
            secrets[secret_name] = await _secret_presence(kube, namespace, secret_name)
        findings.extend(check_integration(body, secrets))
    return findings


def _refs(body: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    try:
        return secret_refs(PagerDutyIntegrationSpec.model_validate(body.get("spec") or {}))
    except ValidationError:
        return []


async def _secret_presence(
    kube: KubernetesClient, namespace: str, name: str
) -> SecretPresence | None:
    try:
        secret = await kube.get(Resource.builtin("Secret"), namespace, name)
    except NotFound:
        return None
    # Only the key names leave this function; the values are dropped here.
    return SecretPresence(frozenset((secret.get("data") or {}).keys()))


# -- output -----------------------------------------------------------------------------


def format_text(findings: Sequence[Finding], verbose: bool = False) -> str:
    lines: list[str] = []
    section = None
    for finding in findings:
        if finding.level is Level.OK and not verbose:
            continue
        if finding.section != section:
            section = finding.section
            lines.append(section)
        lines.append(f"  [{finding.level.value}] {finding.message}")
        if finding.fix:
            lines.append(f"         fix: {finding.fix}")
    problems = sum(f.level is Level.FAIL for f in findings)
    warnings = sum(f.level is Level.WARN for f in findings)
    lines.append(
        f"{problems} problem(s), {warnings} warning(s), "
        f"{sum(f.level is Level.OK for f in findings)} check(s) passed"
        + ("" if verbose else " (--verbose lists them)")
    )
    return "\n".join(lines) + "\n"


def format_json(findings: Sequence[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], indent=2) + "\n"


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.level is Level.FAIL for f in findings) else 0
