"""Writes the request bodies loadtest.sh sends, from samples/: a multipart upload of 7.png, the raw
PNG, a KServe v1 request of 64 base64 instances (the ten samples in turn), and a KServe v2 request
of one FP32 [1,3,224,224] tensor in Triton's binary extension (v2-224.bin, the length of its JSON
part in v2-224.length), asking for the class only."""

import array
import base64
import json
import pathlib
import sys

BOUNDARY = "max-mnist-loadtest-boundary"


def main(samples: pathlib.Path, out: pathlib.Path) -> None:
    seven = (samples / "7.png").read_bytes()
    (out / "7.png").write_bytes(seven)
    multipart = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="7.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + seven + f"\r\n--{BOUNDARY}--\r\n".encode()
    (out / "predict.multipart").write_bytes(multipart)
    digits = [base64.b64encode((samples / f"{d}.png").read_bytes()).decode() for d in range(10)]
    instances = [{"data": digits[i % 10]} for i in range(64)]
    (out / "v1-64.json").write_text(json.dumps({"instances": instances}))
    pixels = array.array("f", (((i * 7919) % 255) / 255 for i in range(3 * 224 * 224)))
    if sys.byteorder != "little":
        pixels.byteswap()
    tensor = pixels.tobytes()
    header = json.dumps({
        "inputs": [{"name": "input", "shape": [1, 3, 224, 224], "datatype": "FP32",
                    "parameters": {"binary_data_size": len(tensor)}}],
        "outputs": [{"name": "predict"}],
    }).encode()
    (out / "v2-224.bin").write_bytes(header + tensor)
    (out / "v2-224.length").write_text(str(len(header)))
    print(f"multipart/form-data; boundary={BOUNDARY}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
