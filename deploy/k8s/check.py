#!/usr/bin/env python3
"""Checks deploy/k8s/*.yaml and deploy/container/Containerfile without a cluster or a container
runtime (neither is on CI's machine): every manifest parses, and what issue 10 asks of them holds
(one replica on a volume, probes on /healthz and /readyz, config and pack from ConfigMaps, secrets
from Secrets, non-root with a read-only root file system; a multi-stage Debian 12 image, non-root,
with a volume and a health check). It is a structural check, not the API server's schema
validation. Prints one line; each problem on stderr; exit 1 if any."""
import json
import pathlib
import sys

import yaml

root = pathlib.Path(__file__).resolve().parents[2]
k8s = root / "deploy" / "k8s"
problems = []


def need(condition, what):
    if not condition:
        problems.append(what)
    return condition


docs = {}
for path in sorted(k8s.glob("*.yaml")):
    try:
        loaded = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except yaml.YAMLError as error:
        problems.append(f"{path.name}: not YAML: {error}")
        continue
    for doc in loaded:
        if path.name == "kustomization.yaml":
            docs.setdefault(("Kustomization", "kustomization"), doc)
            continue
        for field in ("apiVersion", "kind", "metadata"):
            need(field in doc, f"{path.name}: a document without {field}")
        name = doc.get("metadata", {}).get("name")
        need(name, f"{path.name}: a {doc.get('kind')} without metadata.name")
        docs[(doc.get("kind"), name)] = doc

kustomization = docs.get(("Kustomization", "kustomization"), {})
for resource in kustomization.get("resources", []):
    need((k8s / resource).is_file(), f"kustomization.yaml: {resource} does not exist")

# The ConfigMap's configuration is the shipped one.
config_map = docs.get(("ConfigMap", "microcare-config"))
if need(config_map, "no ConfigMap microcare-config"):
    text = config_map.get("data", {}).get("microcare.json", "")
    try:
        same = json.loads(text) == json.loads((root / "config" / "microcare.json").read_text())
        need(same, "ConfigMap microcare-config: microcare.json differs from config/microcare.json")
    except json.JSONDecodeError as error:
        problems.append(f"ConfigMap microcare-config: microcare.json is not JSON: {error}")

sts = docs.get(("StatefulSet", "microcare"))
if need(sts, "no StatefulSet microcare"):
    spec = sts["spec"]
    need(sts.get("apiVersion") == "apps/v1", "StatefulSet: apiVersion is not apps/v1")
    need(spec.get("replicas") == 1, "StatefulSet: replicas must be 1 (the embedded store)")
    need(spec.get("serviceName") in {n for k, n in docs if k == "Service"},
         "StatefulSet: serviceName names no Service here")
    labels = spec["template"]["metadata"]["labels"]
    need(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
         "StatefulSet: the selector does not match the template's labels")
    pod = spec["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    need(pod_security.get("runAsNonRoot") is True, "pod: runAsNonRoot is not true")
    need(isinstance(pod_security.get("runAsUser"), int) and pod_security["runAsUser"] > 0,
         "pod: runAsUser is not a non-root UID")
    need(pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
         "pod: no RuntimeDefault seccomp profile")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    need(claims, "StatefulSet: no volumeClaimTemplates (the store needs a volume)")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    (container,) = pod["containers"]
    security = container.get("securityContext", {})
    need(security.get("readOnlyRootFilesystem") is True, "container: root file system not read-only")
    need(security.get("allowPrivilegeEscalation") is False, "container: privilege escalation allowed")
    need(security.get("capabilities", {}).get("drop") == ["ALL"], "container: capabilities not dropped")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    need(mounts.get("/var/lib/microcare") in claims,
         "container: /var/lib/microcare is not on the claimed volume")
    need("/tmp" in mounts, "container: no writable /tmp (the root file system is read-only)")
    for path, name in mounts.items():
        need(name in volumes or name in claims, f"container: mount {path} names no volume {name}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        need(get.get("path") == path, f"container: {probe} is not on {path}")
        need(get.get("port") in ports or get.get("port") in ports.values(),
             f"container: {probe} port names no container port")
    need(ports.get("https") == json.loads(config_map["data"]["microcare.json"])["server"]["port"]
         if config_map else False, "container: port https is not the configuration's server.port")
    # Where the configuration, the pack and the secrets come from.
    sources = volumes.get("etc", {}).get("projected", {}).get("sources", [])
    config_maps = {s["configMap"]["name"] for s in sources if "configMap" in s}
    secrets = {s["secret"]["name"] for s in sources if "secret" in s}
    secrets |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    need({"microcare-config", "microcare-rules"} <= config_maps,
         "pod: configuration and pack are not both from ConfigMaps")
    projected = {i["path"] for s in sources for kind in ("configMap", "secret") if kind in s
                 for i in s[kind].get("items", [])}
    config = json.loads(config_map["data"]["microcare.json"]) if config_map else {}
    wanted = [config.get("rules", {}).get("path"), config.get("audit", {}).get("keyFile"),
              config.get("ehr", {}).get("auth", {}).get("privateKeyFile")]
    wanted += list(config.get("server", {}).get("tls", {}).values())
    for file in [w for w in wanted if isinstance(w, str) and w.startswith("/etc/microcare/")]:
        need(file.removeprefix("/etc/microcare/") in projected,
             f"pod: {file}, which the configuration names, is not mounted")
    need(len(secrets) >= 1, "pod: no Secret")
    example = {n for k, n in docs if k == "Secret"}
    need(secrets <= example, f"pod: Secrets {sorted(secrets - example)} have no example")

# The image definition: multi-stage on Debian 12, non-root, a volume, a health check.
lines = []
for raw in (root / "deploy" / "container" / "Containerfile").read_text().replace("\\\n", " ").splitlines():
    if raw.strip() and not raw.lstrip().startswith("#"):
        lines.append(raw.split(None, 1))
froms = [rest for op, *rest in lines if op.upper() == "FROM"]
need(len(froms) >= 2, "Containerfile: not multi-stage")
need(all("debian:12" in f[0] or "bookworm" in f[0] for f in froms), "Containerfile: a stage not on Debian 12")
users = [rest[0].strip() for op, *rest in lines if op.upper() == "USER"]
need(users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0",
     "Containerfile: the final USER is not a numeric non-root UID")
if sts and users:
    need(int(users[-1].split(":")[0]) == pod_security.get("runAsUser"),
         "Containerfile USER and the pod's runAsUser differ")
need(any(op.upper() == "VOLUME" and "/var/lib/microcare" in rest[0] for op, *rest in lines),
     "Containerfile: /var/lib/microcare is not a VOLUME")
need(any(op.upper() == "HEALTHCHECK" and "/healthz" in rest[0] for op, *rest in lines),
     "Containerfile: no HEALTHCHECK on /healthz")

for problem in problems:
    print(f"manifests: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"manifests: {len(docs)} Kubernetes documents and the Containerfile parse and hold what "
      "issue 10 asks (structure only: no API server or container runtime here)")
