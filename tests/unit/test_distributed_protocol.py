"""The wire vocabulary: line framing, faults on the wire and as the errors each host reports."""

from __future__ import annotations

import pytest

from sagemaker_cv.contract.errors import AlgorithmError, ClientError
from sagemaker_cv.distributed import protocol
from sagemaker_cv.distributed.protocol import Fault, LineReader, ProtocolError, describe_exit


def test_lines_split_across_reads_are_kept_until_complete():
    reader = LineReader()
    assert reader.feed(b'{"type": "he') == []
    assert reader.feed(b'llo", "host": "algo-2"}\n{"type": "beat"') == [{"type": "hello", "host": "algo-2"}]
    assert reader.feed(b'}\n\n{"type": "done"}\n') == [{"type": "beat"}, {"type": "done"}]
    assert reader.buffer == b""


@pytest.mark.parametrize("line", [b"GET / HTTP/1.1\n", b"[1, 2]\n"])
def test_a_stranger_on_the_port_is_a_protocol_error(line):
    with pytest.raises(ProtocolError):
        LineReader().feed(line)


def test_encode_is_one_json_line():
    assert protocol.encode({"type": "stop"}) == b'{"type": "stop"}\n'
    assert LineReader().feed(protocol.encode({"event": "progress", "step": 3})) == [
        {"event": "progress", "step": 3}
    ]


def test_fault_round_trips_through_the_wire():
    fault = Fault("algo-2", "worker", "ClientError", ("channel 'train': bad", "second"))
    assert Fault.from_wire(fault.to_wire()) == fault
    assert fault.to_wire() == {
        "host": "algo-2",
        "role": "worker",
        "kind": "ClientError",
        "problems": ["channel 'train': bad", "second"],
    }


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"host": "a", "role": "worker", "kind": "ClientError"},
        {"host": "a", "role": "w", "kind": "Oops", "problems": ["x"]},
    ],
)
def test_malformed_faults_are_refused(data):
    with pytest.raises(ProtocolError, match="malformed fault"):
        Fault.from_wire(data)


def test_fault_from_an_exception_keeps_user_errors_apart():
    assert Fault.from_exception(ClientError(["a", "b"]), "algo-1", "worker") == Fault(
        "algo-1", "worker", "ClientError", ("a", "b")
    )
    assert Fault.from_exception(FileExistsError("model"), "algo-1", "worker").problems == (
        "FileExistsError: model",
    )


def test_fault_text_names_host_and_role_and_keeps_the_error_kind():
    fault = Fault.of("algo-2", "server", "was killed by SIGKILL while training was running")
    here = fault.as_error("algo-2")
    there = fault.as_error("algo-1")
    assert isinstance(here, AlgorithmError)
    assert str(here) == "server on host algo-2: was killed by SIGKILL while training was running"
    assert str(there).endswith("(host algo-1 stopped its own processes)")
    client = Fault("algo-3", "worker", "ClientError", ("channel 'train': broken", "second")).as_error(
        "algo-1"
    )
    assert isinstance(client, ClientError)
    assert client.problems == [
        "worker on host algo-3: channel 'train': broken (host algo-1 stopped its own processes)",
        "second",
    ]


def test_exit_descriptions():
    assert describe_exit(-9) == "was killed by SIGKILL"
    assert describe_exit(-99) == "was killed by signal 99"
    assert describe_exit(3) == "exited with code 3"
