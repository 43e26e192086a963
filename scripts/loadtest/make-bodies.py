"""Writes the request bodies loadtest.sh sends, from samples/: a multipart upload of 7.png, the raw
PNG, and a KServe v1 request of 64 base64 instances (the ten samples in turn)."""

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
    print(f"multipart/form-data; boundary={BOUNDARY}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]))
