"""Validates the manifests in deploy/ (run by .ci/run with the venv of scripts/requirements.txt):

- kubernetes.yaml: every resource against the Kubernetes OpenAPI schemas, strictly (unknown fields
  refused), with the `kubernetes-validate` package.
- kserve.yaml: the InferenceService walked field by field against the KServe Python SDK's models
  (`kserve.models`, generated from KServe's OpenAPI spec), unknown fields refused; its predictor's
  containers and security context also validated strictly as a Kubernetes Pod.
- kserve-torchserve.yaml: the ServingRuntime and the InferenceService that names it, walked the same
  way (the runtime's containers and volumes also strictly as a Pod); then what KServe's TorchServe
  layout needs: the container runs `torchserve --start` on the files the storage initializer puts
  under /mnt/models, listens where KServe sends requests (8080) and is probed there, the model
  format and protocol the InferenceService asks for are the runtime's, and the runtime it names
  exists.
"""

import pathlib
import sys
import urllib.parse

import kserve.models
import kubernetes.client.models
import kubernetes_validate
import yaml

K8S_VERSION = "1.33.0"
# Where KServe's storage initializer puts the storageUri's contents, and what KServe's TorchServe
# runtime reads there (config/runtimes/kserve-torchserve.yaml in kserve/kserve).
MODEL_DIR = "/mnt/models"
TORCHSERVE_FLAGS = {
    "--model-store": f"{MODEL_DIR}/model-store",
    "--ts-config": f"{MODEL_DIR}/config/config.properties",
}
# The port KServe routes HTTP requests to, and the container it routes them to.
KSERVE_PORT = 8080
KSERVE_CONTAINER = "kserve-container"
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


def validate_as_pod(name, pod_spec):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": pod_spec}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def validate_inference_service(path):
    (service,) = yaml.safe_load_all(path.read_text())
    if service.get("apiVersion") != "serving.kserve.io/v1beta1" or service.get("kind") != "InferenceService":
        raise ValueError(f"{path.name}: expected a serving.kserve.io/v1beta1 InferenceService")
    check(service, "V1beta1InferenceService", "InferenceService")
    predictor = service["spec"]["predictor"]
    name = service["metadata"]["name"]
    validate_as_pod(name, {"containers": predictor["containers"], "securityContext": predictor.get("securityContext", {})})
    print(f"{path.name}: InferenceService/{name} valid (KServe SDK models; containers as a Pod, strict)")


def flag_values(words):
    """The values of `--flag=value` and `--flag value` on a command line, by flag."""
    values = {}
    index = 0
    while index < len(words):
        flag, has_value, value = words[index].partition("=")
        if flag.startswith("--"):
            if not has_value and index + 1 < len(words) and not words[index + 1].startswith("--"):
                value = words[index + 1]
                index += 1
            values[flag] = value
        index += 1
    return values


def port_of(address, where):
    """The port of a TorchServe address (`http://host:port`)."""
    parts = urllib.parse.urlsplit(address or "")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("http", "https") or port is None:
        raise ValueError(f"{where}: {address!r} is not an http://host:port address")
    return port


