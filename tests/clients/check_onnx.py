"""The Python clients people use against a running max-mnist serving ONNX models: tritonclient[http]
(KServe v2 with Triton's binary tensors, and JSON) and kserve's InferenceRESTClient (v2), on
`squeezenet1_1` (image_classifier's .mar) and `titanic` (titanic.onnx). The tensors of ONNX
Runtime's reference.json go in unchanged; the probabilities that come back are the softmax of ONNX
Runtime's outputs.

Usage: check_onnx.py http://127.0.0.1:PORT REFERENCE_JSON KITTEN_JPG
Exits non-zero on the first wrong answer. Needs: tritonclient[http], kserve, numpy.
"""

import asyncio
import json
import sys

import numpy as np
import tritonclient.http as triton
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig


def check(condition, what):
    if not condition:
        raise SystemExit(f"check_onnx: FAILED: {what}")
    print(f"check_onnx: ok: {what}")


def reference_batch(model):
    shape = model["input"]["shape"]
    count = int(np.prod(shape))
    values = ((np.arange(count, dtype=np.int64) * 7919) % 255).astype(np.float32) / np.float32(255)
    return values.reshape(shape)


def probabilities_of(model):
    outputs = np.array(model["outputs"], dtype=np.float64)
    if model["output"]["name"] == "probabilities":
        return outputs
    exps = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def tritonclient_v2(url, name, model, kitten):
    client = triton.InferenceServerClient(url=url.removeprefix("http://"))
    check(client.is_model_ready(name), f"tritonclient {name}: model ready")
    metadata = client.get_model_metadata(name)
    check(metadata["inputs"][0]["name"] == model["input"]["name"], f"tritonclient {name}: input named as in the graph")
    batch = reference_batch(model)
    expected = probabilities_of(model)
    for binary in (True, False):
        tensor = triton.InferInput(model["input"]["name"], list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch, binary_data=binary)
        outputs = [triton.InferRequestedOutput("predict", binary_data=binary),
                   triton.InferRequestedOutput("probabilities", binary_data=binary)]
        result = client.infer(name, [tensor], outputs=outputs, request_id=f"{name}-{binary}")
        probabilities = result.as_numpy("probabilities")
        check(probabilities.shape == expected.shape
              and np.abs(probabilities - expected).max() <= 1e-4 * max(np.abs(expected).max(), 1e-30) + 1e-7,
              f"tritonclient {name}: FP32 {list(batch.shape)} gives ONNX Runtime's probabilities (binary={binary})")
        check(np.array_equal(result.as_numpy("predict"), expected.argmax(axis=1)),
              f"tritonclient {name}: ONNX Runtime's classes (binary={binary})")
    if kitten is not None:
        picture = triton.InferInput(model["input"]["name"], [1], "BYTES")
        picture.set_data_from_numpy(np.array([kitten], dtype=np.object_), binary_data=True)
        result = client.infer(name, [picture], outputs=[triton.InferRequestedOutput("probabilities")])
        check(result.as_numpy("probabilities").shape == (1, 1000), f"tritonclient {name}: a JPEG as BYTES")


async def kserve_v2(url, name, model):
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    batch = reference_batch(model)
    tensor = InferInput(name=model["input"]["name"], shape=list(batch.shape), datatype="FP32")
    tensor.set_data_from_numpy(batch, binary_data=False)
    response = await client.infer(url, InferRequest(model_name=name, infer_inputs=[tensor]), model_name=name)
    outputs = {output.name: output for output in response.outputs}
    check(list(outputs["predict"].as_numpy()) == list(probabilities_of(model).argmax(axis=1)),
          f"kserve v2 {name}: ONNX Runtime's classes")
    await client.close()


def main():
    url, reference_path, kitten_path = sys.argv[1:4]
    reference = json.load(open(reference_path))
    kitten = open(kitten_path, "rb").read()
    for name, model, picture in (("squeezenet1_1", reference["models"]["squeezenet1_1"], kitten),
                                 ("titanic", reference["models"]["titanic"], None)):
        tritonclient_v2(url, name, model, picture)
        asyncio.run(kserve_v2(url, name, model))
    print("check_onnx: all passed for squeezenet1_1, titanic")


if __name__ == "__main__":
    main()
