"""Content negotiation (RFC 9110), pure: which of a predictor's response types an Accept header
asks for, and whether a Content-Type is one it reads.

Media type parameters count: `application/json;annotation=1` is a response type of its own, which
`application/json` does not ask for (the built-in's object detector has both).
"""

from __future__ import annotations

from dataclasses import dataclass

from sagemaker_cv.contract.content_types import JSON, JSONLINES


@dataclass(frozen=True)
class MediaRange:
    type: str  # "application/json", "image/*" or "*/*"
    params: tuple[tuple[str, str], ...]  # without q, sorted
    q: float

    def matches(self, offer: MediaRange) -> bool:
        if self.type == "*/*":
            return True
        if self.type.endswith("/*"):
            return offer.type.split("/")[0] == self.type[:-2]
        return self.type == offer.type and self.params == offer.params


def parse_media_range(text: str) -> MediaRange | None:
    """One element of an Accept or Content-Type header; None if it is not a media type."""
    head, *rest = text.split(";")
    kind = head.strip().lower()
    if kind.count("/") != 1 or not all(kind.split("/")):
        return None
    q, params = 1.0, []
    for part in rest:
        name, _, value = part.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if not name:
            continue
        if name == "q":
            try:
                q = float(value)
            except ValueError:
                return None
            if not 0 <= q <= 1:
                return None
        else:
            params.append((name, value.lower()))
    return MediaRange(kind, tuple(sorted(params)), q)


def media_type(content_type: str | None) -> str | None:
    """The type of a Content-Type header, lower case, without parameters (`image/jpeg`)."""
    parsed = parse_media_range(content_type) if content_type else None
    return parsed.type if parsed else None


def choose(accept: str | None, offers: tuple[str, ...], default: str | None = None) -> str | None:
    """The offer an Accept header prefers (offers as written, the first the default), or None when
    it accepts none of them. No header, an empty one and `*/*` get `default` (else the first offer).
    Among ranges of equal q the more specific wins, then the order of the offers."""
    first = default if default in offers else offers[0]
    if accept is None or not accept.strip():
        return first
    parsed_offers = [(offer, parse_media_range(offer)) for offer in offers]
    ranges = [r for r in (parse_media_range(part) for part in accept.split(",")) if r is not None]
    best: tuple[float, int, int] | None = None
    chosen = None
    for index, (offer, parsed) in enumerate(parsed_offers):
        matching = [r for r in ranges if r.matches(parsed)]
        if not matching:
            continue
        # The most specific matching range decides this offer's q (RFC 9110 12.5.1).
        specific = max(
            matching, key=lambda r: (r.type != "*/*") + (not r.type.endswith("/*")) + len(r.params)
        )
        if specific.q <= 0:
            continue
        exact = int(specific.type == parsed.type)
        preference = (specific.q, exact, -(0 if offer == first else index + 1))
        if best is None or preference > best:
            best, chosen = preference, offer
    return chosen


def batch_default(offers: tuple[str, ...]) -> str | None:
    """Batch transform's response type for a request that names none: JSON Lines where JSON is the
    default and JSON Lines an offer (image classification: `{"prediction": [...]}` and a newline,
    one line per image, as the built-in writes its transform output); None keeps the default."""
    return JSONLINES if offers and offers[0] == JSON and JSONLINES in offers else None
