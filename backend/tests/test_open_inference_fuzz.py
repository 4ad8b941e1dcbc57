"""The server against the protocol's REST API as written independently of its own schema
(``tests/contracts/open_inference_rest.yaml``, adapted to this model): schemathesis generates
requests from that file and runs all its checks on a real server's replies.

"Schema-valid must be accepted" is skipped for infer only: the protocol's request schema allows
any tensor, and this model takes one input of its own shape and datatype (the 400 says which).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from tests.server_process import ServerProcess, server_starter

PROTOCOL = Path(__file__).parent / "contracts" / "open_inference_rest.yaml"
# Fewer than the server's own schema gets (500): nine operations, the same code behind them.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
protocol = schemathesis.openapi.from_path(PROTOCOL)
protocol.config.checks.negative_data_rejection.expected_statuses.append("413")


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir) -> ServerProcess:
    start, started = server_starter(tmp_path_factory.mktemp("protocol-fuzz"))
    running = start(MODEL_DIR=str(model_dir), ACCESS_LOG="false")
    yield running
    for each in started:
        each.stop()


@protocol.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_reply_keeps_the_protocols_contract(case, server):
    excluded = [positive_data_acceptance] if case.path.endswith("/infer") else []
    case.call_and_validate(base_url=server.url, excluded_checks=excluded)
