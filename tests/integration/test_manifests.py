"""The Kubernetes manifests of docker/ (no cluster here): each parses as
YAML, holds the objects and fields docker/README.md promises, and its
ConfigMap's configuration passes `tlsterm --check` with the paths pointed at
test files. The ticket key rotation of docker/README.md runs as written
against a stand-in kubectl that keeps the Secret in a file, and tlsterm
reads the key file after each step."""

import base64
import os
import re
import subprocess
import sys

import pytest
import yaml

from tlsterm_harness import REPO, run, run_tlsterm, text

DOCKER = REPO / "docker"
EDGE = DOCKER / "kubernetes-edge.yaml"
SIDECAR = DOCKER / "kubernetes.yaml"


def documents(path):
    """documents returns {kind: object} for the manifest at |path|; a kind
    present twice fails the test (these files hold one of each)."""
    objects = {}
    for doc in yaml.safe_load_all(path.read_text()):
        assert doc["kind"] not in objects, f"{path.name}: two {doc['kind']} objects"
        objects[doc["kind"]] = doc
    return objects


def seconds(duration):
    """seconds converts a tlsterm duration of whole seconds ("20s")."""
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"expected a duration in seconds, got {duration!r}"
    return int(match.group(1))


def container(deployment, name):
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                if c["name"] == name)


def volume_of_mount(deployment, mount_path):
    """volume_of_mount returns (the volume, the volumeMount) that
    |mount_path| of the tlsterm container is."""
    pod = deployment["spec"]["template"]["spec"]
    mount = next(m for m in container(deployment, "tlsterm")["volumeMounts"]
                 if m["mountPath"] == mount_path)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return volume, mount


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


# ---- kubernetes-edge.yaml ----------------------------------------------------------


@pytest.fixture(scope="module")
def edge():
    objects = documents(EDGE)
    assert set(objects) == {"ConfigMap", "Deployment", "PersistentVolumeClaim", "Service",
                            "PodDisruptionBudget", "NetworkPolicy"}
    config = yaml.safe_load(objects["ConfigMap"]["data"]["tlsterm.yaml"])
    return objects, config