def validate_serving_runtime(runtime, where):
    check(runtime, "V1alpha1ServingRuntime", where)
    spec = runtime["spec"]
    validate_as_pod(runtime["metadata"]["name"], {"containers": spec["containers"], "volumes": spec.get("volumes", [])})
    if "pytorch" not in {form["name"] for form in spec.get("supportedModelFormats", [])}:
        raise ValueError(f"{where}: supportedModelFormats must name pytorch, as KServe's TorchServe runtime does")
    if sorted(spec.get("protocolVersions", [])) != ["v1", "v2"]:
        raise ValueError(f"{where}: protocolVersions must be v1 and v2 (KServe's protocols over HTTP)")
    containers = [c for c in spec["containers"] if c["name"] == KSERVE_CONTAINER]
    if len(containers) != 1:
        raise ValueError(f"{where}: KServe sends requests to the container named {KSERVE_CONTAINER}: name one so")
    (container,) = containers
    where = f"{where}.containers.{KSERVE_CONTAINER}"
    command = container.get("command", []) + container.get("args", [])
    if command[:2] != ["torchserve", "--start"]:
        raise ValueError(f"{where}: the command must start `torchserve --start`, as KServe's runtime's does")
    flags = flag_values(command[2:])
    for flag, expected in TORCHSERVE_FLAGS.items():
        if flags.get(flag) != expected:
            raise ValueError(
                f"{where}: {flag} is {flags.get(flag)!r}; the storage initializer puts the model files at {expected}"
            )
    ports = [port["containerPort"] for port in container.get("ports", [])]
    if ports != [KSERVE_PORT]:
        raise ValueError(f"{where}: ports {ports}: KServe routes HTTP to {KSERVE_PORT}, so declare exactly that one")
    env = {var["name"]: var.get("value") for var in container.get("env", [])}
    if env.get("TS_SERVICE_ENVELOPE") != "{{.Labels.serviceEnvelope}}":
        raise ValueError(f"{where}: TS_SERVICE_ENVELOPE must be {{{{.Labels.serviceEnvelope}}}}, as KServe's runtime sets it")
    if port_of(env.get("TS_INFERENCE_ADDRESS"), f"{where}.env.TS_INFERENCE_ADDRESS") != KSERVE_PORT:
        raise ValueError(f"{where}: TS_INFERENCE_ADDRESS must listen on {KSERVE_PORT}, where KServe sends requests")
    if "readinessProbe" not in container:
        raise ValueError(f"{where}: no readinessProbe")
    for probe in ("readinessProbe", "livenessProbe"):
        http = container.get(probe, {}).get("httpGet")
        if http is not None and http.get("port") != KSERVE_PORT:
            raise ValueError(f"{where}.{probe}: probes port {http.get('port')}, not the serving port {KSERVE_PORT}")
    metrics = spec.get("annotations", {}).get("prometheus.kserve.io/port")
    if metrics is not None and not (metrics.isdigit() and 0 < int(metrics) < 65536):
        raise ValueError(f"{where}: prometheus.kserve.io/port {metrics!r} is not a port")


def validate_runtime_service(service, runtimes, where):
    check(service, "V1beta1InferenceService", where)
    model = service["spec"]["predictor"].get("model")
    if model is None:
        raise ValueError(f"{where}: expected spec.predictor.model (KServe's model spec, with a runtime)")
    runtime = runtimes.get(model.get("runtime"))
    if runtime is None:
        raise ValueError(f"{where}: runtime {model.get('runtime')!r} is none of the ServingRuntimes {sorted(runtimes)}")
    spec = runtime["spec"]
    form = model.get("modelFormat", {}).get("name")
    if form not in {f["name"] for f in spec["supportedModelFormats"]}:
        raise ValueError(f"{where}: model format {form!r} is not one runtime {model['runtime']} supports")
    protocol = model.get("protocolVersion", "v1")
    if protocol not in spec["protocolVersions"]:
        raise ValueError(f"{where}: protocol {protocol} is not one runtime {model['runtime']} serves")
    if not model.get("storageUri"):
        raise ValueError(f"{where}: no storageUri: the runtime reads the model store from it")


def validate_runtime_file(path):
    """A file of ServingRuntimes and the InferenceServices that run on them."""
    documents = list(yaml.safe_load_all(path.read_text()))
    kinds = {"ServingRuntime": "serving.kserve.io/v1alpha1", "InferenceService": "serving.kserve.io/v1beta1"}
    for document in documents:
        if kinds.get(document.get("kind")) != document.get("apiVersion"):
            raise ValueError(f"{path.name}: {document.get('apiVersion')} {document.get('kind')}: expected {kinds}")
    runtimes = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ServingRuntime"}
    services = [d for d in documents if d["kind"] == "InferenceService"]
    if not runtimes or not services:
        raise ValueError(f"{path.name}: expected a ServingRuntime and an InferenceService using it")
    for name, runtime in runtimes.items():
        validate_serving_runtime(runtime, f"{path.name}: ServingRuntime/{name}")
        print(f"{path.name}: ServingRuntime/{name} valid (KServe SDK models; containers as a Pod, strict; TorchServe layout)")
    for service in services:
        name = service["metadata"]["name"]
        validate_runtime_service(service, runtimes, f"{path.name}: InferenceService/{name}")
        print(f"{path.name}: InferenceService/{name} valid (KServe SDK models; runtime {service['spec']['predictor']['model']['runtime']})")


def main():
    try:
        validate_kubernetes(DEPLOY / "kubernetes.yaml")
        validate_inference_service(DEPLOY / "kserve.yaml")
        validate_runtime_file(DEPLOY / "kserve-torchserve.yaml")
    except (ValueError, kubernetes_validate.ValidationError) as error:
        print(f"invalid manifest: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
