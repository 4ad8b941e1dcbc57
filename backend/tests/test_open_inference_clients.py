"""The Open Inference Protocol through its own clients, ``tritonclient`` (JSON and binary
tensors) and KServe's REST client, against a real server process: health, metadata, infer,
and the protocol's error for each wrong request. Answers equal ``/api/v1/predict``'s."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from kserve import InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferInput, InferRequest
from tritonclient.utils import InferenceServerException

from tests.conftest import ADMIN_KEY
from tests.server_process import ServerProcess, server_starter

MODEL = "mnist-cnn"
CLIENT_KEY = "oip-client-key-long-enough"  # pragma: allowlist secret


@pytest.fixture(scope="module")
def servers(tmp_path_factory, model_dir) -> Iterator[dict[str, ServerProcess]]:
    """One server without keys (dev) and one with keys, as staging and production run."""
    start, started = server_starter(tmp_path_factory.mktemp("oip"))
    yield {
        "open": start(MODEL_DIR=str(model_dir)),
        "keyed": start(MODEL_DIR=str(model_dir), API_KEYS=CLIENT_KEY, ADMIN_API_KEYS=ADMIN_KEY, ENVIRONMENT="staging"),
    }
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def digits(mnist_digits) -> tuple[np.ndarray, np.ndarray]:
    """All ten held-out digits as FP32 [10, 1, 28, 28] (0..1) and their labels."""
    labels = np.arange(10)
    images = np.stack([mnist_digits[d] for d in labels]).astype(np.float32) / 255
    return images.reshape(10, 1, 28, 28), labels


def v1_probabilities(server: ServerProcess, images: np.ndarray, headers: dict | None = None) -> np.ndarray:
    replies = [
        httpx.post(f"{server.url}/api/v1/predict", json={"image": image.reshape(-1).tolist()}, headers=headers)
        for image in images
    ]
    assert all(reply.status_code == 200 for reply in replies)
    return np.array([reply.json()["probabilities"] for reply in replies])


def triton_client(server: ServerProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.url.removeprefix("http://"))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_reads_the_digits_and_the_answers_equal_api_v1(servers, digits, binary, model_version):
    server, (images, labels) = servers["open"], digits
    client = triton_client(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, model_version)
    metadata = client.get_model_metadata(MODEL)
    assert metadata["versions"] == [model_version]
    assert [t["name"] for t in metadata["inputs"]] == ["image"]
    assert {t["name"]: t["datatype"] for t in metadata["outputs"]} == {"probabilities": "FP32", "digit": "INT64"}
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=binary)
    outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "digit")]
    result = client.infer(MODEL, [tensor], outputs=outputs, request_id="batch-of-ten", model_version=model_version)
    assert result.get_response()["id"] == "batch-of-ten"
    assert result.get_response()["model_version"] == model_version
    np.testing.assert_array_equal(result.as_numpy("digit"), labels)
    np.testing.assert_allclose(result.as_numpy("probabilities"), v1_probabilities(server, images), atol=1e-6)


def test_uint8_and_flat_shapes_read_like_fp32(servers, digits):
    images, labels = digits
    client = triton_client(servers["open"])
    as_bytes = np.round(images * 255).astype(np.uint8).reshape(10, 784)
    tensor = triton.InferInput("image", [10, 784], "UINT8")
    tensor.set_data_from_numpy(as_bytes, binary_data=True)
    result = client.infer(MODEL, [tensor])
    np.testing.assert_array_equal(result.as_numpy("digit"), labels)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"shape": [1, 3, 28, 28]}, 400, "has shape [1, 3, 28, 28]; this model takes [N, 1, 28, 28]"),
        ({"datatype": "FP64"}, 400, "datatype 'FP64'; this model takes FP32 (0..1) or UINT8"),
        ({"name": "pixels"}, 400, "unknown input 'pixels': this model takes one input, 'image'"),
        ({"shape": [300, 784]}, 413, "holds 300 images; 1 to 256 (MAX_BATCH)"),
        ({"data": [2.0] * 784, "shape": [1, 784]}, 400, "FP32 values must be between 0 and 1"),
        ({"data": [1.0000000000000002] * 784}, 400, "value 0 is 1.0000000000000002"),
        ({"data": [0.0] * 783}, 400, "'data' holds 783 values; shape [1, 784] needs 784"),
        ({"data": ["0.5"] * 784}, 400, "'data' must hold numbers only"),
    ],
)
def test_wrong_requests_get_the_protocols_error(servers, change, status, message):
    request = {"name": "image", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784, **change}
    reply = httpx.post(f"{servers['open'].url}/v2/models/{MODEL}/infer", json={"inputs": [request]})
    assert reply.status_code == status
    assert message in reply.json()["error"], reply.json()


def test_tritonclient_hears_a_wrong_model_version_or_datatype(servers, digits, model_version):
    client, (images, _) = triton_client(servers["open"]), digits
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    with pytest.raises(InferenceServerException, match="unknown model 'lenet'"):
        client.infer("lenet", [tensor])
    with pytest.raises(InferenceServerException, match=f"version '1' is not served here \\(serving {model_version}\\)"):
        client.infer(MODEL, [tensor], model_version="1")
    assert not client.is_model_ready(MODEL, "1")
    half = triton.InferInput("image", list(images.shape), "FP16")
    half.set_data_from_numpy(images.astype(np.float16))
    with pytest.raises(InferenceServerException, match="datatype 'FP16'"):
        client.infer(MODEL, [half])


def test_binary_tensors_that_do_not_match_their_header_are_refused(servers, digits):
    """What the clients never send, a proxy or a hand-written client may: each gets a 400 naming it."""
    images, _ = digits
    url = f"{servers['open'].url}/v2/models/{MODEL}/infer"
    for declared, sent, length, message in [
        (images.nbytes, images[:5].tobytes(), None, "carries 15680 bytes of binary tensor data, not the 31360"),
        (100, images.tobytes(), None, "binary_data_size 100 is not 7840 FP32 values"),
        (images.nbytes, images.tobytes(), "999999999", "must be a byte count within the body"),
    ]:
        header = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "image",
                        "shape": [10, 1, 28, 28],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": declared},
                    }
                ]
            }
        )
        reply = httpx.post(
            url, content=header + sent, headers={"Inference-Header-Content-Length": length or str(len(header))}
        )
        assert reply.status_code == 400 and message in reply.json()["error"], reply.text


def test_keys_apply_to_the_protocol_as_to_api_v1_and_probes_stay_open(servers, digits):
    server, (images, labels) = servers["keyed"], digits
    client = triton_client(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL)  # no key
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    with pytest.raises(InferenceServerException, match="API key"):
        client.infer(MODEL, [tensor])
    with pytest.raises(InferenceServerException, match="API key"):
        client.get_model_metadata(MODEL)
    result = client.infer(MODEL, [tensor], headers={"X-API-Key": CLIENT_KEY})
    np.testing.assert_array_equal(result.as_numpy("digit"), labels)


def test_kserves_rest_client_reads_the_digits(servers, digits):
    server, (images, labels) = servers["open"], digits

    async def session() -> tuple[bool, bool, bool, np.ndarray]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        try:
            live = await client.is_server_live(server.url)
            ready = await client.is_server_ready(server.url)
            model_ready = await client.is_model_ready(server.url, MODEL)
            request = InferRequest(MODEL, [InferInput("image", list(images.shape), "FP32", images)], request_id="k")
            reply = await client.infer(server.url, request, model_name=MODEL)
            return live, ready, model_ready, reply.outputs[1].as_numpy()
        finally:
            await client.close()

    live, ready, model_ready, predicted = asyncio.run(session())
    assert live and ready and model_ready
    np.testing.assert_array_equal(predicted, labels)


def test_the_protocols_requests_are_counted_by_route_and_feed_the_drift_statistics(servers, digits):
    server, (images, _) = servers["open"], digits
    client = triton_client(server)
    tensor = triton.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    before = httpx.get(f"{server.url}/metrics").text
    client.infer(MODEL, [tensor])
    after = httpx.get(f"{server.url}/metrics").text
    route = 'route="/v2/models/{model_name}/infer"'
    assert any(
        route in line and 'status="200"' in line
        for line in after.splitlines()
        if line.startswith("mnist_http_requests_total")
    )

    def count(text: str) -> float:
        lines = [
            line for line in text.splitlines() if line.startswith('mnist_input_statistic_count{statistic="ink_share"}')
        ]
        return float(lines[0].split()[-1]) if lines else 0.0

    assert count(after) - count(before) == 10


def test_the_schema_documents_every_operation_of_the_protocols_rest_api(client):
    """The protocol's REST table (server live/ready/metadata; model ready/metadata/infer, each
    with and without a version), as this service's OpenAPI documents it: the paths the fuzzer
    exercises are the protocol's, no more, no fewer."""
    model, version = "/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"
    protocol = {
        ("get", "/v2"),
        ("get", "/v2/health/live"),
        ("get", "/v2/health/ready"),
        *(("get", base) for base in (model, version)),
        *(("get", f"{base}/ready") for base in (model, version)),
        *(("post", f"{base}/infer") for base in (model, version)),
    }
    paths = client.get("/openapi.json").json()["paths"]
    documented = {
        (method, path) for path, operations in paths.items() if path.startswith("/v2") for method in operations
    }
    assert documented == protocol
    infer = paths[f"{model}/infer"]["post"]
    assert set(infer["responses"]) == {"200", "400", "401", "404", "413", "429", "503"}
    assert infer["parameters"][0]["schema"]["enum"] == [MODEL]
