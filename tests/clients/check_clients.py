"""The Python clients people use against a running max-mnist: tritonclient[http] (KServe v2 with
Triton's binary tensors, and JSON), and kserve's InferenceRESTClient (v1 and v2, and v1's explain),
on each model.

Usage: check_clients.py http://127.0.0.1:PORT SAMPLES_DIR [model ...] [--repository MANAGEMENT_URL STORED_MODEL]
(default model: mnist). With --repository, tritonclient's model repository calls load and unload
STORED_MODEL (a file of the model store, not served) through the management API.
Exits non-zero on the first wrong answer. Needs: tritonclient[http], kserve, numpy, Pillow.
"""

import asyncio
import base64
import sys
from pathlib import Path

import numpy as np
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from PIL import Image


def check(condition, what):
    if not condition:
        raise SystemExit(f"check_clients: FAILED: {what}")
    print(f"check_clients: ok: {what}")


def load_samples(folder):
    files = [folder / f"{digit}.png" for digit in range(10)]
    png = [path.read_bytes() for path in files]
    pixels = [np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0 for path in files]
    return png, np.stack(pixels)


def tritonclient_v2(url, png, pixels, model):
    host = url.removeprefix("http://")
    client = triton.InferenceServerClient(url=host)
    check(client.is_server_live() and client.is_server_ready(), f"tritonclient {model}: server live and ready")
    check(client.is_model_ready(model), f"tritonclient {model}: model ready")
    check(client.get_server_metadata()["name"] == "max-mnist", f"tritonclient {model}: server metadata")
    metadata = client.get_model_metadata(model)
    check([o["name"] for o in metadata["outputs"]] == ["predict", "probabilities"], f"tritonclient {model}: model metadata")

    digits = np.arange(64) % 10
    for binary in (True, False):
        # Binary BYTES carry the PNG files; JSON BYTES must be text, so base64 of them.
        images = np.array([png[d] if binary else base64.b64encode(png[d]) for d in digits], dtype=np.object_)
        bytes_input = triton.InferInput("input-0", [64], "BYTES")
        bytes_input.set_data_from_numpy(images, binary_data=binary)
        outputs = [triton.InferRequestedOutput("predict", binary_data=binary),
                   triton.InferRequestedOutput("probabilities", binary_data=not binary)]
        result = client.infer(model, [bytes_input], outputs=outputs, request_id="batch-64")
        answer = result.get_response()
        check(answer["id"] == "batch-64" and answer["model_name"] == model,
              f"tritonclient {model}: id and model echoed (binary={binary})")
        check(np.array_equal(result.as_numpy("predict"), digits), f"tritonclient {model}: BYTES batch of 64 (binary={binary})")
        probabilities = result.as_numpy("probabilities")
        check(probabilities.shape == (64, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5),
              f"tritonclient {model}: probabilities [64,10] (binary={not binary})")

        tensor = triton.InferInput("input-0", [64, 28, 28], "FP32")
        tensor.set_data_from_numpy(pixels[digits], binary_data=binary)
        result = client.infer(model, [tensor], outputs=[triton.InferRequestedOutput("predict", binary_data=binary)])
        check(np.array_equal(result.as_numpy("predict"), digits), f"tritonclient {model}: FP32 [64,28,28] (binary={binary})")


def tritonclient_repository(url, management, model):
    manager = triton.InferenceServerClient(url=management.removeprefix("http://"))
    client = triton.InferenceServerClient(url=url.removeprefix("http://"))
    index = manager.get_model_repository_index()
    check(any(m["name"] == model and m["state"] == "UNAVAILABLE" for m in index),
          f"tritonclient repository: {model} in the index, not loaded")
    check(not client.is_model_ready(model), f"tritonclient repository: {model} not ready before loading")
    manager.load_model(model)
    check(client.is_model_ready(model), f"tritonclient repository: {model} loaded and ready")
    manager.unload_model(model)
    check(not client.is_model_ready(model), f"tritonclient repository: {model} unloaded")


async def kserve_clients(url, png, pixels, model):
    v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
    check(await v2.is_server_live(url) and await v2.is_server_ready(url), f"kserve v2 {model}: server live and ready")
    check(await v2.is_model_ready(url, model), f"kserve v2 {model}: model ready")
    digits = [d % 10 for d in range(64)]
    encoded = [base64.b64encode(png[d]).decode() for d in digits]
    request = InferRequest(model_name=model, infer_inputs=[
        InferInput(name="input-0", shape=[64], datatype="BYTES", data=encoded)])
    response = await v2.infer(url, request, model_name=model)
    predict = next(o for o in response.outputs if o.name == "predict")
    check(list(predict.data) == digits, f"kserve v2 {model}: BYTES batch of 64")
    request = InferRequest(model_name=model, infer_inputs=[
        InferInput(name="input-0", shape=[64, 784], datatype="FP32",
                   data=pixels[digits].reshape(64, 784).flatten().tolist())])
    response = await v2.infer(url, request, model_name=model)
    predict = next(o for o in response.outputs if o.name == "predict")
    check(list(predict.data) == digits, f"kserve v2 {model}: FP32 [64,784]")
    await v2.close()

    v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
    check(await v1.is_server_live(url), f"kserve v1 {model}: server live")
    check(await v1.is_model_ready(url, model), f"kserve v1 {model}: model ready")
    response = await v1.infer(url, {"instances": [{"data": e} for e in encoded]}, model_name=model)
    check(response["predictions"] == digits, f"kserve v1 {model}: base64 batch of 64")
    response = await v1.infer(url, {"instances": pixels[digits].tolist()}, model_name=model)
    check(response["predictions"] == digits, f"kserve v1 {model}: tensor batch of 64")
    # kserve's client explains over v1 only (its v2 `explain` raises UnsupportedProtocol).
    response = await v1.explain(url, model, {"instances": [{"data": e} for e in encoded[:2]]})
    shape = np.asarray(response["explanations"], dtype=np.float64).shape
    check(shape == (2, 1, 28, 28), f"kserve v1 {model}: explain answers [2][1][28][28], got {shape}")
    await v1.close()


def main():
    url, samples = sys.argv[1], Path(sys.argv[2])
    models, repository = sys.argv[3:], None
    if "--repository" in models:
        at = models.index("--repository")
        models, repository = models[:at], models[at + 1:at + 3]
    models = models or ["mnist"]
    png, pixels = load_samples(samples)
    for model in models:
        tritonclient_v2(url, png, pixels, model)
        asyncio.run(kserve_clients(url, png, pixels, model))
    if repository:
        tritonclient_repository(url, *repository)
    print(f"check_clients: all passed for {', '.join(models)}")


if __name__ == "__main__":
    main()
