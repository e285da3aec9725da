#!/usr/bin/env python3
"""Checks of the deploy kit that no off-the-shelf tool makes offline; run by
tests/integration/deploy.rs with the .venv's Python (PyYAML).

  check_deploy.py restricted RENDERED.yaml
      Every pod template (Deployment, Job, ...) meets the Kubernetes Pod
      Security Standards "restricted" profile (v1.32's rules), the way the
      admission controller would judge it.
  check_deploy.py alerts RULES.yaml OPERATIONS.md
      Every alert has summary, description and a runbook_url whose anchor is
      a heading of the runbook, and a severity of critical or warning.
  check_deploy.py crds RENDERED.yaml
      The Prometheus Operator and KEDA objects have the fields they need.

Prints one line per problem and exits 1 when there is any.
"""
import re
import sys

import yaml

# Volume types the restricted profile allows.
ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
}


def pod_specs(docs):
    for d in docs:
        spec = d.get("spec", {})
        if d["kind"] == "Pod":
            yield d["metadata"]["name"], spec
        elif "template" in spec:
            yield f'{d["kind"]}/{d["metadata"]["name"]}', spec["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield f'CronJob/{d["metadata"]["name"]}', spec["jobTemplate"]["spec"]["template"]["spec"]


def restricted(docs):
    problems = []
    specs = list(pod_specs(docs))
    if not specs:
        problems.append("no pod template found")
    for name, pod in specs:
        def bad(msg):
            problems.append(f"{name}: {msg}")

        psc = pod.get("securityContext", {})
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(host):
                bad(f"{host} is set")
        for v in pod.get("volumes", []):
            kinds = set(v) - {"name"}
            if not kinds <= ALLOWED_VOLUMES:
                bad(f"volume {v['name']} is of a disallowed type {sorted(kinds)}")
        for s in psc.get("sysctls", []):
            if s["name"] not in SAFE_SYSCTLS:
                bad(f"unsafe sysctl {s['name']}")
        if psc.get("runAsUser") == 0:
            bad("pod runs as user 0")
        containers = pod.get("containers", []) + pod.get("initContainers", []) + pod.get("ephemeralContainers", [])
        for c in containers:
            cn = f"container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("privileged"):
                bad(f"{cn} is privileged")
            if sc.get("allowPrivilegeEscalation") is not False:
                bad(f"{cn} must set allowPrivilegeEscalation: false")
            caps = sc.get("capabilities", {})
            if "ALL" not in caps.get("drop", []):
                bad(f"{cn} must drop ALL capabilities")
            if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
                bad(f"{cn} adds capabilities {caps['add']}")
            if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                bad(f"{cn} must run as non-root (runAsNonRoot: true)")
            if sc.get("runAsUser", psc.get("runAsUser")) == 0:
                bad(f"{cn} runs as user 0")
            seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                bad(f"{cn} needs seccompProfile RuntimeDefault or Localhost, has {seccomp}")
            if sc.get("procMount", "Default") != "Default":
                bad(f"{cn} has procMount {sc['procMount']}")
            for p in c.get("ports", []):
                if p.get("hostPort"):
                    bad(f"{cn} uses hostPort {p['hostPort']}")
            if sc.get("seLinuxOptions", {}).get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
                bad(f"{cn} sets an SELinux type")
    return problems


def anchor(heading):
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def alerts(rules_doc, runbook_text):
    problems = []
    anchors = {anchor(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", runbook_text, re.M)}
    seen = 0
    for group in rules_doc["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            seen += 1
            name = rule["alert"]
            ann = rule.get("annotations", {})
            for key in ("summary", "description", "runbook_url"):
                if not ann.get(key):
                    problems.append(f"{name}: no {key}")
            if rule.get("labels", {}).get("severity") not in ("critical", "warning"):
                problems.append(f"{name}: severity must be critical or warning")
            url = ann.get("runbook_url", "")
            frag = url.split("#", 1)[1] if "#" in url else ""
            if "docs/operations.md#" not in url or frag not in anchors:
                problems.append(f"{name}: runbook_url {url!r} names no section of docs/operations.md")
    if seen == 0:
        problems.append("no alerts found")
    return problems


def crds(docs):
    problems = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ("ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"):
        if kind not in by_kind:
            problems.append(f"no {kind}")
    for sm in by_kind.get("ServiceMonitor", []):
        if "release" not in sm["metadata"].get("labels", {}):
            problems.append("ServiceMonitor lacks the release label kube-prometheus-stack selects")
        services = [s for s in by_kind.get("Service", [])]
        want = sm["spec"]["selector"]["matchLabels"]
        ports = {p["port"] for p in sm["spec"]["endpoints"]}
        if not any(want.items() <= s["metadata"].get("labels", {}).items()
                   and ports <= {p.get("name") for p in s["spec"]["ports"]} for s in services):
            problems.append("ServiceMonitor selects no Service with its port")
    for pr in by_kind.get("PrometheusRule", []):
        if "release" not in pr["metadata"].get("labels", {}):
            problems.append("PrometheusRule lacks the release label")
    deployments = {d["metadata"]["name"] for d in by_kind.get("Deployment", [])}
    for so in by_kind.get("ScaledObject", []):
        spec = so["spec"]
        if spec["scaleTargetRef"]["name"] not in deployments:
            problems.append("ScaledObject targets no Deployment of the kit")
        if spec.get("minReplicaCount", 0) < 1:
            problems.append("ScaledObject may scale to zero: intake would stop")
        types = {t["type"] for t in spec["triggers"]}
        if not {"prometheus", "aws-sqs-queue"} <= types:
            problems.append(f"ScaledObject triggers {sorted(types)}: needs prometheus (backlog) and aws-sqs-queue")
        auths = {a["metadata"]["name"] for a in by_kind.get("TriggerAuthentication", [])}
        for t in spec["triggers"]:
            ref = t.get("authenticationRef", {}).get("name")
            if ref and ref not in auths:
                problems.append(f"trigger {t['type']} names a missing TriggerAuthentication {ref}")
    for d in by_kind.get("Deployment", []):
        for c in d["spec"]["template"]["spec"]["containers"]:
            image = c["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"container {c['name']} image {image!r} is not pinned by tag")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.append(f"container {c['name']} has no {probe}")
    return problems


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    what = argv[0]
    if what == "restricted":
        problems = restricted([d for d in yaml.safe_load_all(open(argv[1])) if d])
    elif what == "crds":
        problems = crds([d for d in yaml.safe_load_all(open(argv[1])) if d])
    elif what == "alerts":
        problems = alerts(yaml.safe_load(open(argv[1])), open(argv[2]).read())
    else:
        print(f"unknown check {what}")
        return 2
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
