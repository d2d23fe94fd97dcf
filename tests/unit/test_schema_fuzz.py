"""Whatever arrives in hyperparameters.json, the parser answers with values or a ClientError.
Tier: each property runs a tenth of its examples in the fast tier and all of them in its slow twin
(tests/tiers.py TWINS)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagemaker_cv import algorithms
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.schema import Context
from tiers import TWINS, examples

ALGORITHMS = algorithms.NAMES
NAMES = sorted(
    {p.name for a in ALGORITHMS for p in algorithms.get(a).schema.params}
    | {"_tuning_objective_metric", "sagemaker_x"}
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
values = st.one_of(
    json_scalars,
    st.sampled_from(
        ["1", "0", "True", "false", '"sgd"', "3,224,224", "10, 20", "1e-3", " 5 ", '""', "-1", "1e999"]
    ),
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=5), json_scalars, max_size=2),
)
documents = st.one_of(
    st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=12)), values, max_size=12),
    json_scalars,
    st.lists(values, max_size=3),
)


@pytest.mark.parametrize("tier", TWINS)
def test_parser_yields_values_or_client_error(tier):
    @settings(max_examples=examples(400, tier), deadline=None)
    @given(
        algorithm=st.sampled_from(ALGORITHMS), raw=documents, gpus=st.integers(0, 2), hosts=st.integers(1, 3)
    )
    def check(algorithm, raw, gpus, hosts):
        schema = algorithms.get(algorithm).schema
        try:
            hp, warnings = schema.parse(raw, Context(num_gpus=gpus, num_hosts=hosts))
        except ClientError as exc:
            reason = exc.reason()
            assert reason.startswith("ClientError: ") and len(exc.problems) >= 1
            assert all(isinstance(p, str) and p for p in exc.problems)
            return
        assert hp.num_classes >= 1 and hp.num_training_samples >= 1
        assert all(isinstance(w, str) for w in warnings)

    check()


@pytest.mark.parametrize("tier", TWINS)
def test_resource_config_parser_yields_config_or_client_error(tier):
    from sagemaker_cv.contract.config import parse_resource_config

    @settings(max_examples=examples(300, tier), deadline=None)
    @given(
        raw=st.one_of(
            documents,
            st.dictionaries(st.sampled_from(["hosts", "current_host", "network_interface_name"]), values),
        )
    )
    def check(raw):
        try:
            rc = parse_resource_config(raw)
        except ClientError as exc:
            assert exc.reason().startswith("ClientError: ")
            return
        assert rc.current_host in rc.hosts and rc.primary_host == rc.hosts[0]

    check()


@pytest.mark.parametrize("tier", TWINS)
def test_input_data_config_parser_yields_channels_or_client_error(tier):
    from sagemaker_cv.contract.config import parse_input_data_config

    @settings(max_examples=examples(300, tier), deadline=None)
    @given(
        raw=st.one_of(
            documents,
            st.dictionaries(
                st.sampled_from(["train", "validation", "train_lst"]),
                st.dictionaries(
                    st.sampled_from(
                        ["ContentType", "TrainingInputMode", "S3DistributionType", "RecordWrapperType"]
                    ),
                    values,
                ),
            ),
        )
    )
    def check(raw):
        try:
            channels = parse_input_data_config(raw)
        except ClientError as exc:
            assert exc.reason().startswith("ClientError: ")
            return
        for channel in channels.values():
            assert channel.input_mode in ("File", "FastFile", "Pipe")
            assert channel.media_type is None or isinstance(channel.media_type, str)

    check()
