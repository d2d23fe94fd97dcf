"""The declarative hyperparameter schema: one table per algorithm drives validation, defaults,
the README tables, and the SageMaker algorithm specification.

Every value arrives as a string. Callers encode it with `str()` ("True", "0.1"), `json.dumps`
("\"sgd\"", "true") or by hand; `decode` undoes all of them before a kind parses the text.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagemaker_cv.contract import numbers
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.schema.kinds import (  # noqa: F401 - the schema tables import the kinds from here
    BOOLEAN,
    CATEGORICAL,
    FLOAT,
    INTEGER,
    STRING,
    Invalid,
    Kind,
    decode,
    epoch_list,
    parse_int,
    regex,
)

# Keys SageMaker tooling injects; the built-ins accept them silently.
IGNORED_KEYS = ("_tuning_objective_metric",)
IGNORED_PREFIXES = ("sagemaker_",)
# Unknown keys named (with a suggestion) before the rest are only counted: suggestions cost a
# string comparison per valid name, and the failure reason keeps 1024 characters anyway.
MAX_UNKNOWN_LISTED = 12


# ---- parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    doc: str
    default: Any = None
    required: bool = False
    tunable: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: the bound itself is not valid
    high_open: bool = False
    choices: tuple = ()
    # How the built-in writes booleans: ("0", "1") or ("False", "True"); used in docs and spec.
    bool_words: tuple[str, str] = ("False", "True")
    # Extra checks/transforms on the parsed value (e.g. "10, 20" -> (10, 20)); raise Invalid.
    convert: Callable[[Any], Any] | None = None
    valid_text: str | None = None  # overrides the generated "valid values" text
    # The optimizers this value is passed to, and the MXNet argument it becomes there
    # ({"sgd": "momentum"}); the others ignore it. The documentation says so from this field, so the
    # optimizer adapter and the docs cannot disagree.
    optimizers: Mapping[str, str] = field(default_factory=dict)
    # Accepted because the built-in accepts it (users copy its default-input), but without effect
    # here; a job that sets it is told so in the log.
    ignored: bool = False

    @property
    def description(self) -> str:
        """The doc as the README and the spec show it."""
        if self.ignored:
            return f"{self.doc} Accepted for compatibility with the built-in; it has no effect."
        if not self.optimizers:
            return self.doc
        names = list(self.optimizers)
        used_by = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        return f"{self.doc} Used by {used_by}; ignored by other optimizers."

    def valid_values(self) -> str:
        if self.valid_text:
            return self.valid_text
        if self.kind is BOOLEAN:
            return f"{self.bool_words[1]} or {self.bool_words[0]}"
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        noun = {"integer": "an integer", "float": "a float"}.get(self.kind.name, "a string")
        if self.low is None and self.high is None:
            return noun
        if self.high is None:
            return f"{noun} {'>' if self.low_open else '>='} {_num(self.low)}"
        if self.low is None:
            return f"{noun} {'<' if self.high_open else '<='} {_num(self.high)}"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{noun} in {left}{_num(self.low)}, {_num(self.high)}{right}"

    def parse(self, raw: Any) -> Any:
        """Parse one raw value or raise Invalid with the valid values."""
        text = decode(raw)
        try:
            value = self.kind.parse(text)
        except Invalid:
            raise Invalid(f"expected {self.valid_values()}") from None
        if self.kind is INTEGER and abs(value) > numbers.INT32_MAX:
            raise Invalid(f"expected {self.valid_values()} (at most {numbers.INT32_MAX})")
        if self.choices:
            match = _match_choice(value, self.choices)
            if match is None:
                raise Invalid(f"expected {self.valid_values()}")
            value = match
        if (self.low is not None and (value < self.low or (self.low_open and value == self.low))) or (
            self.high is not None and (value > self.high or (self.high_open and value == self.high))
        ):
            raise Invalid(f"expected {self.valid_values()}")
        if self.convert is not None:
            value = self.convert(value)
        return value

    def default_text(self) -> str:
        if self.default is None:
            return ""
        if self.kind is BOOLEAN:
            return self.bool_words[int(bool(self.default))]
        if isinstance(self.default, tuple):
            return ",".join(str(v) for v in self.default)
        return str(self.default)


def _match_choice(value: Any, choices: tuple) -> Any:
    for choice in choices:
        if value == choice or (isinstance(value, str) and str(choice).lower() == value.lower()):
            return choice
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


# ---- schema -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    """What validation must know about the job besides the hyperparameters."""

    num_gpus: int = 0
    num_hosts: int = 1
    content_types: Mapping[str, str | None] = field(default_factory=dict)


Rule = Callable[[Mapping[str, Any], Context], "list[str] | tuple[list[str], list[str]]"]


class HyperParameters(Mapping):
    """The validated, typed hyperparameters; read-only, with attribute access."""

    def __init__(self, values: dict[str, Any]):
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["_values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"HyperParameters({self._values!r})"


@dataclass(frozen=True)
class Schema:
    algorithm: str
    params: tuple[Param, ...]
    rules: tuple[Rule, ...] = ()
    # Fixed MXNet arguments per optimizer that no hyperparameter sets (e.g. centered rmsprop).
    optimizer_constants: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        names = [p.name for p in self.params]
        assert len(names) == len(set(names)), f"duplicate hyperparameter in {self.algorithm}"

    @property
    def by_name(self) -> dict[str, Param]:
        return {p.name: p for p in self.params}

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if p.default is not None}

    def parse(
        self, raw: Mapping[str, Any], context: Context = Context()
    ) -> tuple[HyperParameters, list[str]]:
        """Parse every value and check every rule; raise one ClientError listing all problems.

        Returns the hyperparameters and the warnings (e.g. settings that have no effect).
        """
        if not isinstance(raw, Mapping):
            raise ClientError(f"hyperparameters.json must be a JSON object, got {type(raw).__name__}")
        known = self.by_name
        problems: list[str] = []
        values: dict[str, Any] = {p.name: p.default for p in self.params}
        provided = set()
        unknown = 0
        for key in sorted(raw, key=str):
            if key in IGNORED_KEYS or str(key).startswith(IGNORED_PREFIXES):
                continue
            param = known.get(key)
            if param is None:
                unknown += 1
                if unknown <= MAX_UNKNOWN_LISTED:
                    problems.append(_unknown(key, known, self.algorithm))
                continue
            text = decode(raw[key])
            if text == "" and not param.required:
                continue  # the built-ins' default-input.json writes '' for "not set"
            try:
                values[key] = param.parse(raw[key])
                provided.add(key)
            except Invalid as exc:
                problems.append(f"{key}={_show(raw[key])}: {exc}")
        if unknown > MAX_UNKNOWN_LISTED:
            problems.append(f"... and {unknown - MAX_UNKNOWN_LISTED} more unknown hyperparameter(s)")
        for param in self.params:
            if (
                param.required
                and param.name not in provided
                and not any(p.startswith(param.name + "=") for p in problems)
            ):
                problems.append(f"missing required hyperparameter {param.name} ({param.valid_values()})")
        warnings = [
            f"hyperparameter {name}={_show(raw[name])} is accepted for compatibility with the built-in and ignored"
            for name in sorted(provided)
            if known[name].ignored
        ]
        if not problems:  # cross-field rules only make sense on well-typed values
            for rule in self.rules:
                result = rule(values, context)
                if isinstance(result, tuple):
                    problems.extend(result[0])
                    warnings.extend(result[1])
                else:
                    problems.extend(result)
        if problems:
            raise ClientError(problems)
        return HyperParameters(values), warnings

    def optimizer_kwargs(self, hp: Mapping[str, Any]) -> dict[str, Any]:
        """MXNet arguments for the chosen optimizer: the learning rate and exactly the
        hyperparameters documented for that optimizer (their `optimizers` field)."""
        name = hp["optimizer"]
        kwargs: dict[str, Any] = {"learning_rate": hp["learning_rate"]}
        for param in self.params:
            if name in param.optimizers and hp.get(param.name) is not None:
                kwargs[param.optimizers[name]] = hp[param.name]
        kwargs.update(self.optimizer_constants.get(name, {}))
        return kwargs

    def final_configuration(self, hp: HyperParameters) -> dict[str, Any]:
        """What the built-ins print as `Final configuration`: set values, spelled as they spell them."""
        out = {}
        for param in self.params:
            value = hp.get(param.name)
            if value is None:
                continue
            if param.kind is BOOLEAN and param.bool_words == ("0", "1"):
                value = int(value)
            elif isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            out[param.name] = value
        return out

    def markdown_table(self) -> str:
        rows = [
            "| Name | Required | Type | Valid values | Default | Tunable | Description |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p in self.params:
            rows.append(
                "| `{}` | {} | {} | {} | {} | {} | {} |".format(
                    p.name,
                    "yes" if p.required else "no",
                    p.kind.name,
                    p.valid_values().replace("|", "\\|"),
                    f"`{p.default_text()}`" if p.default is not None else "",
                    "yes" if p.tunable else "no",
                    p.description.replace("|", "\\|"),
                )
            )
        return "\n".join(rows) + "\n"


def _show(raw: Any) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text)


def _unknown(key: Any, known: Mapping[str, Param], algorithm: str) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.5)
    hint = (
        f" (did you mean '{close[0]}'?)"
        if close
        else f" (`sagemaker-cv hyperparameters --algorithm {algorithm}` lists the valid names)"
    )
    name = str(key)
    if len(name) > 60:
        name = name[:57] + "..."
    return f"unknown hyperparameter '{name}'{hint}"
