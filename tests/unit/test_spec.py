"""The CreateAlgorithm request, checked against SageMaker's own API model (botocore's copy).

botocore's ParamValidator checks structure, required members, types and minimum lengths; the
service also enforces maximum lengths, patterns and enums, which `_constraint_errors` checks from
the same model, so a request that passes here is one the API would accept.
"""

from __future__ import annotations

import copy
import json
import math
import re
import unicodedata

import botocore.session
import pytest
from botocore.validate import ParamValidator

from sagemaker_cv import algorithms
from sagemaker_cv.cli import main
from sagemaker_cv.schema.base import BOOLEAN, Invalid
from sagemaker_cv.tools.spec import algorithm_spec, metric_definitions, objective_metrics

ALGORITHMS = algorithms.NAMES

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-cv:image-classification"
CHANNELS = {
    "image-classification": ["train", "validation", "train_lst", "validation_lst", "model"],
    "object-detection": ["train", "validation", "train_annotation", "validation_annotation", "model"],
    "semantic-segmentation": [
        "train",
        "validation",
        "train_annotation",
        "validation_annotation",
        "label_map",
        "model",
    ],
}


@pytest.fixture(scope="module")
def input_shape():
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateAlgorithm").input_shape


# ---- the API model's constraints that ParamValidator leaves out -------------------------------

_UNICODE_CLASS = re.compile(r"\[((?:\\p\{[A-Z]\})+)\]([*+])")


def _matches(pattern: str, text: str) -> bool:
    """Java-regex `matches()` for the patterns SageMaker's model uses.

    Classes made only of Unicode categories (`[\\p{L}\\p{M}...]*`) are checked with unicodedata,
    since Python's re has no \\p{..}; the others are plain regexes.
    """
    m = _UNICODE_CLASS.fullmatch(pattern)
    if m:
        allowed = set(re.findall(r"\\p\{([A-Z])\}", m.group(1)))
        if m.group(2) == "+" and not text:
            return False
        return all(unicodedata.category(c)[0] in allowed for c in text)
    assert "\\p{" not in pattern, f"untranslated Java class in pattern {pattern!r}"
    return re.fullmatch(pattern, text) is not None


