#!/usr/bin/env python3
"""Checks deploy/k8s/*.yaml and deploy/container/Containerfile without a cluster or a container
runtime (neither is on CI's machine): every manifest parses, and what issue 10 asks of them holds
(one replica on a volume, probes on /healthz and /readyz, config and pack from ConfigMaps, secrets
from Secrets, non-root with a read-only root file system; a multi-stage Debian 12 image, non-root,
with a volume and a health check), and of replicas/ what issue 13 asks (several replicas, the
database URL from a Secret, a PodDisruptionBudget). It is a structural check, not the API server's schema
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


def load(directory):
    """The documents of a kustomization directory, by (kind, name), with what it takes from
    its parent (resources named ../x.yaml)."""
    docs = {}
    paths = sorted(directory.glob("*.yaml"))
    for path in paths:
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
        if need((directory / resource).is_file(), f"{directory.name}/kustomization.yaml: {resource} does not exist") \
                and resource.startswith("../"):
            for doc in yaml.safe_load_all((directory / resource).read_text()):
                if doc is not None:
                    docs.setdefault((doc.get("kind"), doc["metadata"]["name"]), doc)
    return docs


def check_pods(docs, kind, replicas, where):
    """The workload (`kind`: a StatefulSet whose pods keep a volume, or a Deployment of
    interchangeable pods), its ConfigMap and Secrets: what issue 10 asks of the pod; `replicas`
    tells whether the count is right. Returns the pod's security context, for the image's."""
    config_map = docs.get(("ConfigMap", "microcare-config"))
    need(config_map, f"{where}: no ConfigMap microcare-config")
    sts = docs.get((kind, "microcare"))
    if not need(sts, f"{where}: no {kind} microcare"):
        return {}
    spec = sts["spec"]
    need(sts.get("apiVersion") == "apps/v1", f"{where}: {kind}: apiVersion is not apps/v1")
    need(replicas(spec.get("replicas")), f"{where}: {kind}: replicas {spec.get('replicas')}")
    if kind == "StatefulSet":
        need(spec.get("serviceName") in {n for k, n in docs if k == "Service"},
             f"{where}: StatefulSet: serviceName names no Service here")
    labels = spec["template"]["metadata"]["labels"]
    need(all(labels.get(k) == v for k, v in spec["selector"]["matchLabels"].items()),
         f"{where}: {kind}: the selector does not match the template's labels")
    pod = spec["template"]["spec"]
    pod_security = pod.get("securityContext", {})
    need(pod_security.get("runAsNonRoot") is True, f"{where}: pod: runAsNonRoot is not true")
    need(isinstance(pod_security.get("runAsUser"), int) and pod_security["runAsUser"] > 0,
         f"{where}: pod: runAsUser is not a non-root UID")
    need(pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault",
         f"{where}: pod: no RuntimeDefault seccomp profile")
    claims = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
    if kind == "StatefulSet":
        need(claims, f"{where}: StatefulSet: no volumeClaimTemplates (the store and the trail need a volume)")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    (container,) = pod["containers"]
    security = container.get("securityContext", {})
    need(security.get("readOnlyRootFilesystem") is True, f"{where}: container: root file system not read-only")
    need(security.get("allowPrivilegeEscalation") is False, f"{where}: container: privilege escalation allowed")
    need(security.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: container: capabilities not dropped")
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    if kind == "StatefulSet":
        need(mounts.get("/var/lib/microcare") in claims,
             f"{where}: container: /var/lib/microcare is not on the claimed volume")
    need("/tmp" in mounts, f"{where}: container: no writable /tmp (the root file system is read-only)")
    for path, name in mounts.items():
        need(name in volumes or name in claims, f"{where}: container: mount {path} names no volume {name}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        need(get.get("path") == path, f"{where}: container: {probe} is not on {path}")
        need(get.get("port") in ports or get.get("port") in ports.values(),
             f"{where}: container: {probe} port names no container port")
    config = json.loads(config_map["data"]["microcare.json"]) if config_map else {}
    need(ports.get("https") == config.get("server", {}).get("port"),
         f"{where}: container: port https is not the configuration's server.port")
    # Where the configuration, the pack and the secrets come from.
    sources = volumes.get("etc", {}).get("projected", {}).get("sources", [])
    config_maps = {s["configMap"]["name"] for s in sources if "configMap" in s}
    secrets = {s["secret"]["name"] for s in sources if "secret" in s}
    secrets |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    secrets |= {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})}
    need({"microcare-config", "microcare-rules"} <= config_maps,
         f"{where}: pod: configuration and pack are not both from ConfigMaps")
    projected = {i["path"] for s in sources for kind in ("configMap", "secret") if kind in s
                 for i in s[kind].get("items", [])}
    wanted = [config.get("rules", {}).get("path"), config.get("audit", {}).get("keyFile"),
              config.get("ehr", {}).get("auth", {}).get("privateKeyFile")]
    wanted += list(config.get("server", {}).get("tls", {}).values())
    for file in [w for w in wanted if isinstance(w, str) and w.startswith("/etc/microcare/")]:
        need(file.removeprefix("/etc/microcare/") in projected,
             f"{where}: pod: {file}, which the configuration names, is not mounted")
    need(len(secrets) >= 1, f"{where}: pod: no Secret")
    example = {n for k, n in examples if k == "Secret"}
    need(secrets <= example, f"{where}: pod: Secrets {sorted(secrets - example)} have no example")
    return pod_security, sts, config, container


examples = load(k8s)  # the Secrets' shapes live beside the single replica's files
single = load(k8s)
several = load(k8s / "replicas")
shipped = json.loads((root / "config" / "microcare.json").read_text())

# One replica on the embedded store: the configuration as shipped.
config_map = single.get(("ConfigMap", "microcare-config"))
if need(config_map, "no ConfigMap microcare-config"):
    try:
        same = json.loads(config_map.get("data", {}).get("microcare.json", "")) == shipped
        need(same, "ConfigMap microcare-config: microcare.json differs from config/microcare.json")
    except json.JSONDecodeError as error:
        problems.append(f"ConfigMap microcare-config: microcare.json is not JSON: {error}")
pod_security, *_ = check_pods(single, "StatefulSet", lambda n: n == 1, "single") or ({},)

# Several replicas on PostgreSQL, interchangeable pods (a Deployment, no volume): the same
# configuration but for the store, whose URL (with its password) comes from a Secret, and the
# trail, which is in the database (the service refuses trail-file settings beside it); a
# disruption budget that keeps all but one running.
_, sts, config, container = check_pods(several, "Deployment", lambda n: isinstance(n, int) and n >= 2,
                                       "replicas") or ({}, {}, {}, {})
need({k: v for k, v in config.items() if k not in ("store", "audit")} ==
     {k: v for k, v in shipped.items() if k not in ("store", "audit")},
     "replicas: microcare.json differs from config/microcare.json elsewhere than in store and audit")
file_only = {"path", "checkpointPath", "rotateBytes", "rotateHours", "keepFiles", "keepHours"}
need({k: v for k, v in config.get("audit", {}).items()} ==
     {k: v for k, v in shipped.get("audit", {}).items() if k not in file_only},
     "replicas: audit is not config/microcare.json's without the settings of trail files")
url = config.get("store", {}).get("url", "")
need(url.startswith("${") and url.endswith("}") and "path" not in config.get("store", {}),
     "replicas: store.url is not a ${VARIABLE} alone (the URL carries the password)")
from_secret = {e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}
need(url[2:-1] in from_secret, f"replicas: {url} is not set from a Secret")
pdb = several.get(("PodDisruptionBudget", "microcare"))
if need(pdb, "replicas: no PodDisruptionBudget microcare") and sts:
    need(pdb.get("apiVersion") == "policy/v1", "replicas: PodDisruptionBudget: apiVersion is not policy/v1")
    selected = pdb["spec"].get("selector", {}).get("matchLabels", {})
    labels = sts["spec"]["template"]["metadata"]["labels"]
    need(selected and all(labels.get(k) == v for k, v in selected.items()),
         "replicas: PodDisruptionBudget selects no replica")
    need(pdb["spec"].get("maxUnavailable") == 1 or
         0 < pdb["spec"].get("minAvailable", 0) < sts["spec"]["replicas"],
         "replicas: PodDisruptionBudget lets all replicas go, or none")
docs = {**single, **{(k, f"replicas/{n}"): d for (k, n), d in several.items()}}

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
if users:
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
print(f"manifests: {len(docs)} Kubernetes documents (one replica on the embedded store; "
      f"{several.get(('Deployment', 'microcare'), {}).get('spec', {}).get('replicas')} on PostgreSQL) "
      "and the Containerfile parse and hold what issues 10 and 13 ask (structure only: no API "
      "server or container runtime here)")
