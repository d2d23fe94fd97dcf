"""The ContentType values SageMaker passes in inputdataconfig.json, spelled once.

The built-ins' documentation and notebooks use several spellings for the same image input; all
are accepted wherever images are.
"""

from __future__ import annotations

RECORDIO = "application/x-recordio"
JSON = "application/json"
JSONLINES = "application/jsonlines"
XML = "application/xml"  # Pascal VOC annotations ("text/xml" is accepted too)
XML_TYPES = (XML, "text/xml")
MODEL = "application/x-sagemaker-model"
JPEG, PNG, X_IMAGE = "image/jpeg", "image/png", "application/x-image"
#: what a client sends when it does not say what its bytes are: the SageMaker Python SDK v2's
#: default `Predictor` (IdentitySerializer) among them
OCTET_STREAM = "application/octet-stream"
IMAGE_TYPES = (X_IMAGE, JPEG, PNG, "application/jpeg", "application/x-jpeg")


def media_type(content_type: str | None) -> str | None:
    """The content type without parameters (`application/x-recordio; label-format=...`), lower case."""
    if not content_type:
        return None
    return content_type.split(";")[0].strip().lower()
