"""Validates the manifests in deploy/ (run by .ci/run with the venv of scripts/requirements.txt):

- kubernetes.yaml: every resource against the Kubernetes OpenAPI schemas, strictly (unknown fields
  refused), with the `kubernetes-validate` package.
- kserve.yaml: the InferenceService walked field by field against the KServe Python SDK's models
  (`kserve.models`, generated from KServe's OpenAPI spec), unknown fields refused; its predictor's
  containers and security context also validated strictly as a Kubernetes Pod.
"""

import pathlib
import sys

import kserve.models
import kubernetes.client.models
import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"
DEPLOY = pathlib.Path(__file__).resolve().parent
SCALARS = {
    "str": str,
    "bool": bool,
    "int": int,
    "float": (int, float),
    "object": object,
    "ResourceQuantity": (str, int, float),
}


def model_class(type_name):
    for module in (kserve.models, kubernetes.client.models):
        if hasattr(module, type_name):
            return getattr(module, type_name)
    raise SystemExit(f"no SDK model named {type_name}")


def check(value, type_name, where):
    """Checks `value` against an SDK type name: `V1beta1PredictorSpec`, `list[V1Container]` or
    `List[V1EnvVar]`, `dict(str, str)` or `Dict[str, str]` (the two generators' spellings)."""
    if type_name.lower().startswith("list["):
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list")
        for index, item in enumerate(value):
            check(item, type_name[5:-1], f"{where}[{index}]")
    elif type_name.lower().startswith(("dict(", "dict[")):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping")
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check(item, inner, f"{where}.{key}")
    elif type_name in SCALARS:
        expected = SCALARS[type_name]
        if isinstance(value, bool) and type_name == "int" or not isinstance(value, expected):
            raise ValueError(f"{where}: expected {type_name}, got {value!r}")
    else:
        cls = model_class(type_name)
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a {type_name} mapping")
        fields = {json_name: cls.openapi_types[attr] for attr, json_name in cls.attribute_map.items()}
        for key, item in value.items():
            if key not in fields:
                raise ValueError(f"{where}: unknown field {key!r} for {type_name}")
            check(item, fields[key], f"{where}.{key}")


def validate_kubernetes(path):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        print(f"{path.name}: {document['kind']}/{document['metadata']['name']} valid (Kubernetes {K8S_VERSION}, strict)")


def validate_inference_service(path):
    (service,) = yaml.safe_load_all(path.read_text())
    if service.get("apiVersion") != "serving.kserve.io/v1beta1" or service.get("kind") != "InferenceService":
        raise ValueError(f"{path.name}: expected a serving.kserve.io/v1beta1 InferenceService")
    check(service, "V1beta1InferenceService", "InferenceService")
    predictor = service["spec"]["predictor"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": service["metadata"]["name"]},
        "spec": {"containers": predictor["containers"], "securityContext": predictor.get("securityContext", {})},
    }
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    name = service["metadata"]["name"]
    print(f"{path.name}: InferenceService/{name} valid (KServe SDK models; containers as a Pod, strict)")


def main():
    try:
        validate_kubernetes(DEPLOY / "kubernetes.yaml")
        validate_inference_service(DEPLOY / "kserve.yaml")
    except (ValueError, kubernetes_validate.ValidationError) as error:
        print(f"invalid manifest: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
