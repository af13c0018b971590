#!/usr/bin/env python3
"""Checks objects rendered by `helm template` (scripts/check-deploy.sh runs it).

For each rendered file:
  - every object is validated against the Kubernetes OpenAPI schema (kubernetes-validate,
    strict: unknown fields are errors) for the oldest and the newest Kubernetes it ships;
  - every agent ConfigMap (key edgemesh-agent.yaml) is started through edgemesh's config loader:
    `edgemesh agent --check-config --config FILE` must exit 0 (its warnings are printed);
  - every gateway ConfigMap (key edgemesh-gateway.yaml) likewise through
    `edgemesh gateway --check-config -c FILE`;
  - every edge hub ConfigMap (key cache_agents) must be a comma-separated list of User-Agent
    names or `*`;
  - every flag a rendered DaemonSet passes to `edgemesh hub` (or `edgemesh hub bootstrap`, in an
    initContainer) is one its `--help` lists, and the hub's flags pass `edgemesh hub
    --check-config` (the pod's files stood in for by a CA, serving pair and token made here);
  - with --edgemesh-compat, the objects an EdgeMesh install has keep EdgeMesh's names, the
    DaemonSet keeps EdgeMesh's selector (a selector cannot change on upgrade), the PSK from the
    values is the one in the Secret, and relayNodes from the values reach the agent's config.

  - with --edgemesh-compat and a gateway Deployment among the objects: EdgeMesh's gateway object
    names and selector are kept, it runs edgemesh-gateway on the host's network with the pod's
    labels at /etc/podinfo/labels, and the values' gateway.psk / gateway.relayNodes reach its
    ConfigMaps.

    scripts/check-deploy.py --edgemesh BIN [--values FILE] [--edgemesh-compat | --gateway-compat] RENDERED.yaml
Exits 1 on the first failing file, after printing every problem in it.
"""

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile

import kubernetes_validate
import yaml

OLDEST_SCHEMA = "1.25.0"
AGENT_KEY = "edgemesh-agent.yaml"
GATEWAY_KEY = "edgemesh-gateway.yaml"
USER_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def schema_versions():
    return [OLDEST_SCHEMA, kubernetes_validate.latest_version()]