def test_edge_deployment(edge):
    """Three replicas, one per node, replaced one at a time."""
    objects, _ = edge
    deployment = objects["Deployment"]
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 3
    assert matches(spec["selector"]["matchLabels"], labels)
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    [term] = anti["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert matches(term["labelSelector"]["matchLabels"], labels)
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    security = container(deployment, "tlsterm")["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_edge_service(edge):
    """A LoadBalancer with externalTrafficPolicy Local toward the https
    port; the PROXY v2 alternative is there, in comments only."""
    objects, config = edge
    service = objects["Service"]
    deployment = objects["Deployment"]
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert matches(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    [port] = service["spec"]["ports"]
    assert port["port"] == 443
    named = {p["name"]: p["containerPort"] for p in container(deployment, "tlsterm")["ports"]}
    listen = config["listeners"][0]["listen"]
    assert listen == [f"0.0.0.0:{named[port['targetPort']]}"]
    # The alternative: commented out, so the file as applied takes no header.
    assert "annotations" not in service["metadata"]
    assert "accept_proxy" not in config["listeners"][0]
    raw = EDGE.read_text()
    assert re.search(r"^\s*#\s+service\.beta\.kubernetes\.io/aws-load-balancer-proxy-protocol:",
                     raw, re.M)
    assert re.search(r"^\s*#\s+accept_proxy:", raw, re.M)


def assert_config_directory_mount(objects):
    """tlsterm's configuration is a ConfigMap mounted as a directory (an
    edit reaches the file; a subPath mount never sees one), and the probes
    name the same file as the daemon's -c."""
    deployment = objects["Deployment"]
    tlsterm = container(deployment, "tlsterm")
    args = tlsterm["args"]
    assert args[0] == "-c"
    directory, name = args[1].rsplit("/", 1)
    volume, mount = volume_of_mount(deployment, directory)
    assert volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert name in objects["ConfigMap"]["data"]
    assert "subPath" not in mount and mount["readOnly"] is True
    for probe in ("readinessProbe", "livenessProbe"):
        command = tlsterm[probe]["exec"]["command"]
        assert command[:2] == ["tlsterm", "healthcheck"]
        assert command[command.index("-c") + 1] == args[1]
    for c in deployment["spec"]["template"]["spec"]["containers"]:
        for m in c.get("volumeMounts", []):
            assert "subPath" not in m, m


def test_edge_secrets_and_shared_files(edge):
    """The certificate and the ticket key file come from Secrets, mounted
    without subPath where the configuration looks for them; the report dir
    is a shared volume."""
    objects, config = edge
    deployment = objects["Deployment"]
    assert config["reload_on_change"] is True
    assert_config_directory_mount(objects)
    cert = config["listeners"][0]["tls"]["certificates"][0]
    key_file = config["session_tickets"]["key_file"]
    for path, secret, item in ((cert["cert"], "tlsterm-edge-tls", "tls.crt"),
                               (cert["key"], "tlsterm-edge-tls", "tls.key"),
                               (key_file, "tlsterm-ticket-keys", "ticket.keys")):
        directory, name = path.rsplit("/", 1)
        volume, mount = volume_of_mount(deployment, directory)
        assert name == item
        assert volume["secret"]["secretName"] == secret
        assert volume["secret"]["defaultMode"] == 0o440
        assert "subPath" not in mount and mount["readOnly"] is True
    volume, mount = volume_of_mount(deployment, config["report"]["dir"])
    claim = objects["PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert mount.get("readOnly") is not True
    assert deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001


def test_edge_stop_sequence(edge):
    """The grace period covers the preStop sleep and drain_timeout; the
    probes are exec healthchecks (readiness fails while draining)."""
    objects, config = edge
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    tlsterm = container(objects["Deployment"], "tlsterm")
    command = tlsterm["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    sleep_s = int(command[1])
    drain_s = seconds(config["drain_timeout"])
    delay_s = seconds(config.get("drain_delay", "0s"))
    # An AWS NLB's check (10 s, 2 failures) with a margin: the load balancer
    # stops sending to the node before SIGTERM closes the listener.
    assert sleep_s >= 10 * 2 + 10
    margin_s = 10
    assert pod["terminationGracePeriodSeconds"] >= sleep_s + delay_s + drain_s + margin_s
    # The formula, in the manifest and in docker/README.md.
    formulas = (r"preStop >= (LB )?health-check interval x unhealthy threshold \+ margin",
                r"terminationGracePeriodSeconds >= preStop \+ drain_delay \+ drain_timeout"
                r" \+ margin")
    readme = (DOCKER / "README.md").read_text()
    start = readme.index("## Kubernetes edge")
    section = readme[start:readme.find("\n## ", start + 1)]
    for formula in formulas:
        assert re.search(formula, EDGE.read_text()), formula
        assert re.search(formula, section), formula
    config_file = tlsterm["args"][1]
    assert tlsterm["readinessProbe"]["exec"]["command"] == [
        "tlsterm", "healthcheck", "-c", config_file, "--ready"]
    assert tlsterm["livenessProbe"]["exec"]["command"] == ["tlsterm", "healthcheck", "-c", config_file]
    budget = objects["PodDisruptionBudget"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert matches(budget["spec"]["selector"]["matchLabels"],
                   objects["Deployment"]["spec"]["template"]["metadata"]["labels"])


def test_edge_metrics(edge):
    """Prometheus annotations name the admin endpoint's port on the pod IP,
    and the NetworkPolicy lets only the monitoring namespace reach it."""
    objects, config = edge
    template = objects["Deployment"]["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    admin_port = int(config["admin"]["listen"].rsplit(":", 1)[1])
    assert config["admin"] == {"listen": f"${{POD_IP}}:{admin_port}", "allow_public": True}
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(admin_port),
                           "prometheus.io/path": "/metrics"}
    tlsterm = container(objects["Deployment"], "tlsterm")
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in tlsterm["env"]
    assert admin_port in [p["containerPort"] for p in tlsterm["ports"]]
    policy = objects["NetworkPolicy"]["spec"]
    assert matches(policy["podSelector"]["matchLabels"], template["metadata"]["labels"])
    assert policy["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule.get("from") for rule in policy["ingress"]}
    assert rules == {8443: None, admin_port: [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]}


def pointed_at(config_text, replacements):
    for old, new in replacements.items():
        assert old in config_text, old
        config_text = config_text.replace(old, str(new))
    return config_text


def check(tmp_path, config_text, env=None):
    path = tmp_path / "tlsterm.yaml"
    path.write_text(config_text)
    if env is None:
        return run_tlsterm("--check", "-c", path)
    from tlsterm_harness import TLSTERM_BIN, sanitizer_env
    return run([TLSTERM_BIN, "--check", "-c", path], env={**sanitizer_env(), **env})


def write_key_file(path, num_keys):
    path.write_text("".join(base64.b64encode(os.urandom(80)).decode() + "\n"
                            for _ in range(num_keys)))
    path.chmod(0o440)


def test_edge_config_checks(edge, certs, tmp_path):
    """The ConfigMap's configuration passes --check, POD_IP expanded, with
    the Secrets' and the volume's paths pointed at test files."""
    objects, _ = edge
    certs_dir = tmp_path / "certs"
    certs_dir.mkdir()
    (certs_dir / "tls.crt").write_bytes(certs.ecdsa_cert.read_bytes())
    (certs_dir / "tls.key").write_bytes(certs.ecdsa_key.read_bytes())
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    write_key_file(tickets / "ticket.keys", 1)
    reports = tmp_path / "reports"
    reports.mkdir()
    config_text = pointed_at(objects["ConfigMap"]["data"]["tlsterm.yaml"], {
        "/etc/tlsterm/certs": certs_dir, "/etc/tlsterm/tickets": tickets,
        "/var/lib/tlsterm/reports": reports,
        # "app" resolves only in the cluster.
        '"app:8080"': '"127.0.0.1:8080"'})
    result = check(tmp_path, config_text, env={"POD_IP": "127.0.0.1"})
    out = text(result)
    assert result.returncode == 0, out
    assert "session tickets: 1 key from the key file, the first encrypts" in out
    # Without POD_IP the address is missing: the probes and the daemon need it.
    result = check(tmp_path, config_text, env={})
    assert result.returncode != 0 and "POD_IP" in text(result)


# ---- kubernetes.yaml (the sidecar) --------------------------------------------------


def test_sidecar_manifest(certs, tmp_path):
    """The sidecar's manifest: ConfigMap, Deployment, Service; the grace
    period is above drain_timeout; the configuration passes --check."""
    objects = documents(SIDECAR)
    assert set(objects) == {"ConfigMap", "Deployment", "Service"}
    config_text = objects["ConfigMap"]["data"]["tlsterm.yaml"]
    config = yaml.safe_load(config_text)
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > seconds(config["drain_timeout"])
    tlsterm = container(objects["Deployment"], "tlsterm")
    assert tlsterm["readinessProbe"]["exec"]["command"][-1] == "--ready"
    assert_config_directory_mount(objects)
    certs_dir = tmp_path / "certs"
    certs_dir.mkdir()
    (certs_dir / "tls.crt").write_bytes(certs.ecdsa_cert.read_bytes())
    (certs_dir / "tls.key").write_bytes(certs.ecdsa_key.read_bytes())
    result = check(tmp_path, pointed_at(config_text, {"/etc/tlsterm/certs": certs_dir}))
    assert result.returncode == 0, text(result)


# ---- the ticket key rotation of docker/README.md -------------------------------------

# A stand-in for the kubectl commands the rotation uses, keeping each Secret
# as a JSON file of base64 data in $KUBE_STORE. It refuses anything else, so
# a changed step that needs another command fails here.
FAKE_KUBECTL = r'''
import base64, json, os, sys
store = os.environ["KUBE_STORE"]
args = sys.argv[1:]

def load():
    with open(store) as f:
        return json.load(f)

def save(secrets):
    with open(store, "w") as f:
        json.dump(secrets, f)

def from_files(argv):
    data = {}
    for a in argv:
        if a.startswith("--from-file="):
            spec = a[len("--from-file="):]
            key, _, path = spec.rpartition("=") if "=" in spec else (os.path.basename(spec), "", spec)
            with open(path, "rb") as f:
                data[key] = base64.b64encode(f.read()).decode()
    return data

if args[:2] == ["get", "secret"] and args[3:5] == ["-o", "jsonpath={.data.ticket\\.keys}"] and len(args) == 5:
    sys.stdout.write(load()[args[2]]["ticket.keys"])
elif args[:3] == ["create", "secret", "generic"]:
    name, rest = args[3], args[4:]
    data = from_files(rest)
    if rest[1:] == ["--dry-run=client", "-o", "yaml"]:
        print(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}))
    elif len(rest) == 1:
        secrets = load() if os.path.exists(store) else {}
        assert name not in secrets, "already exists"
        secrets[name] = data
        save(secrets)
    else:
        sys.exit("fake kubectl: unexpected " + " ".join(args))
elif args == ["apply", "-f", "-"]:
    obj = json.loads(sys.stdin.read())   # YAML's JSON subset
    secrets = load()
    secrets[obj["metadata"]["name"]] = obj["data"]
    save(secrets)
else:
    sys.exit("fake kubectl: unexpected " + " ".join(args))
'''


def readme_section(title):
    readme = (DOCKER / "README.md").read_text()
    start = readme.index(title)
    return readme[start:readme.index("\n**", start + len(title))]


def test_ticket_key_rotation_steps(tmp_path, certs):
    """The creation command of the manifest's header and the three steps of
    docker/README.md, run as written: the Secret's key file holds the key,
    then the old and a new one, then the new first, then the new alone;
    tlsterm --check reads each."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
    kubectl.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "KUBE_STORE": str(tmp_path / "secrets.json")}

    def sh(script):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env,
                                capture_output=True, timeout=30)
        assert result.returncode == 0, text(result) + "\n--- script\n" + script

    def keys():
        stored = (tmp_path / "secrets.json").read_text()
        import json
        data = base64.b64decode(json.loads(stored)["tlsterm-ticket-keys"]["ticket.keys"])
        lines = data.decode().splitlines()
        assert data.endswith(b"\n") and all(len(base64.b64decode(k)) == 80 for k in lines)
        # tlsterm reads the file as the Secret volume would hold it.
        key_file = tmp_path / "ticket.keys"
        key_file.write_bytes(data)
        key_file.chmod(0o440)
        result = check(tmp_path, (
            "session_tickets: {key_file: " + str(key_file) + "}\n"
            "listeners:\n  - name: edge\n    listen: 127.0.0.1:0\n"
            "    tls: {certificates: [{cert: " + str(certs.ecdsa_cert) + ", key: "
            + str(certs.ecdsa_key) + "}]}\n"
            "    backend: {servers: [\"127.0.0.1:8080\"]}\n"))
        assert result.returncode == 0, text(result)
        assert f"session tickets: {len(lines)} key" in text(result)
        return lines

    header = [l[1:].strip() for l in EDGE.read_text().splitlines()
              if l.startswith("#   ") and ("ticket.keys" in l)]
    assert len(header) == 3, header     # make the key, create the Secret, rm
    sh("\n".join(header))
    assert not (work / "ticket.keys").exists()
    [first] = keys()

    section = readme_section("**Rotating the session ticket keys**")
    steps = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(steps) == 3
    steps = ["\n".join(line.strip() for line in step.splitlines()) for step in steps]
    def step(n):
        sh("umask 077\n" + steps[n])
        # Each step removes the copy it wrote.
        assert not (work / "ticket.keys").exists()
        return keys()

    old, new = step(0)
    assert old == first and new != first
    assert step(1) == [new, old]
    assert step(2) == [new]