def _constraint_errors(value, shape, path="") -> list[str]:
    errors = []
    meta = shape.metadata
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if isinstance(value, dict) and name in value:
                errors += _constraint_errors(value[name], member, f"{path}.{name}")
    elif shape.type_name == "list":
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items > max {meta['max']}")
        for i, item in enumerate(value):
            errors += _constraint_errors(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: length {len(value)} > max {meta['max']}")
        if "pattern" in meta and not _matches(meta["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {meta['pattern']!r}")
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} not in enum")
    return errors


def _api_errors(params, shape) -> list[str]:
    report = ParamValidator().validate(params, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + _constraint_errors(params, shape)


# ---- the checker itself catches what it must (a test that cannot fail proves nothing) ---------


def test_checker_rejects_what_the_api_rejects(input_shape):
    good = algorithm_spec("image-classification", IMAGE)
    assert _api_errors(good, input_shape) == []

    cases = {
        "missing TrainingImage": lambda s: s["TrainingSpecification"].pop("TrainingImage"),
        "unknown key": lambda s: s["TrainingSpecification"].update(Foo=1),
        "Description too long": lambda s: s["TrainingSpecification"]["SupportedHyperParameters"][0].update(
            Description="x" * 1025
        ),
        "control character": lambda s: s["TrainingSpecification"]["SupportedHyperParameters"][0].update(
            Description="a\nb"
        ),
        "bad instance type": lambda s: s["TrainingSpecification"]["SupportedTrainingInstanceTypes"].append(
            "ml.x9.huge"
        ),
        "bad parameter type": lambda s: s["TrainingSpecification"]["SupportedHyperParameters"][0].update(
            Type="Int"
        ),
        "bad channel name": lambda s: s["TrainingSpecification"]["TrainingChannels"][0].update(
            Name="train data"
        ),
        "too many channels": lambda s: s["TrainingSpecification"]["TrainingChannels"].extend(
            [s["TrainingSpecification"]["TrainingChannels"][0]] * 8
        ),
        "bad input mode": lambda s: s["TrainingSpecification"]["TrainingChannels"][0].update(
            SupportedInputModes=["Tape"]
        ),
        "bad algorithm name": lambda s: s.update(AlgorithmName="not_valid_name"),
        # The InferenceSpecification: hosting offers no p3dn, batch transform no p4d.
        "no inference container": lambda s: s["InferenceSpecification"].update(Containers=[]),
        "a realtime type the API lacks": lambda s: s["InferenceSpecification"][
            "SupportedRealtimeInferenceInstanceTypes"
        ].append("ml.p3dn.24xlarge"),
        "a transform type the API lacks": lambda s: s["InferenceSpecification"][
            "SupportedTransformInstanceTypes"
        ].append("ml.p4d.24xlarge"),
        "no transform types": lambda s: s["InferenceSpecification"].update(
            SupportedTransformInstanceTypes=[]
        ),
        "a response type that is no MIME type": lambda s: s["InferenceSpecification"][
            "SupportedResponseMIMETypes"
        ].append("jsonlines"),
        "an image with a space": lambda s: s["InferenceSpecification"]["Containers"][0].update(Image="a b"),
    }
    for label, mutate in cases.items():
        spec = copy.deepcopy(good)
        mutate(spec)
        assert _api_errors(spec, input_shape), f"the checker accepted a request with {label}"


# ---- every algorithm's request ----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_spec_is_a_valid_create_algorithm_request(algorithm, input_shape):
    spec = algorithm_spec(algorithm, IMAGE)
    assert _api_errors(spec, input_shape) == []
    # What the CLI prints is JSON that round-trips to the same request.
    assert json.loads(json.dumps(spec)) == spec


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cpu_flavor_spec_is_valid_and_lists_cpu_instances(algorithm, input_shape):
    spec = algorithm_spec(algorithm, IMAGE, flavor="cpu")
    assert _api_errors(spec, input_shape) == []
    types = spec["TrainingSpecification"]["SupportedTrainingInstanceTypes"]
    assert types and all(t.split(".")[1][0] in "mc" for t in types)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hyperparameters_match_the_schema(algorithm):
    schema = algorithms.get(algorithm).schema
    specs = {
        h["Name"]: h
        for h in algorithm_spec(algorithm, IMAGE)["TrainingSpecification"]["SupportedHyperParameters"]
    }
    assert set(specs) == {p.name for p in schema.params} | {"_tuning_objective_metric"}
    for p in schema.params:
        h = specs[p.name]
        assert h["IsRequired"] is p.required, p.name
        assert h["IsTunable"] is p.tunable, p.name
        # Tuning needs a range: a tunable FreeText parameter could not be tuned.
        assert not (p.tunable and h["Type"] == "FreeText"), p.name
        if p.default is None:
            assert "DefaultValue" not in h, p.name
        else:
            # The container must accept the default it advertises, and read it as the default.
            assert p.parse(h["DefaultValue"]) == p.parse(p.default_text()), p.name
        rng = h.get("Range", {})
        if h["Type"] == "Categorical":
            values = rng["CategoricalParameterRangeSpecification"]["Values"]
            for v in values:
                p.parse(v)  # every advertised value is one the container accepts
            if p.kind is BOOLEAN:
                assert values[:2] == [p.bool_words[1], p.bool_words[0]], p.name
                assert {p.parse(v) for v in values} == {True, False}
            else:
                assert len(values) == len(p.choices), p.name
        elif h["Type"] in ("Integer", "Continuous"):
            key = (
                "IntegerParameterRangeSpecification"
                if h["Type"] == "Integer"
                else "ContinuousParameterRangeSpecification"
            )
            assert h["Type"] == p.kind.sagemaker_type, p.name
            lo, hi = rng[key]["MinValue"], rng[key]["MaxValue"]
            assert float(lo) <= float(hi), p.name
            # A tuning job may propose either end of the range: the container must accept both
            # ends where the schema has a bound.
            if p.low is not None:
                p.parse(lo)
            if p.high is not None:
                p.parse(hi)
        else:
            assert h["Type"] == "FreeText" and "Range" not in h, p.name


def test_open_bounds_become_the_nearest_valid_value():
    # Object detection's learning_rate is in (0, 1): 0 itself is invalid, so the advertised
    # minimum must be the smallest positive float, which the container accepts.
    schema = algorithms.get("object-detection").schema
    open_params = [p for p in schema.params if p.low_open and p.kind.sagemaker_type == "Continuous"]
    assert open_params, "expected an open-bounded continuous parameter in the object-detection schema"
    specs = {
        h["Name"]: h
        for h in algorithm_spec("object-detection", IMAGE)["TrainingSpecification"][
            "SupportedHyperParameters"
        ]
    }
    for p in open_params:
        lo = specs[p.name]["Range"]["ContinuousParameterRangeSpecification"]["MinValue"]
        assert float(lo) > p.low
        assert float(lo) == math.nextafter(p.low, math.inf)
        p.parse(lo)
        with pytest.raises(Invalid):
            p.parse(str(p.low))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_metrics_and_channels(algorithm):
    ts = algorithm_spec(algorithm, IMAGE)["TrainingSpecification"]
    assert ts["TrainingImage"] == IMAGE
    assert ts["MetricDefinitions"] == metric_definitions(algorithms.get(algorithm))
    names = {m["Name"] for m in ts["MetricDefinitions"]}
    objectives = ts["SupportedTuningJobObjectiveMetrics"]
    assert objectives == objective_metrics(algorithms.get(algorithm))
    assert objectives and all(o["MetricName"] in names for o in objectives)
    for m in ts["MetricDefinitions"]:
        re.compile(m["Regex"])
    assert [c["Name"] for c in ts["TrainingChannels"]] == CHANNELS[algorithm]
    # Pipe mode is advertised only where the trainer reads it: the train and validation channels.
    piped = {"train", "validation"}  # every algorithm reads its RecordIO or manifest splits in Pipe mode
    for c in ts["TrainingChannels"]:
        assert c["SupportedInputModes"] == (["File", "Pipe"] if c["Name"] in piped else ["File"]), c["Name"]
    assert [c["Name"] for c in ts["TrainingChannels"] if c["IsRequired"]][:2] == ["train", "validation"][
        : 1 if algorithm == "image-classification" else 2
    ]
    # The built-in segmenter trains on one host; this image trains every algorithm on several.
    assert ts["SupportsDistributedTraining"] is True


def test_image_classification_channel_content_types():
    channels = {
        c["Name"]: c
        for c in algorithm_spec("image-classification", IMAGE)["TrainingSpecification"]["TrainingChannels"]
    }
    for needed in (
        "application/x-recordio",
        "application/x-image",
        "image/jpeg",
        "image/png",
        "application/jpeg",
    ):
        assert needed in channels["train"]["SupportedContentTypes"]
    # Incremental training: the model channel, in File mode, with SageMaker's model content type.
    assert channels["model"]["SupportedContentTypes"] == ["application/x-sagemaker-model"]
    assert channels["model"]["SupportedInputModes"] == ["File"] and not channels["model"]["IsRequired"]


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="flavor='tpu'"):
        algorithm_spec("image-classification", IMAGE, flavor="tpu")
    with pytest.raises(ValueError, match="image=''"):
        algorithm_spec("image-classification", "")
    with pytest.raises(ValueError, match="name='bad_name'"):
        algorithm_spec("image-classification", IMAGE, name="bad_name")
    with pytest.raises(Exception, match="image-classification, object-detection, semantic-segmentation"):
        algorithm_spec("image-segmentation", IMAGE)


def test_cli_prints_the_request(capsys):
    assert main(["spec", "--algorithm", "object-detection", "--image", IMAGE]) == 0
    assert json.loads(capsys.readouterr().out) == algorithm_spec("object-detection", IMAGE)


def test_segmentation_pipe_jobs_need_no_annotation_channels():
    """SageMaker refuses a job without a required channel: the annotation channels are required
    only in File mode, which the trainer checks itself."""
    spec = algorithm_spec("semantic-segmentation", IMAGE)["TrainingSpecification"]
    channels = {c["Name"]: c for c in spec["TrainingChannels"]}
    assert (
        not channels["train_annotation"]["IsRequired"] and not channels["validation_annotation"]["IsRequired"]
    )
    assert "application/x-recordio" in channels["train"]["SupportedContentTypes"]
    assert "application/x-recordio" in channels["validation"]["SupportedContentTypes"]


# ---- the InferenceSpecification --------------------------------------------------------------------

#: what each algorithm's endpoint answers (docs/serving.md), independently of the predictor modules
RESPONSE_TYPES = {
    "image-classification": ["application/json", "application/jsonlines"],
    "object-detection": ["application/json", "application/json;annotation=1"],
    "semantic-segmentation": ["image/png", "application/x-recordio-protobuf", "application/x-protobuf"],
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("flavor", ["gpu", "cpu"])
def test_the_image_serves_what_its_predictor_reads_and_answers(algorithm, flavor, input_shape):
    from sagemaker_cv.algorithms.inference import IMAGE_CONTENT_TYPES
    from sagemaker_cv.tools.spec import predictor_class

    spec = algorithm_spec(algorithm, IMAGE, flavor=flavor)
    assert _api_errors(spec, input_shape) == []
    inference = spec["InferenceSpecification"]
    assert inference["Containers"] == [{"Image": IMAGE}]  # one image trains and serves
    assert inference["SupportedContentTypes"] == [
        "image/jpeg",
        "image/png",
        "application/x-image",
        "application/octet-stream",  # the SageMaker Python SDK's default Predictor sends raw bytes so
    ]
    assert inference["SupportedContentTypes"] == list(IMAGE_CONTENT_TYPES)
    assert inference["SupportedResponseMIMETypes"] == RESPONSE_TYPES[algorithm]
    assert inference["SupportedResponseMIMETypes"] == list(predictor_class(algorithms.get(algorithm)).accepts)
    training = set(spec["TrainingSpecification"]["SupportedTrainingInstanceTypes"])
    realtime = inference["SupportedRealtimeInferenceInstanceTypes"]
    transform = inference["SupportedTransformInstanceTypes"]
    # Every type the API takes for hosting and transform, among those the flavor trains on.
    assert set(transform) <= set(realtime) <= training
    enums = {
        name: set(input_shape.members["InferenceSpecification"].members[name].member.enum)
        for name in ("SupportedRealtimeInferenceInstanceTypes", "SupportedTransformInstanceTypes")
    }
    assert set(realtime) == training & enums["SupportedRealtimeInferenceInstanceTypes"]
    assert set(transform) == training & enums["SupportedTransformInstanceTypes"]
    if flavor == "cpu":
        assert all(t.split(".")[1][0] in "mc" for t in realtime + transform)
    else:
        assert all(t.split(".")[1][0] in "gp" for t in realtime + transform)