def validate_schema(doc, where, problems):
    for version in schema_versions():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            problems.append(f"{where}: schema {version}: {path}: {e.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
            problems.append(f"{where}: schema {version}: {e}")


def check_role_config(binary, role, text, where, problems):
    """Starts `edgemesh ROLE --check-config --config FILE` on a ConfigMap's config."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"edgemesh-{role}-", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        # NODE_NAME as the DaemonSet/Deployment sets it; nothing on the host is touched by
        # --check-config.
        env = dict(os.environ, NODE_NAME="check-deploy-node")
        run = subprocess.run(
            [binary, role, "--check-config", "--config", path],
            capture_output=True, text=True, env=env, timeout=60,
        )
    finally:
        os.unlink(path)
    out = (run.stdout + run.stderr).strip()
    for line in out.splitlines():
        print(f"    {where}: {line}")
    if run.returncode != 0:
        problems.append(f"{where}: `edgemesh {role} --check-config` exited {run.returncode}")


def check_cache_agents(value, where, problems):
    for name in (n.strip() for n in value.split(",")):
        if name != "*" and not USER_AGENT.match(name):
            problems.append(f"{where}: cache_agents entry {name!r} is not a User-Agent name or *")


def check_hub_flags(binary, doc, where, problems):
    spec = doc["spec"]["template"]["spec"]
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        command = (c.get("command") or []) + (c.get("args") or [])
        if len(command) < 2 or not command[0].endswith("edgemesh") or command[1] != "hub":
            continue
        # `edgemesh hub bootstrap` (the serving certificate's initContainer) has flags of its own.
        role = ["hub", "bootstrap"] if command[2:3] == ["bootstrap"] else ["hub"]
        run = subprocess.run([binary, *role, "--help"], capture_output=True, text=True, timeout=60)
        known = set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z0-9-]+)", run.stdout))
        for arg in command[1 + len(role):]:
            flag = arg.split("=", 1)[0]
            if flag.startswith("--") and flag not in known:
                problems.append(f"{where}: container {c['name']}: `edgemesh {' '.join(role)}` has no flag {flag}")
        if role == ["hub"]:
            check_hub_config(binary, command[2:], f"{where}: container {c['name']}", problems)


# The hub's file flags point at paths inside the pod (the service account's CA and token, the
# serving pair, the cache): --check-config reads them, so they are stood in for by files made
# here, of the same kinds.
HUB_FILE_FLAGS = ("--ca-file", "--token-file", "--cert-file", "--key-file", "--cache-dir")


def stand_in_files(tmp):
    """A CA, a serving pair it signed for 169.254.2.1, a token and a cache dir."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)
    ca_key, ca, key, csr, cert = (os.path.join(tmp, n) for n in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-subj", "/CN=check-deploy-ca", "-days", "2")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=system:node:check-deploy-node/O=system:nodes")
    ext = os.path.join(tmp, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:169.254.2.1,IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)
    token = os.path.join(tmp, "token")
    with open(token, "w") as f:
        f.write("check-deploy-token")
    cache = os.path.join(tmp, "cache")
    os.mkdir(cache)
    return {"--ca-file": ca, "--token-file": token, "--cert-file": cert, "--key-file": key, "--cache-dir": cache}


def check_hub_config(binary, args, where, problems):
    """Starts `edgemesh hub --check-config` with the container's flags, files stood in for."""
    with tempfile.TemporaryDirectory(prefix="edgemesh-hub-") as tmp:
        files = stand_in_files(tmp)
        local = []
        for arg in args:
            flag, _, value = arg.partition("=")
            local.append(f"{flag}={files[flag]}" if flag in HUB_FILE_FLAGS and value else arg)
        env = dict(os.environ, NODE_NAME="check-deploy-node")
        run = subprocess.run([binary, "hub", "--check-config", *local],
                             capture_output=True, text=True, env=env, timeout=60)
    for line in (run.stdout + run.stderr).strip().splitlines():
        print(f"    {where}: {line}")
    if run.returncode != 0:
        problems.append(f"{where}: `edgemesh hub --check-config` exited {run.returncode}")


def check_edgemesh_compat(objects, values, problems):
    by_kind_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for kind, name in [
        ("ServiceAccount", "edgemesh-agent"),
        ("ClusterRole", "edgemesh-agent"),
        ("ClusterRoleBinding", "edgemesh-agent"),
        ("ConfigMap", "edgemesh-agent-cfg"),
        ("Secret", "edgemesh-agent-psk"),
        ("DaemonSet", "edgemesh-agent"),
    ]:
        if (kind, name) not in by_kind_name:
            problems.append(f"EdgeMesh compat: no {kind} {name} (EdgeMesh's chart names it so)")
    ds = by_kind_name.get(("DaemonSet", "edgemesh-agent"))
    if ds:
        want = {"k8s-app": "kubeedge", "kubeedge": "edgemesh-agent"}
        if ds["spec"]["selector"].get("matchLabels") != want:
            problems.append(f"EdgeMesh compat: DaemonSet selector {ds['spec']['selector']} is not {want}")
        if ds["spec"]["template"]["spec"].get("hostNetwork") is not True:
            problems.append("EdgeMesh compat: the agent must use the host's network")
    agent = (values or {}).get("agent", {})
    secret = by_kind_name.get(("Secret", "edgemesh-agent-psk"))
    if secret and agent.get("psk"):
        got = base64.b64decode(secret["data"]["psk"]).decode()
        if got != agent["psk"]:
            problems.append("EdgeMesh compat: the PSK Secret does not hold agent.psk")
    cm = by_kind_name.get(("ConfigMap", "edgemesh-agent-cfg"))
    if cm:
        config = yaml.safe_load(cm["data"][AGENT_KEY]) or {}
        tunnel = (config.get("modules") or {}).get("edgeTunnel") or {}
        want_relays = agent.get("relayNodes") or ((agent.get("modules") or {}).get("edgeTunnel") or {}).get("relayNodes")
        if want_relays and tunnel.get("relayNodes") != want_relays:
            problems.append(f"EdgeMesh compat: relayNodes {tunnel.get('relayNodes')} are not the values' {want_relays}")
        for section in ("kubeAPIConfig", "commonConfig"):
            for key, value in (agent.get(section) or {}).items():
                if (config.get(section) or {}).get(key) != value:
                    problems.append(f"EdgeMesh compat: {section}.{key} from the values is not in the config")


def check_gateway_compat(objects, values, problems):
    by_kind_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    if ("Deployment", "edgemesh-gateway") not in by_kind_name:
        return
    for kind, name in [
        ("ServiceAccount", "edgemesh-gateway"),
        ("ClusterRole", "edgemesh-gateway"),
        ("ClusterRoleBinding", "edgemesh-gateway"),
        ("ConfigMap", "edgemesh-gateway-cfg"),
        ("ConfigMap", "edgemesh-gateway-psk"),
    ]:
        if (kind, name) not in by_kind_name:
            problems.append(f"EdgeMesh compat: no {kind} {name} (EdgeMesh's gateway names it so)")
    deploy = by_kind_name[("Deployment", "edgemesh-gateway")]
    want = {"k8s-app": "kubeedge", "kubeedge": "edgemesh-gateway"}
    if deploy["spec"]["selector"].get("matchLabels") != want:
        problems.append(f"EdgeMesh compat: gateway Deployment selector {deploy['spec']['selector']} is not {want}")
    pod = deploy["spec"]["template"]["spec"]
    if pod.get("hostNetwork") is not True:
        problems.append("EdgeMesh compat: the gateway must use the host's network")
    for c in pod.get("containers", []):
        if (c.get("command") or [None])[0] != "edgemesh-gateway":
            problems.append(f"Deployment edgemesh-gateway: container {c['name']}: command is {c.get('command')}, not edgemesh-gateway")
        if not any(m.get("mountPath") == "/etc/podinfo" for m in c.get("volumeMounts", [])):
            problems.append(f"Deployment edgemesh-gateway: container {c['name']}: the pod's labels are not mounted at /etc/podinfo")
    labels = [v for v in pod.get("volumes", []) if "downwardAPI" in v]
    if not any(i.get("path") == "labels" and i.get("fieldRef", {}).get("fieldPath") == "metadata.labels"
               for v in labels for i in v["downwardAPI"].get("items", [])):
        problems.append("EdgeMesh compat: no Downward API volume with the pod's labels at path labels")
    gateway = (values or {}).get("gateway", {})
    psk = by_kind_name.get(("ConfigMap", "edgemesh-gateway-psk"))
    if psk and gateway.get("psk") and (psk.get("data") or {}).get("psk") != gateway["psk"]:
        problems.append("EdgeMesh compat: the gateway PSK ConfigMap does not hold gateway.psk")
    cm = by_kind_name.get(("ConfigMap", "edgemesh-gateway-cfg"))
    if cm and gateway.get("relayNodes"):
        config = yaml.safe_load(cm["data"][GATEWAY_KEY]) or {}
        tunnel = (config.get("modules") or {}).get("edgeTunnel") or {}
        if tunnel.get("relayNodes") != gateway["relayNodes"]:
            problems.append(f"EdgeMesh compat: gateway relayNodes {tunnel.get('relayNodes')} are not the values'")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edgemesh", required=True, help="the edgemesh binary")
    ap.add_argument("--values", help="the values file the objects were rendered with")
    ap.add_argument("--edgemesh-compat", action="store_true")
    ap.add_argument("--gateway-compat", action="store_true",
                    help="only the gateway's EdgeMesh compatibility (objects without the agent)")
    ap.add_argument("rendered")
    args = ap.parse_args()

    with open(args.rendered) as f:
        objects = [d for d in yaml.safe_load_all(f) if d]
    values = None
    if args.values:
        with open(args.values) as f:
            values = yaml.safe_load(f)

    problems = []
    kinds = {}
    agent_configs = 0
    gateway_configs = 0
    for doc in objects:
        where = f"{doc.get('kind')} {doc.get('metadata', {}).get('namespace', '-')}/{doc.get('metadata', {}).get('name')}"
        kinds[doc.get("kind")] = kinds.get(doc.get("kind"), 0) + 1
        validate_schema(doc, where, problems)
        if doc.get("kind") == "DaemonSet":
            check_hub_flags(args.edgemesh, doc, where, problems)
        if doc.get("kind") == "ConfigMap":
            data = doc.get("data") or {}
            if AGENT_KEY in data:
                agent_configs += 1
                check_role_config(args.edgemesh, "agent", data[AGENT_KEY], where, problems)
            if GATEWAY_KEY in data:
                gateway_configs += 1
                check_role_config(args.edgemesh, "gateway", data[GATEWAY_KEY], where, problems)
            if "cache_agents" in data:
                check_cache_agents(data["cache_agents"], where, problems)
    if args.edgemesh_compat:
        check_edgemesh_compat(objects, values, problems)
    if args.edgemesh_compat or args.gateway_compat:
        check_gateway_compat(objects, values, problems)

    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    versions = " and ".join(schema_versions())
    print(f"  {args.rendered}: {len(objects)} objects ({summary}); schemas {versions}; "
          f"{agent_configs} agent and {gateway_configs} gateway config(s) started through --check-config")
    for p in problems:
        print(f"  FAIL {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
